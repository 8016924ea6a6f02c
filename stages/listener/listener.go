//go:build linux

// Package listener is the inbound pipeline's first stage: it reads mesh
// datagrams from the mesh socket in batches, each with its sender's address.
package listener

import (
	"context"
	"time"

	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/pipeline"
)

// Stage reads mesh datagrams into pooled batches.
type Stage struct {
	conn *meshconn.Conn
	pool *pipeline.Pool
	out  *pipeline.Link
	c    *pipeline.StageCounters
	m    *pipeline.Metrics
	co   *pipeline.Coalescer
}

// New returns a listener on conn that sends into out, spacing its reads
// under load with co (nil: never). The relay owns conn: the fan-out stage
// sends from the same socket, so a restarted listener must not close it.
func New(conn *meshconn.Conn, pool *pipeline.Pool, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics, co *pipeline.Coalescer) *Stage {
	return &Stage{conn: conn, pool: pool, out: out, c: c, m: m, co: co}
}

// Run reads until ctx is done or the socket fails.
func (s *Stage) Run(ctx context.Context) error {
	// Unblock the read with a deadline, not Close: fan-out still sends on
	// the socket while the pipeline drains.
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		b := s.pool.Get()
		tooBig, err := s.conn.ReadBatch(b)
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
		n := len(b.Pkts)
		s.c.In.Add(uint64(n))
		s.c.PassFrom(s.out, b, s.conn)
		s.co.Pause(n)
	}
}
