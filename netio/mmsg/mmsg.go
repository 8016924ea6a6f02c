//go:build linux

// Package mmsg moves batches of datagrams through one recvmmsg(2) or
// sendmmsg(2) call, without allocating.
//
// golang.org/x/net/ipv4 offers ReadBatch and WriteBatch for net.PacketConn
// values, but the relay also batches on AF_PACKET sockets and needs the
// source address of each datagram as a netip.AddrPort without an allocation,
// so the few lines of message-header plumbing live here instead.
//
// The batch shape callers see is that of wireguard-go's conn package: plain
// buffers ([][]byte), their lengths ([]int) and addresses
// ([]netip.AddrPort), which the layers above adapt their own elements to.
// Nothing here knows the pipeline that uses it.
package mmsg

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBatch is the most datagrams a socket of this layer moves in one system
// call. Callers may hand over more: reads fill up to MaxBatch, writes go out
// in several calls.
const MaxBatch = 256

// mmsghdr is struct mmsghdr from <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// A Batch holds the kernel-facing message headers for up to Cap datagrams.
// It is reused across calls and is not safe for concurrent use.
type Batch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	// names hold the datagrams' addresses: room for an IPv6 socket
	// address, which also fits an IPv4 one.
	names []unix.RawSockaddrInet6
	n     int
}

// NewBatch returns a batch for up to size datagrams.
func NewBatch(size int) *Batch {
	return &Batch{
		hdrs:  make([]mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size),
	}
}

// Cap is the number of datagrams the batch can describe.
func (b *Batch) Cap() int { return len(b.hdrs) }

// Reset forgets every datagram set so far.
func (b *Batch) Reset() { b.n = 0 }

// Len is the number of datagrams set since the last Reset.
func (b *Batch) Len() int { return b.n }

// Add describes one more datagram: buf to receive into or send from, and for
// sends on an unconnected UDP socket, its destination (the zero AddrPort for
// none; IPv4 or IPv6). It reports false when the batch is full.
func (b *Batch) Add(buf []byte, to netip.AddrPort) bool {
	if b.n == len(b.hdrs) {
		return false
	}
	i := b.n
	b.n++
	iov := &b.iovs[i]
	iov.Base = unsafe.SliceData(buf)
	iov.SetLen(len(buf))
	h := &b.hdrs[i]
	*h = mmsghdr{}
	h.hdr.Iov = iov
	h.hdr.SetIovlen(1)
	if to.IsValid() {
		h.hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.hdr.Namelen = PutSockaddr(&b.names[i], to)
	}
	return true
}

// AddLink describes one more datagram to send from buf on an AF_PACKET
// socket with sa as its address (struct sockaddr_ll): per packet_snd, the
// frame then leaves on sa's interface with sa's protocol as its
// skb->protocol instead of the socket's bound one. It reports false when
// the batch is full.
func (b *Batch) AddLink(buf []byte, sa *unix.RawSockaddrLinklayer) bool {
	if !b.Add(buf, netip.AddrPort{}) {
		return false
	}
	i := b.n - 1
	// names hold a sockaddr_in6 (28 bytes), which a sockaddr_ll (20) fits.
	*(*unix.RawSockaddrLinklayer)(unsafe.Pointer(&b.names[i])) = *sa
	b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrLinklayer
	return true
}

// AddRecv describes one more buffer to receive into, asking the kernel for
// the sender's address.
func (b *Batch) AddRecv(buf []byte) bool {
	if !b.Add(buf, netip.AddrPort{}) {
		return false
	}
	i := b.n - 1
	b.names[i] = unix.RawSockaddrInet6{}
	b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	return true
}

// N returns the length the kernel reported for datagram i after Recv. With
// MSG_TRUNC it is the datagram's real length, which may exceed the buffer.
func (b *Batch) N(i int) int { return int(b.hdrs[i].len) }

// Truncated reports whether datagram i did not fit its buffer.
func (b *Batch) Truncated(i int) bool { return b.hdrs[i].hdr.Flags&unix.MSG_TRUNC != 0 }

// From returns the source address of datagram i after Recv, IPv4 or IPv6
// (see SockaddrAddrPort).
func (b *Batch) From(i int) netip.AddrPort { return SockaddrAddrPort(&b.names[i]) }

// Both calls below are raw system calls: they never block (MSG_DONTWAIT), so
// they need none of what unix.Syscall6 does around a call that may block.
// That bookkeeping is not free for a relay that sleeps between datagrams:
// entering a syscall while every P is idle wakes the runtime's sysmon
// thread, which then polls every 20 µs for a while. The benchmark
// (test/bench, docs/BENCHMARKS.md) measured two to three extra context
// switches per relayed datagram at 1k/s from it, about a third of the
// relays' CPU time.

// Recv performs one non-blocking recvmmsg(2) into the datagrams set with
// AddRecv or Add and returns how many arrived. It returns unix.EAGAIN when
// none were waiting.
func (b *Batch) Recv(fd uintptr, flags int) (int, error) {
	if b.n == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
		uintptr(b.n), uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Send performs one non-blocking sendmmsg(2) of the datagrams from index
// off onwards and returns how many the kernel took. It returns unix.EAGAIN
// when the socket buffer is full, and the error of the first datagram that
// failed otherwise.
func (b *Batch) Send(fd uintptr, off int) (int, error) {
	if off >= b.n {
		return 0, nil
	}
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[off])),
		uintptr(b.n-off), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// PrepareRecv describes bufs[i][offset:] as the buffers to receive into, as
// many as the batch holds, for a Recv followed by Collect; with from set it
// asks for each sender's address. It returns how many it described.
func (b *Batch) PrepareRecv(bufs [][]byte, offset int, from bool) int {
	b.Reset()
	for _, buf := range bufs {
		var ok bool
		if from {
			ok = b.AddRecv(buf[offset:])
		} else {
			ok = b.Add(buf[offset:], netip.AddrPort{})
		}
		if !ok {
			break
		}
	}
	return b.n
}

// Collect reports the n datagrams a Recv just read into the buffers
// PrepareRecv described: datagram k's length in sizes[k] and, with addrs
// not nil, its sender in addrs[k], for k < got. Datagrams that did not fit
// their buffer are skipped and counted in truncated; the buffer of a
// skipped datagram moves towards the end of bufs rather than leaving a gap,
// so no bytes are copied. Callers that track buffers by position must take
// back bufs in its new order.
func (b *Batch) Collect(bufs [][]byte, sizes []int, addrs []netip.AddrPort, n int) (got, truncated int) {
	for i := 0; i < n; i++ {
		if b.Truncated(i) {
			truncated++
			continue
		}
		if got != i {
			bufs[got], bufs[i] = bufs[i], bufs[got]
		}
		sizes[got] = b.N(i)
		if addrs != nil {
			addrs[got] = b.From(i)
		}
		got++
	}
	return got, truncated
}

// PutSockaddr writes ap into sa as a struct sockaddr_in (IPv4, including an
// IPv4-mapped address) or sockaddr_in6 and returns the length to pass to the
// kernel. Per udpv6_sendmsg a dual-stack IPv6 socket takes a sockaddr_in
// destination too. An IPv6 zone is not carried (scope id 0).
func PutSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort) uint32 {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		putPort(&sa4.Port, ap.Port())
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	putPort(&sa.Port, ap.Port())
	return unix.SizeofSockaddrInet6
}

// SockaddrAddrPort decodes the struct sockaddr_in or sockaddr_in6 in sa; the
// zero AddrPort for any other family. An IPv4-mapped address (an IPv4 peer
// of a dual-stack socket) comes back as IPv4, so a peer is the same
// netip.AddrPort whichever socket family saw it.
func SockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(&sa.Port))
	}
	return netip.AddrPort{}
}

// putPort and port convert between a port and the network byte order the
// sockaddr structures keep it in.
func putPort(p *uint16, v uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(v>>8), byte(v)
}

func port(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}
