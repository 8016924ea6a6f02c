//go:build linux

// Package mmsg moves batches of datagrams through one recvmmsg(2) or
// sendmmsg(2) call, without allocating.
//
// golang.org/x/net/ipv4 offers ReadBatch and WriteBatch for net.PacketConn
// values, but the relay also batches on AF_PACKET sockets and needs the
// source address of each datagram as a netip.AddrPort without an allocation,
// so the few lines of message-header plumbing live here instead.
package mmsg

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/pipeline"
)

// mmsghdr is struct mmsghdr from <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// A Batch holds the kernel-facing message headers for up to Cap datagrams.
// It is reused across calls and is not safe for concurrent use.
type Batch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	n     int
}

// NewBatch returns a batch for up to size datagrams.
func NewBatch(size int) *Batch {
	return &Batch{
		hdrs:  make([]mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		names: make([]unix.RawSockaddrInet4, size),
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
// none). It reports false when the batch is full.
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
	name := &b.names[i]
	if to.IsValid() {
		*name = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
		p := (*[2]byte)(unsafe.Pointer(&name.Port))
		p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
		h.hdr.Name = (*byte)(unsafe.Pointer(name))
		h.hdr.Namelen = unix.SizeofSockaddrInet4
	}
	return true
}

// AddRecv describes one more buffer to receive into, asking the kernel for
// the sender's address.
func (b *Batch) AddRecv(buf []byte) bool {
	if !b.Add(buf, netip.AddrPort{}) {
		return false
	}
	i := b.n - 1
	b.names[i] = unix.RawSockaddrInet4{}
	b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
	return true
}

// N returns the length the kernel reported for datagram i after Recv. With
// MSG_TRUNC it is the datagram's real length, which may exceed the buffer.
func (b *Batch) N(i int) int { return int(b.hdrs[i].len) }

// Truncated reports whether datagram i did not fit its buffer.
func (b *Batch) Truncated(i int) bool { return b.hdrs[i].hdr.Flags&unix.MSG_TRUNC != 0 }

// From returns the IPv4 source address of datagram i after Recv.
func (b *Batch) From(i int) netip.AddrPort {
	n := &b.names[i]
	if n.Family != unix.AF_INET {
		return netip.AddrPort{}
	}
	p := (*[2]byte)(unsafe.Pointer(&n.Port))
	return netip.AddrPortFrom(netip.AddrFrom4(n.Addr), uint16(p[0])<<8|uint16(p[1]))
}

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

// Prepare describes every free slot of b, from index start on, as a buffer
// to receive into (with from set, asking for each sender's address), for a
// Recv followed by Collect. b keeps its length: Collect adds the packets
// that arrive.
func (m *Batch) Prepare(b *pipeline.Batch, from bool) (start int) {
	m.Reset()
	start = len(b.Pkts)
	for !b.Full() {
		p := b.Slot()
		if from {
			m.AddRecv(p.Buf[p.Off:])
		} else {
			m.Add(p.Buf[p.Off:], netip.AddrPort{})
		}
	}
	b.Pkts = b.Pkts[:start]
	return start
}

// Collect appends to b the n datagrams a Recv just read into the buffers of
// b's slots from index start on (the slots Add or AddRecv was given, in the
// same order: see Prepare). Datagrams that
// did not fit their buffer are skipped and counted in truncated; the buffer
// of a skipped slot moves to the end rather than leaving a gap, so no bytes
// are copied. With from set, each packet's Addr is its sender.
func (m *Batch) Collect(b *pipeline.Batch, start, n int, from bool) (truncated int) {
	all := b.Pkts[:cap(b.Pkts)]
	w := 0
	for i := 0; i < n; i++ {
		if m.Truncated(i) {
			truncated++
			continue
		}
		if w != i {
			all[start+w].Buf, all[start+i].Buf = all[start+i].Buf, all[start+w].Buf
		}
		p := b.Slot()
		p.Len = m.N(i)
		if from {
			p.Addr = m.From(i)
		}
		w++
	}
	return truncated
}
