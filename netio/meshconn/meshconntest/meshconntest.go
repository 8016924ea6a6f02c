// Package meshconntest provides a fake mesh socket, backed by a channel
// and a slice, for unit tests of the stages that read and write the mesh
// (as wireguard-go's conn/bindtest does for its device). It has the method
// set of netio/meshconn.Conn that those stages use, and no kernel behind it.
package meshconntest

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowsignal/snowsignal/netio/meshconn"
)

// A Datagram is one datagram that crossed the fake socket: Addr is its
// sender for one delivered, its destination for one sent.
type Datagram struct {
	Addr netip.AddrPort
	Data []byte
	// Src and Ifindex are what WriteFrom was given; zero for other sends.
	Src     netip.Addr
	Ifindex int
	// Stamp is when a delivered datagram was "received", in Unix
	// nanoseconds, as ReadBatch reports it (0: unknown).
	Stamp int64
}

// Conn is a fake mesh socket. Datagrams given to Deliver are read by
// ReadBatch; datagrams sent with WriteBatch or WriteTo are kept for Sent. Any
// goroutine may call its methods.
type Conn struct {
	in       chan Datagram
	deadline chan struct{} // closed while the read deadline has passed
	timer    *time.Timer

	mu      sync.Mutex
	sent    []Datagram
	refuse  map[netip.AddrPort]error
	onPeer  func(meshconn.PeerError)
	backlog atomic.Bool
}

// New returns a fake socket whose receive queue holds up to queue datagrams.
func New(queue int) *Conn {
	return &Conn{in: make(chan Datagram, queue), deadline: make(chan struct{}), refuse: map[netip.AddrPort]error{}}
}

// Deliver queues a datagram from the given sender for ReadBatch, waiting
// while the queue is full, stamped as received now. It copies data.
func (c *Conn) Deliver(from netip.AddrPort, data []byte) {
	c.DeliverAt(from, data, time.Now().UnixNano())
}

// DeliverAt is Deliver with the receive time ReadBatch reports (Unix
// nanoseconds; 0 for a datagram the kernel gave no time).
func (c *Conn) DeliverAt(from netip.AddrPort, data []byte, stamp int64) {
	c.in <- Datagram{Addr: from, Data: append([]byte(nil), data...), Stamp: stamp}
}

// Sent returns the datagrams sent so far, in order.
func (c *Conn) Sent() []Datagram {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Datagram(nil), c.sent...)
}

// Refuse makes WriteBatch refuse every datagram to addr with err, as the
// kernel does after an ICMP error; a nil err accepts them again.
func (c *Conn) Refuse(addr netip.AddrPort, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		delete(c.refuse, addr)
		return
	}
	c.refuse[addr] = err
}

// ReportPeerError tells the function set with OnPeerError about e, as the
// real socket does when it reads its error queue.
func (c *Conn) ReportPeerError(e meshconn.PeerError) {
	c.mu.Lock()
	fn := c.onPeer
	c.mu.Unlock()
	if fn != nil {
		fn(e)
	}
}

// SetBacklogged sets what Backlogged reports.
func (c *Conn) SetBacklogged(v bool) { c.backlog.Store(v) }

// ReadBatch waits for a delivered datagram, or the read deadline, then
// reads it and any others queued, as meshconn.Conn.ReadBatch does.
// Datagrams larger than their buffer are counted in tooBig and use none.
// Each datagram's stamp is the one it was delivered with.
func (c *Conn) ReadBatch(bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64) (n, tooBig int, err error) {
	c.mu.Lock()
	deadline := c.deadline
	c.mu.Unlock()
	var d Datagram
	select {
	case d = <-c.in:
	case <-deadline:
		return 0, 0, fmt.Errorf("fake mesh socket: %w", os.ErrDeadlineExceeded)
	}
	for {
		if len(d.Data) > len(bufs[n])-offset {
			tooBig++
		} else {
			sizes[n] = copy(bufs[n][offset:], d.Data)
			addrs[n] = d.Addr
			if stamps != nil {
				stamps[n] = d.Stamp
			}
			n++
		}
		if n == len(bufs) {
			return n, tooBig, nil
		}
		select {
		case d = <-c.in:
		default:
			return n, tooBig, nil
		}
	}
}

// SetReadDeadline unblocks ReadBatch at t, at once for a time passed; the
// zero time removes the deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	select {
	case <-c.deadline:
		c.deadline = make(chan struct{}) // passed before: start afresh
	default:
	}
	if t.IsZero() {
		return nil
	}
	ch := c.deadline
	c.timer = time.AfterFunc(time.Until(t), func() { close(ch) })
	return nil
}

// WriteBatch records bufs[i] as sent to addrs[i], except those to an
// address given to Refuse, which it reports to onError.
func (c *Conn) WriteBatch(bufs [][]byte, addrs []netip.AddrPort, onError func(i int, err error)) (failed int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range bufs {
		if err := c.refuse[addrs[i]]; err != nil {
			failed++
			if onError != nil {
				onError(i, err)
			}
			continue
		}
		c.sent = append(c.sent, Datagram{Addr: addrs[i], Data: append([]byte(nil), b...)})
	}
	return failed, nil
}

// WriteTo records b as sent to addr, as one datagram of WriteBatch would
// be; an address given to Refuse gets its error.
func (c *Conn) WriteTo(b []byte, addr netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refuse[addr]; err != nil {
		return fmt.Errorf("fake mesh socket: %w", err)
	}
	c.sent = append(c.sent, Datagram{Addr: addr, Data: append([]byte(nil), b...)})
	return nil
}

// WriteFrom records b as sent to addr from src on interface ifindex.
func (c *Conn) WriteFrom(b []byte, src netip.Addr, ifindex int, addr netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refuse[addr]; err != nil {
		return fmt.Errorf("fake mesh socket: %w", err)
	}
	c.sent = append(c.sent, Datagram{Addr: addr, Data: append([]byte(nil), b...), Src: src, Ifindex: ifindex})
	return nil
}

// SetWriteDeadline does nothing: WriteBatch never waits.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// OnPeerError sets the function ReportPeerError calls.
func (c *Conn) OnPeerError(fn func(meshconn.PeerError)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onPeer = fn
}

// Backlogged reports what SetBacklogged set.
func (c *Conn) Backlogged() bool { return c.backlog.Load() }
