//go:build linux

// Package listener is the inbound pipeline's first stage: it reads mesh
// datagrams from the mesh socket in batches, each with its sender's address.
package listener

import (
	"context"
	"net/netip"
	"time"

	"github.com/snowsignal/snowsignal/pipeline"
)

// Conn is what the listener needs of the mesh socket (netio/meshconn.Conn
// in the relay, a fake in tests).
type Conn interface {
	// ReadBatch blocks until datagrams arrive, then reads datagram k into
	// bufs[k][offset:], its length into sizes[k], its sender into addrs[k]
	// and when the kernel received it into stamps[k] (Unix nanoseconds, 0
	// if unknown), for k < n; tooBig counts datagrams discarded for not
	// fitting, whose buffers it moves to the end of bufs.
	ReadBatch(bufs [][]byte, offset int, sizes []int, addrs []netip.AddrPort, stamps []int64) (n, tooBig int, err error)
	// SetReadDeadline unblocks a pending ReadBatch at t.
	SetReadDeadline(t time.Time) error
	// Backlogged reports whether the socket's receive queue is filling up.
	Backlogged() bool
}

// Stage reads mesh datagrams into pooled batches.
type Stage struct {
	conn Conn
	pool *pipeline.Pool
	out  *pipeline.Link
	c    *pipeline.StageCounters
	m    *pipeline.Metrics
	co   *pipeline.Coalescer
	bufs *pipeline.Buffers // the batch being read, as the socket sees it
}

// New returns a listener on conn that sends into out, spacing its reads
// under load with co (nil: never). The relay owns conn: the fan-out stage
// sends from the same socket, so a restarted listener must not close it.
func New(conn Conn, pool *pipeline.Pool, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics, co *pipeline.Coalescer) *Stage {
	return &Stage{conn: conn, pool: pool, out: out, c: c, m: m, co: co, bufs: pipeline.NewBuffers()}
}

// Run reads until ctx is done or the socket fails.
func (s *Stage) Run(ctx context.Context) error {
	// Unblock the read with a deadline, not Close: fan-out still sends on
	// the socket while the pipeline drains.
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		b := s.pool.Get()
		n, tooBig, full, err := s.read(b)
		if err != nil {
			s.pool.Put(b)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if tooBig > 0 {
			s.m.Drop(pipeline.ReasonTooBig, tooBig)
		}
		s.c.In.Add(uint64(n))
		s.c.PassFrom(s.out, b, s.conn)
		s.co.Pause(full)
	}
}

// read fills b's free slots with the datagrams waiting on the socket; full
// says it filled every slot it offered (Buffers.Filled).
func (s *Stage) read(b *pipeline.Batch) (n, tooBig int, full bool, err error) {
	s.bufs.Free(b)
	n, tooBig, err = s.conn.ReadBatch(s.bufs.Bufs, pipeline.Headroom, s.bufs.Sizes, s.bufs.Addrs, s.bufs.Stamps)
	full = s.bufs.Filled(b, n, true)
	return n, tooBig, full, err
}
