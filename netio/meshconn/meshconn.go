//go:build linux

// Package meshconn is the relay's UDP socket for relay-to-relay unicast:
// batched receives with each sender's address, and batched sends to many
// peers, without allocation.
package meshconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
	"github.com/snowsignal/snowsignal/netio/sockmem"
)

// BufferSize is the socket's send and receive buffer (best effort; without
// CAP_NET_ADMIN the kernel caps it at rmem_max/wmem_max).
const BufferSize = 4 << 20

// A Conn is a UDP socket bound to the mesh port. One goroutine may read
// (ReadBatch) while others send (WriteBatch from one goroutine at a time,
// WriteTo from any).
type Conn struct {
	uc   *net.UDPConn
	rc   syscall.RawConn
	addr netip.AddrPort

	r  *mmsg.Reader
	rx *coalesced // nil: the socket has no UDP_GRO, datagrams are read in place

	wmm    *mmsg.Batch
	wfirst []int // wfirst[k]: the caller's index of message k's first datagram; one more at the end
	woff   int   // the message being sent
	werr   error
	wretry bool // the message at woff failed once already
	wfn    func(fd uintptr) bool
	gso    *segmentation

	errq errQueue
	mem  sockmem.Reader
}

// Listen binds a UDP socket to addr. An IPv4 address (0.0.0.0:7124, the
// default, or the interface's) makes an IPv4 socket, as always. An IPv6
// address makes an IPv6 socket; the unspecified one, [::]:7124, a
// dual-stack socket (IPV6_V6ONLY off), which reaches IPv4 and IPv6 peers
// alike and receives hellos sent to ff02::1: IPv4 peers then arrive as
// ::ffff:a.b.c.d, which the reader unmaps, so a peer is the same address
// whichever socket saw it. A socket bound to a unicast IPv6 address
// receives no multicast, so relays that send hellos to ff02::1 bind [::].
func Listen(addr netip.AddrPort) (*Conn, error) {
	network := "udp4"
	a := addr.Addr()
	if a.Is4In6() {
		a = a.Unmap()
		addr = netip.AddrPortFrom(a, addr.Port())
	}
	if a.Is6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			if network == "udp6" && a.IsUnspecified() {
				// Go sets IPV6_V6ONLY off for "udp" on [::] only; be explicit.
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
			}
		}); err != nil {
			return err
		}
		return os.NewSyscallError("setsockopt IPV6_V6ONLY", serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("mesh socket %s: %w", addr, err)
	}
	uc := pc.(*net.UDPConn)
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("mesh socket %s: %w", addr, err)
	}
	c := &Conn{uc: uc, rc: rc, addr: addr, r: mmsg.NewReader(mmsg.MaxBatch), wmm: mmsg.NewBatch(mmsg.MaxBatch),
		wfirst: make([]int, 0, mmsg.MaxBatch+1), gso: newSegmentation()}
	c.r.From = true
	c.r.OnError, c.r.OnEmpty, c.r.OnPollError = c.readError, c.readEmpty, c.readStalled
	c.wfn = c.writeFn
	var serr error
	_ = rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], BufferSize) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], BufferSize)
			}
		}
		// Broadcast hellos and self mode may send to a broadcast address.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		if serr == nil && (network == "udp4" || a.IsUnspecified()) {
			// Learn which peer answered with an ICMP error (see errqueue.go):
			// IP_RECVERR for IPv4 peers, on a dual-stack socket too, whose
			// IPv4 datagrams take the IPv4 path (udpv6_sendmsg hands them to
			// udp_sendmsg); TestDualStack sees the errors of both families.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
		}
		if serr == nil && network == "udp6" {
			// And IPV6_RECVERR for IPv6 peers.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
		}
		if serr == nil {
			// Each datagram's receive time, so the relay can tell a stale
			// one (see ReadBatch).
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		}
		if serr == nil && unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) == nil {
			// Take a peer's segmented batch as one (see offload.go); a
			// kernel without UDP_GRO (before 5.0) segments it for us.
			c.rx = newCoalesced()
			c.r.Segs = c.rx.segs
		}
	})
	if serr != nil {
		uc.Close()
		return nil, fmt.Errorf("mesh socket %s: %w", addr, os.NewSyscallError("setsockopt", serr))
	}
	return c, nil
}

// LocalAddr is the address the socket is bound to.
func (c *Conn) LocalAddr() netip.AddrPort { return c.uc.LocalAddr().(*net.UDPAddr).AddrPort() }

// ReadBatch reads the datagrams waiting, at least one, blocking until one
// arrives or the socket is closed or its read deadline passes. Datagram k
// lands at bufs[k][offset:], with its length in sizes[k] and its sender in
// addrs[k] and, with stamps not nil, the time the kernel received it in
// stamps[k] (nanoseconds since the Unix epoch, 0 if unknown), for k < n;
// one call reads at most mmsg.MaxBatch. Datagrams the kernel coalesced
// (offload.go) come back one per buffer, as they were sent. Datagrams
// larger than their buffer are discarded and counted in tooBig, and their
// buffers may move to the end of bufs: a caller that tracks buffers by
// position takes bufs back in its new order.
func (c *Conn) ReadBatch(bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64) (n, tooBig int, err error) {
	if c.rx != nil {
		n, tooBig, err = c.rx.read(c.r, c.rc, bufs, offset, sizes, addrs, stamps)
	} else {
		n, tooBig, err = c.r.Read(c.rc, bufs, offset, sizes, addrs, stamps)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("mesh socket %s: %w", c.addr, err)
	}
	return n, tooBig, nil
}

// readError tells the reader whether a recvmmsg(2) error is the pending
// error an ICMP message for an earlier send left (see errqueue.go), not a
// fault of this read: then, with the error queue read, it reads again.
func (c *Conn) readError(fd uintptr, err error) bool {
	return c.errq.drain(fd) > 0 || icmpErr(err)
}

// readEmpty reads the error queue when the reader was woken with nothing to
// read: the wake-up may have been an EPOLLERR for a queued error whose
// pending copy a send consumed first.
func (c *Conn) readEmpty(fd uintptr) { c.errq.drain(fd) }

// WriteBatch sends bufs[i] to addrs[i] for every i, in as few sendmmsg(2)
// calls as the kernel allows, waiting while the send buffer is full. Runs
// of datagrams to one address go as one message the kernel segments, where
// it can (see offload.go). A datagram the kernel refuses is skipped; failed
// reports how many were, and onError (if not nil) is told the index and
// error of each.
func (c *Conn) WriteBatch(bufs [][]byte, addrs []netip.AddrPort, onError func(i int, err error)) (failed int, err error) {
	for next := 0; next < len(bufs); {
		end := c.describe(bufs, addrs, next)
		redo, f, err := c.send(bufs, onError)
		failed += f
		if err != nil {
			return failed, err
		}
		if redo >= 0 {
			// The kernel refused a segmented message: describe the rest
			// again, within the limits it taught us.
			end = redo
		}
		next = end
	}
	return failed, nil
}

// describe puts datagrams next... of bufs into wmm, as many as it holds,
// and returns the index of the first one left out.
func (c *Conn) describe(bufs [][]byte, addrs []netip.AddrPort, next int) (end int) {
	c.wmm.Reset()
	c.wfirst = c.wfirst[:0]
	i := next
	for i < len(bufs) {
		j := c.gso.run(bufs, addrs, i)
		if !c.wmm.AddSegments(bufs[i:j], addrs[i]) {
			break
		}
		c.wfirst = append(c.wfirst, i)
		i = j
	}
	c.wfirst = append(c.wfirst, i)
	return i
}

// send sends the messages described in wmm. If the kernel refused a
// segmented message for its segmentation, send stops there and returns in
// redo the index of its first datagram (otherwise -1).
func (c *Conn) send(bufs [][]byte, onError func(i int, err error)) (redo, failed int, err error) {
	c.woff, c.werr, c.wretry = 0, nil, false
	for c.woff < c.wmm.Len() {
		if err := c.rc.Write(c.wfn); err != nil {
			return -1, failed, fmt.Errorf("mesh socket %s: %w", c.addr, err)
		}
		if c.werr != nil {
			first, end := c.wfirst[c.woff], c.wfirst[c.woff+1]
			if end-first > 1 && c.gso.refused(c.werr, len(bufs[first])) {
				c.gso.sent(c.woff, first-c.wfirst[0]) // what went before the refusal
				return first, failed, nil
			}
			// The message at woff failed: count its datagrams and go on
			// with the rest.
			if onError != nil {
				for i := first; i < end; i++ {
					onError(i, c.werr)
				}
			}
			failed += end - first
			c.woff++
			c.werr, c.wretry = nil, false
		}
	}
	c.gso.sent(c.wmm.Len(), c.wfirst[len(c.wfirst)-1]-c.wfirst[0])
	return -1, failed, nil
}

func (c *Conn) writeFn(fd uintptr) bool {
	for c.woff < c.wmm.Len() {
		n, err := c.wmm.Send(fd, c.woff)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil && !c.wretry:
			// sendmmsg(2) reports a pending ICMP error of an earlier
			// datagram on the next one, which the kernel then discards
			// untried (see errqueue.go). Read the error queue, which names
			// the datagram at fault, and try this one once more: if it
			// fails again, the error is its own.
			c.wretry = true
			c.errq.drain(fd)
			continue
		case err != nil:
			c.werr = err
			return true
		}
		c.woff += n
		c.wretry = false
		if c.woff < c.wmm.Len() {
			// A short count: the next message hit a full buffer or an
			// error, which sendmmsg(2) drops after a partial send; if it
			// was a pending ICMP error, its queue entry is read now.
			c.errq.drain(fd)
		}
	}
	return true
}

// KernelDrops returns how many datagrams addressed to this socket the kernel
// dropped since it was opened: because its receive buffer was full (the
// reader fell behind), or, rarely, on delivery. It is the socket's sk_drops,
// the same number as the "drops" column of /proc/net/udp. Unlike
// PACKET_STATISTICS, reading it does not reset it. Any goroutine may call
// it, at any time; with an error (the socket is closed), it returns the
// count last read.
func (c *Conn) KernelDrops() (uint64, error) {
	info, err := c.mem.Read(c.rc)
	if err != nil {
		return info.Drops, fmt.Errorf("mesh socket %s: %w", c.addr, err)
	}
	return info.Drops, nil
}

// Backlogged reports whether the socket's receive queue holds more than a
// quarter of its buffer (see sockmem.Info.Backlogged); false if that cannot be read.
func (c *Conn) Backlogged() bool {
	info, err := c.mem.Read(c.rc)
	return err == nil && info.Backlogged()
}

// Close closes the socket, unblocking a pending ReadBatch.
func (c *Conn) Close() error { return c.uc.Close() }

// CloseOnDone closes the socket when ctx is done.
func (c *Conn) CloseOnDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.uc.Close() })
}

// SetReadDeadline sets the deadline for ReadBatch; a past time unblocks a
// pending read at once.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for WriteBatch and WriteTo; a past time
// unblocks a send waiting for buffer space at once.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// WriteFrom sends one datagram to addr from the local address src on the
// interface ifindex (IPV6_PKTINFO, per ipv6(7)), for hellos to ff02::1: the
// kernel would otherwise send a link-scope multicast from the link-local
// address, and neighbours must see the address the relay meshes from. The
// socket must be an IPv6 one.
func (c *Conn) WriteFrom(b []byte, src netip.Addr, ifindex int, addr netip.AddrPort) error {
	info := unix.Inet6Pktinfo{Addr: src.As16(), Ifindex: uint32(ifindex)}
	_, _, err := c.uc.WriteMsgUDPAddrPort(b, unix.PktInfo6(&info), addr)
	if err != nil {
		return fmt.Errorf("mesh socket %s: send from %s: %w", c.addr, src, err)
	}
	return nil
}

// WriteTo sends one datagram to addr, for the occasional control message.
func (c *Conn) WriteTo(b []byte, addr netip.AddrPort) error {
	_, err := c.uc.WriteToUDPAddrPort(b, addr)
	if errno := syscall.Errno(0); errors.As(err, &errno) && icmpErr(errno) {
		// Perhaps an earlier datagram's pending ICMP error, as in writeFn.
		_ = c.rc.Control(func(fd uintptr) { c.errq.drain(fd) })
		_, err = c.uc.WriteToUDPAddrPort(b, addr)
	}
	if err != nil {
		return fmt.Errorf("mesh socket %s: %w", c.addr, err)
	}
	return nil
}
