//go:build linux

// Package fanout is the outbound pipeline's last stage: it sends every
// forwarded frame to every peer relay as one mesh datagram, from one
// long-lived socket, in batched sendmmsg(2) calls.
package fanout

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/netio/mmsg"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// sendBatch is how many datagrams go into one sendmmsg(2) call.
const sendBatch = 256

// Stage sends frames to the peers of the current peer set.
type Stage struct {
	in     *pipeline.Link
	pool   *pipeline.Pool
	conn   *meshconn.Conn
	peers  *peers.Table
	sealer *mesh.Sealer // nil: the Python-compatible "SS" format
	c      *pipeline.StageCounters
	m      *pipeline.Metrics
	log    zerolog.Logger
	errLog logLimiter

	mm    *mmsg.Batch
	to    []*peers.Peer // to[i] is the peer of datagram i in mm
	size  []int         // size[i] is the length of datagram i
	onErr func(i int, err error)
}

// New returns a fan-out stage reading from in. With a nil sealer it sends the
// legacy format. The stage registers itself with conn for the errors peers
// report after a send (ICMP), which it counts per peer.
func New(in *pipeline.Link, pool *pipeline.Pool, conn *meshconn.Conn, t *peers.Table, sealer *mesh.Sealer, c *pipeline.StageCounters, m *pipeline.Metrics, log zerolog.Logger) *Stage {
	s := &Stage{in: in, pool: pool, conn: conn, peers: t, sealer: sealer, c: c, m: m,
		log: log.With().Str("stage", c.Name()).Logger(),
		mm:  mmsg.NewBatch(sendBatch), to: make([]*peers.Peer, sendBatch), size: make([]int, sendBatch)}
	s.onErr = s.sendError
	conn.OnPeerError(s.peerError)
	return s
}

// Run sends until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	// A send waiting for socket buffer space must not hold up shutdown.
	stop := context.AfterFunc(ctx, func() { s.conn.SetWriteDeadline(time.Now()) })
	defer stop()
	for b := range s.in.Batches(ctx) {
		if err := s.Handle(b); err != nil {
			return err
		}
	}
	return nil
}

// Handle sends one batch to every peer and returns it to the pool. Run
// calls it for each batch; benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.c.In.Add(uint64(len(b.Pkts)))
	err := s.send(b)
	s.pool.Put(b)
	return err
}

func (s *Stage) send(b *pipeline.Batch) error {
	set := s.peers.Load()
	s.mm.Reset()
	for i := range b.Pkts {
		p := &b.Pkts[i]
		var start int
		if s.sealer != nil {
			start = s.sealer.Seal(p.Buf, p.Off, p.Len)
		} else {
			start = mesh.PutLegacy(p.Buf, p.Off)
		}
		d := p.Buf[start : p.Off+p.Len]
		for _, peer := range set.Peers {
			if s.mm.Len() == s.mm.Cap() {
				if err := s.flush(); err != nil {
					return err
				}
			}
			s.to[s.mm.Len()] = peer
			s.size[s.mm.Len()] = len(d)
			s.mm.Add(d, peer.Addr)
		}
		s.c.Out.Add(1)
	}
	return s.flush()
}

func (s *Stage) flush() error {
	n := s.mm.Len()
	if n == 0 {
		return nil
	}
	_, err := s.conn.Send(s.mm, s.onErr)
	for i := 0; i < n; i++ {
		if peer := s.to[i]; peer != nil {
			peer.TxPackets.Add(1)
			peer.TxBytes.Add(uint64(s.size[i]))
		}
	}
	s.mm.Reset()
	clear(s.to[:n])
	return err
}

// sendError counts a datagram the kernel refused, typically ECONNREFUSED
// after an ICMP port unreachable from a peer that is not running.
func (s *Stage) sendError(i int, err error) {
	s.to[i].TxErrors.Add(1)
	s.to[i] = nil // not counted as sent
	s.c.Errors.Add(1)
	s.m.Drop(pipeline.ReasonSendError, 1)
}
