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
	"github.com/snowsignal/snowsignal/stages/dedup"
	"github.com/snowsignal/snowsignal/stages/filter"
	"github.com/snowsignal/snowsignal/stages/peers"
	"github.com/snowsignal/snowsignal/stages/segment"
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
	now  int64
	set  *peers.Set
	info *iface.Info

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
	for b := range s.in.C() {
		s.c.In.Add(uint64(len(b.Pkts)))
		s.now = time.Now().UnixNano()
		s.set = s.peers.Load()
		s.info = s.target.Load()
		b.Keep(s.keep)
		n := len(b.Pkts)
		if s.out.Send(b) {
			s.c.Out.Add(uint64(n))
		}
	}
	return nil
}

// consumed marks a control datagram (a hello) that was used, not dropped.
const consumed = pipeline.NumReasons

func (s *Stage) keep(p *pipeline.Packet) bool {
	if r, ok := s.process(p); !ok {
		if r != consumed {
			s.m.Drop(r, 1)
		}
		return false
	}
	return true
}

// hello handles a neighbour's hello body b from src.
func (s *Stage) hello(src netip.Addr, b []byte) (pipeline.Reason, bool) {
	id, ok := segment.ParseHello(b)
	if !ok || s.segment == nil {
		return pipeline.ReasonMalformedMesh, false
	}
	if s.segment.Heard(s.now, src, id) {
		s.log.Info().Str("peer", src.String()).Msg("another relay shares this segment; sharing injections with it")
		if s.cfg.OnNewNeighbour != nil {
			s.cfg.OnNewNeighbour()
		}
	}
	return consumed, false
}

func (s *Stage) process(p *pipeline.Packet) (pipeline.Reason, bool) {
	src := p.Addr.Addr()
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
			if err == mesh.ErrReplay {
				return pipeline.ReasonReplay, false
			}
			// A bad tag, an unknown key, or an unauthenticated datagram on
			// an authenticated mesh.
			return pipeline.ReasonBadAuth, false
		}
	} else {
		var err error
		if fr, err = mesh.DecodeLegacy(d); err != nil {
			return pipeline.ReasonMalformedMesh, false
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
	if f.Decode(fr) != nil {
		return pipeline.ReasonMalformedFrame, false
	}
	if r, ok := filter.CheckSource(f.Src); !ok {
		return r, false
	}
	if !isBroadcast(f.Dst, s.info) {
		return pipeline.ReasonNotBroadcast, false
	}
	switch {
	case !f.IsFragment():
		if !hasPort(s.cfg.Ports, f.DstPort) {
			return pipeline.ReasonWrongPort, false
		}
	case !s.cfg.Fragments:
		return pipeline.ReasonFragment, false
	case f.HasUDPHeader():
		if !hasPort(s.cfg.Ports, f.DstPort) {
			return pipeline.ReasonWrongPort, false
		}
		s.frags.Add(s.now+int64(2*time.Second), f)
	default:
		if !s.frags.Match(s.now, f) {
			return pipeline.ReasonFragment, false
		}
	}
	if f.Len() > frame.EthLen+s.info.MTU {
		return pipeline.ReasonTooBig, false
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
	if s.segment != nil && !s.segment.Owner(p.Key) {
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

// isBroadcast accepts the limited broadcast address, our subnet's broadcast
// address, and any address that can be the directed broadcast of some
// subnet from /8 to /30 (its two lowest bits are set), since the origin's
// subnet is not known here. Multicast and class E (except limited) are not.
func isBroadcast(a netip.Addr, info *iface.Info) bool {
	if a == limited || a == info.Broadcast {
		return true
	}
	b := a.As4()
	return a.Is4() && !a.IsMulticast() && b[0] < 240 && b[0] != 127 && b[0] != 0 && b[3]&3 == 3
}

func hasPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
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
