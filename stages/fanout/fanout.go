//go:build linux

// Package fanout is the outbound pipeline's last stage: it sends every
// forwarded frame to every peer relay as one mesh datagram, from one
// long-lived socket, in batched sendmmsg(2) calls.
package fanout

import (
	"context"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/netio/mmsg"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// sendBatch is how many datagrams the stage hands the socket at once: as
// many as one sendmmsg(2) call carries.
const sendBatch = mmsg.MaxBatch

// Conn is what the fan-out needs of the mesh socket (netio/meshconn.Conn
// in the relay, a fake in tests).
type Conn interface {
	// WriteBatch sends bufs[i] to addrs[i] for every i, waiting for buffer
	// space; a datagram refused is skipped, counted in failed and reported
	// to onError with its index.
	WriteBatch(bufs [][]byte, addrs []netip.AddrPort, onError func(i int, err error)) (failed int, err error)
	// SetWriteDeadline unblocks a pending WriteBatch at t.
	SetWriteDeadline(t time.Time) error
	// OnPeerError sets who is told about errors peers report after a send.
	OnPeerError(fn func(meshconn.PeerError))
}

// Stage sends frames to the peers of the current peer set. An IPv6 frame
// goes only to the peers whose announced capabilities include
// mesh.CapIPv6; the others are counted in their Peer.Withheld6.
type Stage struct {
	in     *pipeline.Link
	pool   *pipeline.Pool
	conn   Conn
	peers  *peers.Table
	sealer *mesh.Sealer      // nil: the Python-compatible "SS" format
	shed   *pipeline.Shedder // drops frames that waited too long
	c      *pipeline.StageCounters
	m      *pipeline.Metrics
	log    zerolog.Logger
	errLog logLimiter

	// The mesh datagrams of the batch being sent, one per packet, and the
	// order they go in (sortBySize).
	dgrams [][]byte
	order  []uint8
	// The datagrams of the next WriteBatch: datagram i is bufs[i], sent to
	// addrs[i], the address of peer to[i].
	bufs  [][]byte
	addrs []netip.AddrPort
	to    []*peers.Peer
	onErr func(i int, err error)
}

// New returns a fan-out stage reading from in. With a nil sealer it sends the
// legacy format. Frames that waited too long since they were captured are
// dropped as shed says (stale, overload), not sent. The stage registers
// itself with conn for the errors peers report after a send (ICMP), which
// it counts per peer.
func New(in *pipeline.Link, pool *pipeline.Pool, conn Conn, t *peers.Table, sealer *mesh.Sealer, shed pipeline.ShedPolicy, c *pipeline.StageCounters, m *pipeline.Metrics, log zerolog.Logger) *Stage {
	s := &Stage{in: in, pool: pool, conn: conn, peers: t, sealer: sealer, shed: pipeline.NewShedder(shed, m), c: c, m: m,
		log:    log.With().Str("stage", c.Name()).Logger(),
		dgrams: make([][]byte, 0, pipeline.MaxBatch), order: make([]uint8, 0, pipeline.MaxBatch),
		bufs: make([][]byte, 0, sendBatch), addrs: make([]netip.AddrPort, 0, sendBatch), to: make([]*peers.Peer, 0, sendBatch)}
	s.onErr = s.sendError
	conn.OnPeerError(s.peerError)
	return s
}

// Run sends until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	// A send waiting for socket buffer space must not hold up shutdown.
	stop := context.AfterFunc(ctx, func() { s.conn.SetWriteDeadline(time.Now()) })
	defer stop()
	return s.in.Serve(ctx, s.Handle)
}

// Handle sends one batch to every peer, but for the frames that waited
// too long, and returns it to the pool. Run calls it for each
// batch; benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.c.In.Add(uint64(len(b.Pkts)))
	// Late searches are shed here, the last step before the mesh: the
	// peers would only queue them further behind fresh ones.
	s.shed.Shed(b)
	err := s.send(b)
	s.pool.Put(b)
	return err
}

func (s *Stage) send(b *pipeline.Batch) error {
	set := s.peers.Load()
	var now int64 // read once per batch, at the first IPv6 frame
	for i := range b.Pkts {
		p := &b.Pkts[i]
		if p.Frame.IPv6 && now == 0 {
			now = time.Now().UnixNano()
		}
		var start int
		if s.sealer != nil {
			start = s.sealer.Seal(p.Buf, p.Off, p.Len)
		} else {
			start = mesh.PutLegacy(p.Buf, p.Off)
		}
		s.dgrams = append(s.dgrams, p.Buf[start:p.Off+p.Len])
	}
	s.sortBySize()
	// Peer by peer, longest first: a peer's datagrams of one size side by
	// side (and one shorter) go out as one message that the kernel
	// segments (netio/meshconn, offload.go).
	for _, peer := range set.Peers {
		caps, known := mesh.Caps(0), false
		for _, i := range s.order {
			d := s.dgrams[i]
			if b.Pkts[i].Frame.IPv6 {
				if !known {
					caps, known = peer.Caps(now), true
				}
				if !caps.Has(mesh.CapIPv6) {
					// Only a peer that announced ipv6 gets IPv6 frames: a
					// legacy relay would drop them or, the Python one,
					// re-broadcast garbage (docs/MESH-PROTOCOL.md).
					peer.Withheld6.Add(1)
					continue
				}
			}
			if len(s.bufs) == sendBatch {
				if err := s.flush(); err != nil {
					s.forget()
					return err
				}
			}
			s.bufs = append(s.bufs, d)
			s.addrs = append(s.addrs, peer.Addr)
			s.to = append(s.to, peer)
		}
	}
	s.c.Out.Add(uint64(len(b.Pkts)))
	s.forget()
	return s.flush()
}

// forget drops the batch's datagrams: the batch goes back to the pool.
func (s *Stage) forget() {
	clear(s.dgrams)
	s.dgrams = s.dgrams[:0]
}

// sortBySize sets order to the indices of dgrams, longest datagram first
// and in capture order among equals. The searches of a batch are
// independent datagrams, most from different clients, which UDP never
// promised to deliver in order; grouping them by size is what lets a storm
// of searches for names of a few lengths go segmented.
func (s *Stage) sortBySize() {
	s.order = s.order[:0]
	sorted := true
	for i := range s.dgrams {
		s.order = append(s.order, uint8(i))
		if i > 0 && len(s.dgrams[i]) > len(s.dgrams[i-1]) {
			sorted = false
		}
	}
	if sorted {
		return // one size, or already longest first: the common case
	}
	// Insertion sort: stable, in place, and quick for 64 at most.
	for i := 1; i < len(s.order); i++ {
		for j := i; j > 0 && len(s.dgrams[s.order[j]]) > len(s.dgrams[s.order[j-1]]); j-- {
			s.order[j], s.order[j-1] = s.order[j-1], s.order[j]
		}
	}
}

func (s *Stage) flush() error {
	if len(s.bufs) == 0 {
		return nil
	}
	_, err := s.conn.WriteBatch(s.bufs, s.addrs, s.onErr)
	for i, peer := range s.to {
		if peer != nil {
			peer.TxPackets.Add(1)
			peer.TxBytes.Add(uint64(len(s.bufs[i])))
		}
	}
	// Forget the batch's buffers and the peers: the batch goes back to the
	// pool, and a peer set may be replaced.
	clear(s.bufs)
	clear(s.to)
	s.bufs, s.addrs, s.to = s.bufs[:0], s.addrs[:0], s.to[:0]
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
