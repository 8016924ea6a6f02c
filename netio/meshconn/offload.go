//go:build linux

package meshconn

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
)

// Why the mesh socket segments and coalesces
//
// In a search storm the fan-out sends runs of small datagrams to each peer,
// and every one of them crosses the whole stack on its own: UDP and IP
// output, the veth, the bridge and its netfilter hooks, the peer's socket
// queue. With UDP_SEGMENT (generic segmentation offload, udp(7)) a run to
// one peer is built as one datagram that the kernel segments as late as it
// can: on a veth and a bridge it stays one packet up to the peer's socket,
// and a NIC segments it in hardware or the stack just before the driver.
// The wire carries the same datagrams as before, one per frame, so a peer
// that knows nothing of this (the Python relay) reads them one by one.
//
// The receiving socket sets UDP_GRO, so the kernel hands such a packet over
// whole, with its segment size in a control message, instead of segmenting
// it first; it may also coalesce datagrams a NIC received (GRO). The reader
// then has to split it, and a coalesced packet may hold up to 64 KiB, more
// than the pipeline's buffers: such reads go into large buffers of the
// socket's own and are copied out, one datagram per buffer, which costs a
// copy of the datagram's bytes (a search is a hundred or so) and nothing
// more per read. This is what wireguard-go's conn package does for the same
// reasons (StdNetBind: coalesceMessages, splitCoalescedMessages).

// segmentation is the send side's policy: which runs of datagrams go as one
// message, and what the kernel taught us it refuses. Only the goroutine
// that calls WriteBatch changes it; Offload reads it from any.
type segmentation struct {
	off    atomic.Bool // the kernel cannot segment on this socket's routes (EIO), or DisableOffload
	maxSeg int         // the largest segment size not yet refused (EINVAL)

	messages  atomic.Uint64 // segmented messages sent
	datagrams atomic.Uint64 // datagrams sent in them
}

func newSegmentation() *segmentation { return &segmentation{maxSeg: mmsg.MaxSegmentBytes} }

// run returns the end of the run of datagrams from i on that may go as one
// message: to the same address, each as long as the first but the last,
// which may be shorter, within the kernel's limits.
func (g *segmentation) run(bufs [][]byte, addrs []netip.AddrPort, i int) int {
	seg := len(bufs[i])
	if seg == 0 || seg > g.maxSeg || g.off.Load() {
		return i + 1
	}
	total, j := seg, i+1
	for j < len(bufs) && j-i < mmsg.MaxSegments && addrs[j] == addrs[i] {
		l := len(bufs[j])
		if l == 0 || l > seg || total+l > mmsg.MaxSegmentBytes {
			break
		}
		total += l
		j++
		if l < seg {
			break // only the last segment may be short
		}
	}
	return j
}

// refused reports whether err, returned for a segmented message of
// segments of seg bytes, is the kernel refusing to segment it, and learns
// from it: EIO says a route's device cannot complete checksums, which
// segmentation needs (udp_send_skb), so the socket stops segmenting, as
// wireguard-go does; EINVAL or EMSGSIZE say a segment would not fit the
// route's MTU, so segments that large go one by one from now on.
func (g *segmentation) refused(err error, seg int) bool {
	switch err {
	case syscall.EIO:
		g.off.Store(true)
	case syscall.EINVAL, syscall.EMSGSIZE:
		g.maxSeg = min(g.maxSeg, seg-1)
	default:
		return false
	}
	return true
}

// sent counts what one sendmmsg round carried: msgs messages holding
// datagrams datagrams.
func (g *segmentation) sent(msgs, datagrams int) {
	if datagrams > msgs {
		g.messages.Add(uint64(msgs))
		g.datagrams.Add(uint64(datagrams))
	}
}

// Offload is what the socket's segmentation offload did since it was opened.
type Offload struct {
	// Messages is how many messages went out in the calls that segmented
	// some, and Datagrams how many datagrams they held: Datagrams/Messages
	// is how many datagrams crossed the stack as one.
	Messages, Datagrams uint64
	// Off says the kernel refused to segment (a route whose device cannot
	// complete checksums): the socket sends one datagram per message.
	Off bool
	// Coalesced is how many datagrams arrived coalesced with others (UDP_GRO);
	// Receiving says the socket takes coalesced datagrams at all.
	Coalesced uint64
	Receiving bool
}

// Offload reports the socket's segmentation offload. Any goroutine may call
// it.
func (c *Conn) Offload() Offload {
	o := Offload{Messages: c.gso.messages.Load(), Datagrams: c.gso.datagrams.Load(), Off: c.gso.off.Load(), Receiving: c.rx != nil}
	if c.rx != nil {
		o.Coalesced = c.rx.coalesced.Load()
	}
	return o
}

// DisableOffload turns the socket's segmentation offload off, both ways:
// WriteBatch sends one datagram per message, and the kernel segments what
// peers send segmented before the socket reads it. Call it before the
// socket is used.
func (c *Conn) DisableOffload() error {
	c.gso.off.Store(true)
	if c.rx == nil {
		return nil
	}
	var serr error
	if err := c.rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 0) }); err != nil {
		return fmt.Errorf("mesh socket %s: %w", c.addr, err)
	}
	if serr != nil {
		return fmt.Errorf("mesh socket %s: %w", c.addr, os.NewSyscallError("setsockopt UDP_GRO", serr))
	}
	c.rx, c.r.Segs = nil, nil
	return nil
}

// coalescedBuf is the size of a read buffer of the coalescing reader: the
// largest packet UDP_GRO hands over (the default gro_max_size).
const coalescedBuf = 1 << 16

// coalescedBufs is how many it has. Each may be filled whole by a storm of
// large datagrams, so they bound the relay's memory (1 MiB), not its
// batches: a read that filled them all is topped up at once.
const coalescedBufs = 16

// coalesced is the receive side: reads into large buffers, split into the
// caller's. It is used by the one goroutine that reads.
type coalesced struct {
	bufs   [][]byte
	sizes  []int
	addrs  []netip.AddrPort
	stamps []int64
	segs   []int

	n, k int  // datagrams read into bufs, and the next to split
	off  int  // bytes of datagram k already split off
	full bool // the last read filled every buffer it offered: more may wait
	try  func(fd uintptr) bool

	coalesced atomic.Uint64
}

func newCoalesced() *coalesced {
	// Only the bytes the kernel writes are ever touched: a read of one
	// search costs a page of memory, not 64 KiB.
	arena := make([]byte, coalescedBufs*coalescedBuf)
	x := &coalesced{bufs: make([][]byte, coalescedBufs), sizes: make([]int, coalescedBufs), addrs: make([]netip.AddrPort, coalescedBufs),
		stamps: make([]int64, coalescedBufs), segs: make([]int, coalescedBufs)}
	for i := range x.bufs {
		x.bufs[i] = arena[i*coalescedBuf : (i+1)*coalescedBuf : (i+1)*coalescedBuf]
	}
	return x
}

// read hands out what is left of the last read or, once that is gone,
// reads again, waiting for at least one datagram; while the caller has
// room and the kernel may have more, it reads on without waiting. It reads
// as Conn.ReadBatch describes.
func (x *coalesced) read(r *mmsg.Reader, rc syscall.RawConn, bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64) (n, tooBig int, err error) {
	if len(bufs) == 0 {
		return 0, 0, nil
	}
	if x.k >= x.n {
		want := min(len(bufs), len(x.bufs))
		m, tb, err := r.Read(rc, x.bufs[:want], 0, x.sizes, x.addrs, x.stamps)
		if err != nil {
			return 0, 0, err
		}
		x.n, x.k, x.off, x.full = m, 0, 0, m+tb == want
		tooBig += tb
	}
	for {
		got, tb := x.split(bufs[n:], offset, sizes[n:], addrs, stamps, n)
		n, tooBig = n+got, tooBig+tb
		if n == len(bufs) || x.k < x.n || !x.full {
			return n, tooBig, nil
		}
		// The buffers held all there was room for: more may be waiting,
		// which the caller's batch has room for. Take it without waiting.
		if x.try == nil {
			x.try = func(fd uintptr) bool { r.Attempt(fd); return true }
		}
		want := min(len(bufs)-n, len(x.bufs))
		r.Start(x.bufs[:want], 0, x.sizes, x.addrs, x.stamps)
		if err := rc.Read(x.try); err != nil {
			return n, tooBig, nil // the next read reports it
		}
		m, tb, err := r.Result()
		if err != nil {
			return n, tooBig, nil // likewise
		}
		x.n, x.k, x.off, x.full = m, 0, 0, m+tb == want
		tooBig += tb
	}
}

// split copies datagrams from the read into bufs, one each, and reports
// how many it copied and how many it skipped for not fitting; their
// senders and stamps go to addrs[at+k] and stamps[at+k] if those are set.
func (x *coalesced) split(bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64, at int) (n, tooBig int) {
	for n < len(bufs) && x.k < x.n {
		size, seg := x.sizes[x.k], x.segs[x.k]
		if seg <= 0 || seg > size {
			seg = size
		}
		l := min(seg, size-x.off)
		if l > len(bufs[n])-offset {
			tooBig++
		} else {
			copy(bufs[n][offset:], x.bufs[x.k][x.off:x.off+l])
			sizes[n] = l
			if addrs != nil {
				addrs[at+n] = x.addrs[x.k]
			}
			if stamps != nil {
				stamps[at+n] = x.stamps[x.k]
			}
			n++
			if seg < size {
				x.coalesced.Add(1)
			}
		}
		if x.off += l; x.off >= size {
			x.k, x.off = x.k+1, 0
		}
	}
	return n, tooBig
}
