//go:build linux

package mmsg

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Reader is the read loop every batched socket of the relay shares: it
// waits on a syscall.RawConn until datagrams arrive and takes as many as
// the caller's buffers hold with one recvmmsg(2). It allocates nothing and
// is not safe for concurrent use.
type Reader struct {
	// Flags are passed to recvmmsg(2), for example MSG_TRUNC on a packet
	// socket so that a frame's real length is reported.
	Flags int
	// From asks for each datagram's source address.
	From bool
	// Segs, if not nil, receives each datagram's segment size
	// (Batch.SegmentSize: 0 unless the socket has UDP_GRO and the kernel
	// coalesced it), at the datagram's index; it must be as long as the
	// buffers Read is given.
	Segs []int
	// OnError, if not nil, is told a recvmmsg(2) error; returning true says
	// the error was not this read's (a pending ICMP error of an earlier
	// send) and the read is tried again at once.
	OnError func(fd uintptr, err error) bool
	// OnEmpty, if not nil, is called when a read found nothing although the
	// poller had woken the reader (it already found nothing once before in
	// this wait): the wake-up was for something else, such as an error.
	OnEmpty func(fd uintptr)
	// OnPollError, if not nil, is called when the RawConn's Read fails for
	// another reason than a closed socket or a passed deadline, instead of
	// failing the read; it reads around the poller (see netio/meshconn).
	OnPollError func() error

	mm     *Batch
	fn     func(fd uintptr) bool // r.attempt, bound once
	bufs   [][]byte
	offset int
	sizes  []int
	addrs  []netip.AddrPort
	stamps []int64
	ready  bool // mm describes bufs (see attempt)
	waited bool // attempt found nothing before in this rc.Read
	got    int
	trunc  int
	err    error
}

// NewReader returns a reader for up to size datagrams per call.
func NewReader(size int) *Reader {
	r := &Reader{mm: NewBatch(size)}
	r.fn = r.attempt
	return r
}

// Read waits until at least one datagram arrives, or one too big for its
// buffer, or rc fails, and reads what is waiting, one datagram per buffer:
// datagram k lands at bufs[k][offset:], its length in sizes[k], with From
// set its sender in addrs[k] and, with stamps not nil, its kernel receive
// time in stamps[k] (Batch.Stamp: 0 unless the socket has SO_TIMESTAMPNS), for k < n. Datagrams larger than their
// buffer are discarded and counted in tooBig; their buffers move to the end
// of bufs (see Batch.Collect). Errors are rc's (wrapping net.ErrClosed or
// os.ErrDeadlineExceeded) or a recvmmsg(2) error.
func (r *Reader) Read(rc syscall.RawConn, bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64) (n, tooBig int, err error) {
	if len(bufs) == 0 {
		return 0, 0, nil // no room: waiting would be for nothing
	}
	r.Start(bufs, offset, sizes, addrs, stamps)
	for {
		r.waited = false
		if err := rc.Read(r.fn); err != nil {
			if r.OnPollError == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, 0, err
			}
			if err := r.OnPollError(); err != nil {
				return 0, 0, err
			}
		}
		n, tooBig, err = r.Result()
		if err != nil || n > 0 || tooBig > 0 {
			return n, tooBig, err
		}
	}
}

// Start sets the buffers the next attempts read into, for a caller that
// drives Attempt itself; Read calls it.
func (r *Reader) Start(bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64) {
	if !r.From {
		addrs = nil
	}
	r.bufs, r.offset, r.sizes, r.addrs, r.stamps = bufs, offset, sizes, addrs, stamps
	r.ready, r.got, r.trunc, r.err = false, 0, 0, nil
}

// Result returns what the attempts since Start read, and forgets it.
func (r *Reader) Result() (n, tooBig int, err error) {
	n, tooBig, err = r.got, r.trunc, r.err
	r.got, r.trunc, r.err = 0, 0, nil
	if err != nil {
		err = os.NewSyscallError("recvmmsg", err)
	}
	return n, tooBig, err
}

// Attempt is the RawConn read callback: one recvmmsg(2) into the buffers
// not filled yet. It returns false, asking the poller to wait, when nothing
// was waiting.
func (r *Reader) Attempt(fd uintptr) bool { return r.attempt(fd) }

func (r *Reader) attempt(fd uintptr) bool {
	if r.got > 0 || r.trunc > 0 || r.err != nil {
		return true // a result is waiting for Result
	}
	// Describe the buffers once per Read, not once per attempt: a relay
	// woken for each datagram tries twice per wake-up (the second try finds
	// nothing and waits), and a read that finds nothing leaves the
	// descriptions as they were.
	if !r.ready {
		r.mm.PrepareRecv(r.bufs, r.offset, r.From, r.stamps != nil || r.Segs != nil)
		r.ready = true
	}
	for {
		n, err := r.mm.Recv(fd, r.Flags)
		switch {
		case err == unix.EINTR:
			// Nothing was read: a signal came first. Try again at once;
			// waiting for the poller instead could sleep on datagrams
			// that are already queued, since it reports each arrival once.
			continue
		case err == unix.EAGAIN:
			if r.waited && r.OnEmpty != nil {
				r.OnEmpty(fd)
			}
			r.waited = true
			return false
		case err != nil && r.OnError != nil && r.OnError(fd, err):
			// Not this read's fault; datagrams may be waiting behind it,
			// and the edge-triggered poller will not say so again.
			continue
		case err != nil:
			r.err = err
			return true
		}
		r.got, r.trunc = r.mm.Collect(r.bufs, r.sizes, r.addrs, r.stamps, r.Segs, n)
		r.ready = false // the kernel and Collect changed them
		return true
	}
}
