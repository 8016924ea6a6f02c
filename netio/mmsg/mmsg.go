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

// A Batch holds the kernel-facing message headers for up to Cap messages.
// A message is one datagram, or for sends on a UDP socket several of the
// same size that the kernel segments (AddSegments). It is reused across
// calls and is not safe for concurrent use.
type Batch struct {
	hdrs []mmsghdr
	// iovs hold the messages' buffers, one each but for AddSegments, which
	// takes one per segment; Cap in all.
	iovs []unix.Iovec
	// names hold the datagrams' addresses: room for an IPv6 socket
	// address, which also fits an IPv4 one.
	names []unix.RawSockaddrInet6
	// ctrl holds each received datagram's control messages, ctrlLen bytes
	// a slot, allocated by the first PrepareRecv that asks for them.
	ctrl []byte
	// sctrl holds each sent message's UDP_SEGMENT control message,
	// segCtrlLen bytes a slot, allocated by the first AddSegments.
	sctrl []byte
	n     int
	niov  int
}

// ctrlLen is the control buffer of one received datagram: room for an
// SCM_TIMESTAMPNS message (a struct timespec), a UDP_GRO one (an int) and
// one more timespec's worth, so an option set by someone else does not cut
// ours off.
var ctrlLen = 2*unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(4)

// segCtrlLen is the control buffer of one message sent with AddSegments:
// a UDP_SEGMENT message, whose data is the segment size as a uint16.
var segCtrlLen = unix.CmsgSpace(2)

// MaxSegments is the most datagrams one message of AddSegments may carry:
// the kernel's UDP_MAX_SEGMENTS before Linux 6.11 raised it to 128.
const MaxSegments = 64

// MaxSegmentBytes is the most bytes one message of AddSegments may carry in
// all: the payload of the largest IP datagram, which the kernel builds
// before it segments.
const MaxSegmentBytes = 65507 - 40 // room for IPv6's larger header

// NewBatch returns a batch for up to size messages (and size buffers).
func NewBatch(size int) *Batch {
	return &Batch{
		hdrs:  make([]mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet6, size),
	}
}

// Cap is the number of messages the batch can describe.
func (b *Batch) Cap() int { return len(b.hdrs) }

// Reset forgets every message set so far.
func (b *Batch) Reset() { b.n, b.niov = 0, 0 }

// Len is the number of messages set since the last Reset.
func (b *Batch) Len() int { return b.n }

// Add describes one more datagram: buf to receive into or send from, and for
// sends on an unconnected UDP socket, its destination (the zero AddrPort for
// none; IPv4 or IPv6). It reports false when the batch is full.
func (b *Batch) Add(buf []byte, to netip.AddrPort) bool {
	if b.n == len(b.hdrs) || b.niov == len(b.iovs) {
		return false
	}
	iov := &b.iovs[b.niov]
	iov.Base = unsafe.SliceData(buf)
	iov.SetLen(len(buf))
	b.addMsg(iov, 1, to)
	return true
}

// addMsg describes message b.n: n buffers from iov on, sent to the
// address to if it is valid.
func (b *Batch) addMsg(iov *unix.Iovec, n int, to netip.AddrPort) {
	i := b.n
	b.n++
	b.niov += n
	h := &b.hdrs[i]
	*h = mmsghdr{}
	h.hdr.Iov = iov
	h.hdr.SetIovlen(n)
	if to.IsValid() {
		h.hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.hdr.Namelen = PutSockaddr(&b.names[i], to)
	}
}

// AddSegments describes one message that sends every buffer of bufs to to
// as a datagram of its own, for a UDP socket: the kernel builds them as one
// and segments them at the first buffer's size (UDP_SEGMENT, generic
// segmentation offload, see udp(7)), so they cross the stack once, and a
// peer socket with UDP_GRO may even receive them as one. Every buffer must
// be as long as the first but the last, which may be shorter; there may be at most
// MaxSegments, of MaxSegmentBytes in all. A single buffer is sent as Add
// sends it. It reports false when the batch has no room for the message or
// its buffers.
func (b *Batch) AddSegments(bufs [][]byte, to netip.AddrPort) bool {
	if len(bufs) == 1 {
		return b.Add(bufs[0], to)
	}
	if b.n == len(b.hdrs) || b.niov+len(bufs) > len(b.iovs) || len(bufs) == 0 {
		return false
	}
	first := b.niov
	for k, buf := range bufs {
		iov := &b.iovs[first+k]
		iov.Base = unsafe.SliceData(buf)
		iov.SetLen(len(buf))
	}
	i := b.n
	b.addMsg(&b.iovs[first], len(bufs), to)
	if b.sctrl == nil {
		b.sctrl = make([]byte, len(b.hdrs)*segCtrlLen)
	}
	oob := b.sctrl[i*segCtrlLen : (i+1)*segCtrlLen]
	ch := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	ch.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(len(bufs[0]))
	h := &b.hdrs[i].hdr
	h.Control = &oob[0]
	h.SetControllen(segCtrlLen)
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

// withControl gives every datagram described so far a control buffer, for
// the SCM_TIMESTAMPNS message of a socket with SO_TIMESTAMPNS set and the
// UDP_GRO message of one with UDP_GRO set.
func (b *Batch) withControl() {
	if b.ctrl == nil {
		b.ctrl = make([]byte, len(b.hdrs)*ctrlLen)
	}
	for i := range b.n {
		h := &b.hdrs[i].hdr
		h.Control = &b.ctrl[i*ctrlLen]
		h.SetControllen(ctrlLen)
	}
}

// Stamp returns the kernel's receive time of datagram i after Recv, in
// nanoseconds since the Unix epoch (CLOCK_REALTIME, comparable with
// time.Now().UnixNano()), or 0 if the kernel gave none: the socket does not
// have SO_TIMESTAMPNS, the batch was prepared without stamps, or the
// control buffer was cut short (MSG_CTRUNC).
func (b *Batch) Stamp(i int) int64 {
	h := &b.hdrs[i].hdr
	if h.Control == nil || h.Flags&unix.MSG_CTRUNC != 0 {
		return 0
	}
	return ParseStamp(b.ctrl[i*ctrlLen : i*ctrlLen+int(h.Controllen)])
}

// SegmentSize returns the size of the datagrams the kernel coalesced into
// datagram i after Recv, on a socket with UDP_GRO set (see udp(7)): the
// datagram holds its bytes in pieces of that size, the last one maybe
// shorter. It returns 0 for a datagram that is just one, or if the batch
// was prepared without control buffers.
func (b *Batch) SegmentSize(i int) int {
	h := &b.hdrs[i].hdr
	if h.Control == nil || h.Flags&unix.MSG_CTRUNC != 0 {
		return 0
	}
	d := findCmsg(b.ctrl[i*ctrlLen:i*ctrlLen+int(h.Controllen)], unix.SOL_UDP, unix.UDP_GRO, 4)
	if d == nil {
		return 0
	}
	// The kernel writes the size as an int (udp_cmsg_recv).
	return int(*(*int32)(unsafe.Pointer(&d[0])))
}

// ParseStamp finds the SCM_TIMESTAMPNS message in the control messages
// oob and returns its time in nanoseconds since the Unix epoch, or 0 if
// there is none. Unlike unix.ParseSocketControlMessage it allocates
// nothing.
func ParseStamp(oob []byte) int64 {
	d := findCmsg(oob, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, int(unsafe.Sizeof(unix.Timespec{})))
	if d == nil {
		return 0
	}
	// The kernel writes a native struct timespec, aligned as a control
	// message's data always is.
	return (*unix.Timespec)(unsafe.Pointer(&d[0])).Nano()
}

// findCmsg returns the data of the first control message of the given
// level and type in oob with at least size bytes of data, or nil. It
// allocates nothing.
func findCmsg(oob []byte, level, typ int32, size int) []byte {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return nil
		}
		if h.Level == level && h.Type == typ && l >= unix.CmsgLen(size) {
			return oob[unix.CmsgLen(0):l]
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next >= len(oob) {
			return nil
		}
		oob = oob[next:]
	}
	return nil
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
// asks for each sender's address, with control set for each one's control
// messages (its receive time, its segment size). It returns how many it
// described.
func (b *Batch) PrepareRecv(bufs [][]byte, offset int, from, control bool) int {
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
	if control {
		b.withControl()
	}
	return b.n
}

// Collect reports the n datagrams a Recv just read into the buffers
// PrepareRecv described: datagram k's length in sizes[k] and, with addrs
// not nil, its sender in addrs[k], with stamps not nil, its receive time in
// stamps[k] (see Stamp) and, with segs not nil, its segment size in segs[k]
// (see SegmentSize), for k < got. Datagrams that did not fit
// their buffer are skipped and counted in truncated; the buffer of a
// skipped datagram moves towards the end of bufs rather than leaving a gap,
// so no bytes are copied. Callers that track buffers by position must take
// back bufs in its new order.
func (b *Batch) Collect(bufs [][]byte, sizes []int, addrs []netip.AddrPort, stamps []int64, segs []int, n int) (got, truncated int) {
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
		if stamps != nil {
			stamps[got] = b.Stamp(i)
		}
		if segs != nil {
			segs[got] = b.SegmentSize(i)
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
