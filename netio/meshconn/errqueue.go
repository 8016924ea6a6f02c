//go:build linux

package meshconn

import (
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
)

// Why the mesh socket reads its error queue
//
// A peer relay that is not running answers our datagrams with ICMP port
// unreachable. On an unconnected UDP socket the kernel drops that news
// unless IP_RECVERR is set; with it, per ip(7), the error is queued on the
// socket's error queue, with the original destination in msg_name, and is
// also stored as the socket's pending error (sk_err). Two things follow:
//
//   - The pending error is reported, once, by whichever call comes next on
//     the socket: a recvmmsg(2) of the listener, or a sendmmsg(2) of the
//     fan-out for another peer (sock_alloc_send_pskb checks it first and
//     discards that datagram untried). Counting it against whatever datagram
//     got it would blame the wrong peer and lose a datagram. So every such
//     error makes the caller read the error queue, which names the peer at
//     fault, and a send that got it is tried once more.
//   - Queued errors are charged to the receive buffer: left unread they would
//     crowd out mesh datagrams. Whoever consumes the pending error reads the
//     queue to empty; the kernel queues the error before it sets sk_err, so
//     the reader always finds it.
//
// The poller is edge-triggered: a queued error wakes the listener once
// (EPOLLERR) and never again until something new happens, so an unread queue
// cannot make it spin. A wake-up that finds nothing to read also reads the
// queue, in case a send consumed the pending error first.

// sizeofSockExtendedErr is sizeof(struct sock_extended_err).
const sizeofSockExtendedErr = int(unsafe.Sizeof(unix.SockExtendedErr{}))

// maxDrain bounds one read of the error queue; what is left is read next time.
const maxDrain = 256

// A PeerError is an ICMP error (or a local delivery error) reported for a
// datagram the socket sent.
type PeerError struct {
	// Dst is where the datagram that caused the error was sent.
	Dst netip.AddrPort
	// From is the host that reported the error: Dst's host for port
	// unreachable, a router on the way for host or network unreachable. It
	// is invalid for errors raised locally.
	From netip.Addr
	// Err is the error, as a send would report it: unix.ECONNREFUSED for port
	// unreachable, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EMSGSIZE, ...
	Err syscall.Errno
	// Origin is SO_EE_ORIGIN_ICMP or SO_EE_ORIGIN_LOCAL; Type and Code are
	// the ICMP type and code (3 and 3: port unreachable).
	Origin, Type, Code uint8
}

// errQueue reads a socket's error queue into preallocated buffers, so that
// handling an error allocates nothing. Any goroutine may call drain.
type errQueue struct {
	handler atomic.Pointer[func(PeerError)]

	mu   sync.Mutex
	hdr  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrInet6 // room for either family's address
	data [64]byte              // the start of the offending datagram: not needed, but recvmsg(2) wants room
	oob  [128]byte
}

// OnPeerError sets the function told about each error the kernel reports for
// a datagram sent earlier, from whichever goroutine reads the error queue:
// it must be quick and must not block. A nil fn forgets errors.
func (c *Conn) OnPeerError(fn func(PeerError)) {
	if fn == nil {
		c.errq.handler.Store(nil)
		return
	}
	c.errq.handler.Store(&fn)
}

// drain reads the error queue of the socket fd until it is empty (or for
// maxDrain entries) and hands each error to the handler. It returns how many
// entries it read.
func (q *errQueue) drain(fd uintptr) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < maxDrain {
		q.iov.Base = &q.data[0]
		q.iov.SetLen(len(q.data))
		q.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&q.name)), Namelen: unix.SizeofSockaddrInet6, Iov: &q.iov,
			Control: &q.oob[0]}
		q.hdr.SetIovlen(1)
		q.hdr.SetControllen(len(q.oob))
		_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&q.hdr)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return n // EAGAIN: empty
		}
		n++
		if pe, ok := q.parse(); ok {
			if fn := q.handler.Load(); fn != nil {
				(*fn)(pe)
			}
		}
	}
	return n
}

// parse decodes the IP_RECVERR (or IPV6_RECVERR) control message of the
// entry just read: a struct sock_extended_err followed by the offender's
// socket address (SO_EE_OFFENDER), per ip(7) and ipv6(7).
func (q *errQueue) parse() (PeerError, bool) {
	oob := q.oob[:q.hdr.Controllen]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return PeerError{}, false
		}
		data := oob[unix.SizeofCmsghdr:h.Len]
		recvErr := h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR || h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_RECVERR
		if recvErr && len(data) >= sizeofSockExtendedErr {
			ee := (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
			pe := PeerError{Err: syscall.Errno(ee.Errno), Origin: ee.Origin, Type: ee.Type, Code: ee.Code}
			pe.Dst = mmsg.SockaddrAddrPort(&q.name)
			var sa unix.RawSockaddrInet6 // the offender, copied: the message need not be aligned for it
			n := copy(unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6), data[sizeofSockExtendedErr:])
			if sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4 || sa.Family == unix.AF_INET6 && n == unix.SizeofSockaddrInet6 {
				pe.From = mmsg.SockaddrAddrPort(&sa).Addr()
			}
			return pe, true
		}
		next := cmsgAlign(int(h.Len))
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return PeerError{}, false
}

// cmsgAlign rounds a control message length up to the alignment of the
// next header, as CMSG_NXTHDR does.
func cmsgAlign(n int) int {
	const align = int(unsafe.Sizeof(uintptr(0)))
	return (n + align - 1) &^ (align - 1)
}

// icmpErr reports whether a socket call's error can be a pending ICMP error
// of an earlier datagram (the errno values icmp_err_convert and the PMTU
// path produce) rather than a fault of the call itself.
func icmpErr(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENONET,
		unix.EMSGSIZE, unix.EPROTO, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return true
	}
	return false
}

// stallPoll bounds each wait of readStalled, so that a read deadline or a
// Close is noticed soon.
const stallPoll = 50 * time.Millisecond

// readStalled reads once with the poller bypassed, for when it fails reads
// after an EPOLLERR-only event (EPOLLERR without EPOLLIN or EPOLLOUT: an
// ICMP error while the send buffer was more than half full; Go's poller
// fails reads with "not pollable" until it sees an event of another kind).
// It reads the error queue, then the datagrams waiting, if any; if there are
// none, it waits up to stallPoll for some with poll(2). poll(2) is
// level-triggered, and with the error queue read and the pending error
// consumed, only data (or a new error) ends the wait early: the read loop
// cannot spin. The next event with data clears the poller's error state and
// the reader is back to the poller.
func (c *Conn) readStalled() error {
	var perr error
	cerr := c.rc.Control(func(fd uintptr) {
		c.errq.drain(fd)
		if c.r.Attempt(fd) {
			return
		}
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds[:], int(stallPoll.Milliseconds())); err != nil && err != unix.EINTR {
			perr = os.NewSyscallError("poll", err)
		}
	})
	if cerr != nil {
		return cerr
	}
	return perr
}
