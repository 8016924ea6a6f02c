// Package rewrite is the inbound pipeline's second stage. It admits mesh
// datagrams only from known peers, unwraps and validates the frame each one
// carries, and turns it into a broadcast for this segment: Ethernet source
// our MAC, destination ff:ff:ff:ff:ff:ff, IP source and UDP ports untouched,
// valid IP and UDP checksums. Nothing that fails a check reaches the inject
// stage; every drop is counted under its reason.
package rewrite

import (
	"context"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/filter"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// Config is what the rewrite stage checks and changes.
type Config struct {
	// Ports are the relayed UDP destination ports; a frame for any other
	// port is not injected.
	Ports []uint16
	// Dest is the --rebroadcast-destination policy.
	Dest DestMode
	// AcceptAnyPeer admits mesh datagrams from any source, as the Python
	// relay does.
	AcceptAnyPeer bool
	// Fragments relays fragments of datagrams too large for one frame.
	Fragments bool
	// OnNewNeighbour, if set, is called (from the stage goroutine; it must
	// not block) when a hello arrives from a relay new on our segment.
	OnNewNeighbour func()
	// OnUnknownPeer, if set, is called (from the stage goroutine; it must not
	// block) with the source of a datagram from outside the peer set.
	OnUnknownPeer func(netip.Addr)
	// Observer, if set, sees every batch's verdicts (see filter.Observer).
	Observer filter.Observer
	// Limiter, if set, limits the frames each peer (keyed by the mesh
	// datagram's source address) gets injected (--rate-limit).
	Limiter *ratelimit.Limiter
}

// Stage rewrites mesh datagrams into broadcast frames.
type Stage struct {
	cfg     Config
	in, out *pipeline.Link
	c       *pipeline.StageCounters
	m       *pipeline.Metrics
	log     zerolog.Logger
	target  *iface.Current
	peers   *peers.Table
	opener  *mesh.Opener // nil: legacy "SS" format only
	dedup   *dedup.Cache
	segment *segment.Table // nil: no hellos, this relay assumes it is alone on its segment
	seed    maphash.Seed
	frags   *filter.Fragments

	// per batch
	now   int64
	set   *peers.Set
	info  *iface.Info
	trace bool  // the observer traces this batch's drops
	rlNow int64 // the limiter's clock, read once per batch

	unknown unknownSources
}

// New returns a rewrite stage from in to out. opener and d may be nil.
func New(cfg Config, in, out *pipeline.Link, target *iface.Current, t *peers.Table, opener *mesh.Opener,
	d *dedup.Cache, seg *segment.Table, seed maphash.Seed, c *pipeline.StageCounters, m *pipeline.Metrics, log zerolog.Logger) *Stage {
	return &Stage{cfg: cfg, in: in, out: out, target: target, peers: t, opener: opener, dedup: d, segment: seg, seed: seed,
		c: c, m: m, log: log.With().Str("stage", c.Name()).Logger(), frags: filter.NewFragments(1024),
		unknown: unknownSources{m: map[netip.Addr]uint64{}}}
}

// Run rewrites until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	for b := range s.in.Batches(ctx) {
		s.Handle(b)
	}
	return nil
}

// Handle rewrites one batch and passes it on. Run calls it for each batch;
// benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.c.In.Add(uint64(len(b.Pkts)))
	s.now = time.Now().UnixNano()
	s.set = s.peers.Load()
	s.info = s.target.Load()
	s.trace = s.cfg.Observer != nil && s.cfg.Observer.Tracing()
	if s.cfg.Limiter != nil {
		s.rlNow = s.cfg.Limiter.Now()
	}
	b.Keep(s.keep)
	if s.cfg.Observer != nil {
		s.cfg.Observer.Kept(b)
	}
	s.c.Pass(s.out, b)
	return nil
}

// consumed marks a control datagram (a hello) that was used, not dropped.
const consumed = pipeline.NumReasons

func (s *Stage) keep(p *pipeline.Packet) bool {
	if r, ok := s.process(p); !ok {
		if r != consumed {
			s.m.Drop(r, 1)
			if s.trace {
				s.cfg.Observer.Dropped(p, r)
			}
		}
		return false
	}
	return true
}

// hello handles a neighbour's hello body b from src.
func (s *Stage) hello(src netip.Addr, b []byte) (pipeline.Reason, bool) {
	id, mac, ok := segment.ParseHello(b)
	if !ok || s.segment == nil {
		return pipeline.ReasonMalformedMesh, false
	}
	if s.segment.Heard(s.now, src, id, mac) {
		s.log.Info().Str("peer", src.String()).Msg("another relay shares this segment; sharing injections with it")
		if s.cfg.OnNewNeighbour != nil {
			s.cfg.OnNewNeighbour()
		}
	}
	return consumed, false
}

func (s *Stage) process(p *pipeline.Packet) (pipeline.Reason, bool) {
	src := p.Addr.Addr()
	if s.info != nil && src == s.info.Addr && !s.set.Self {
		if d := p.Bytes(); segment.IsHello(d) || mesh.Kind(d) == mesh.Auth {
			// Our own hello (sealed, with a key), looped back by the
			// kernel like every broadcast.
			return consumed, false
		}
	}
	peer := s.set.Lookup(src)
	if peer != nil {
		peer.Heard(s.now, p.Len)
	} else if !s.cfg.AcceptAnyPeer {
		s.unknownPeer(src)
		return pipeline.ReasonUnknownPeer, false
	}
	if s.info == nil {
		return pipeline.ReasonSendError, false
	}

	d := p.Bytes()
	if s.opener == nil && segment.IsHello(d) {
		return s.hello(src, d)
	}
	var fr []byte
	if s.opener != nil {
		var err error
		if fr, _, _, err = s.opener.Open(d); err != nil {
			return meshReason(err, d), false
		}
	} else {
		var err error
		if fr, err = mesh.DecodeLegacy(d); err != nil {
			return meshReason(err, d), false
		}
	}
	if s.opener != nil && segment.IsHello(fr) {
		return s.hello(src, fr)
	}
	if s.segment != nil && s.segment.IsNeighbour(src) {
		return pipeline.ReasonSameSegment, false
	}
	p.Off += len(d) - len(fr)
	p.Len = len(fr)

	f := &p.Frame
	if r, ok := s.validate(f, fr); !ok {
		return r, false
	}
	// Only frames that would otherwise be injected spend tokens, so on an
	// authenticated mesh datagrams forged with a peer's source address
	// cannot starve the peer.
	if l := s.cfg.Limiter; l != nil && !l.Allow(s.rlNow, src) {
		return pipeline.ReasonRateLimited, false
	}
	if f.IsFragment() && f.HasUDPHeader() {
		s.frags.Add(s.now+int64(2*time.Second), f)
	}

	p.Len = f.Len() // drop Ethernet padding; the NIC pads again if needed
	b := p.Bytes()
	if dst, change := s.destination(f.Dst); change {
		f.SetDst(b, dst)
	}
	frame.SetBroadcastEthernet(b, s.info.MAC)
	f.FixChecksums(b)

	// Self mode re-broadcasts our own captures on purpose, as the Python
	// relay does for testing, so it skips duplicate suppression.
	// Recording the key after the rewrite makes it match the frame that
	// relays on our segment capture from our injection.
	if s.dedup == nil && s.segment == nil || s.set.Self {
		return 0, true
	}
	p.Key = f.Key(b, s.seed)
	if s.dedup != nil && !s.dedup.Received(s.now, p.Key) {
		return pipeline.ReasonDuplicate, false
	}
	if s.segment != nil && !s.segment.Owner(uint64(f.StableKey(b))) {
		return pipeline.ReasonOtherInjector, false
	}
	return 0, true
}

var limited = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// destination applies the --rebroadcast-destination policy to dst.
func (s *Stage) destination(dst netip.Addr) (netip.Addr, bool) {
	ours := s.info.Broadcast
	switch s.cfg.Dest {
	case Limited:
		return limited, dst != limited
	case Subnet:
		return ours, ours.IsValid() && dst != ours
	case Auto:
		return ours, ours.IsValid() && dst != limited && dst != ours
	}
	return dst, false
}

// unknownSources counts datagrams from sources outside the peer set and
// rate-limits the warning about them.
type unknownSources struct {
	mu      sync.Mutex
	m       map[netip.Addr]uint64
	lastLog int64
}

const maxUnknownSources = 256

func (s *Stage) unknownPeer(src netip.Addr) {
	u := &s.unknown
	u.mu.Lock()
	if _, ok := u.m[src]; ok || len(u.m) < maxUnknownSources {
		u.m[src]++
	}
	n := u.m[src]
	logNow := s.now-u.lastLog > int64(10*time.Second)
	if logNow {
		u.lastLog = s.now
	}
	u.mu.Unlock()
	if logNow {
		s.log.Warn().Str("peer", src.String()).Uint64("count", n).Str("reason", pipeline.ReasonUnknownPeer.String()).
			Msg("dropping mesh datagrams from a source outside the peer set (use --accept-any-peer to admit any)")
	}
	if s.cfg.OnUnknownPeer != nil {
		s.cfg.OnUnknownPeer(src)
	}
}

// UnknownSources returns how many datagrams each source outside the peer set
// sent (up to 256 sources are tracked).
func (s *Stage) UnknownSources() map[netip.Addr]uint64 {
	s.unknown.mu.Lock()
	defer s.unknown.mu.Unlock()
	out := make(map[netip.Addr]uint64, len(s.unknown.m))
	for k, v := range s.unknown.m {
		out[k] = v
	}
	return out
}
