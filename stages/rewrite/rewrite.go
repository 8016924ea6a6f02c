// Package rewrite is the inbound pipeline's second stage. It admits mesh
// datagrams only from known peers, unwraps and validates the frame each one
// carries, and turns it into a broadcast for this segment: Ethernet source
// our MAC, destination ff:ff:ff:ff:ff:ff (an IPv6 group's MAC with --ipv6),
// IP source and UDP ports untouched, valid IP and UDP checksums. Nothing that fails a check reaches the inject
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
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/rules"
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
	// OnCaps, if set, is given every capabilities announcement ("SC") from
	// a peer of the set, admitted and (keyed) authenticated; it is called
	// from the stage goroutine and must not block (stages/announce.Heard).
	OnCaps func(*peers.Peer, mesh.Announce)
	// Observer, if set, sees every batch's verdicts (see rules.Observer).
	Observer rules.Observer
	// Limiter, if set, limits the frames each peer (keyed by the mesh
	// datagram's source address) gets injected (--rate-limit).
	Limiter *ratelimit.Limiter
	// IPv6 accepts IPv6 frames to Groups (--ipv6); without it an IPv6 frame
	// is dropped as not_ipv4.
	IPv6 bool
	// Groups are the IPv6 link-scope groups injected (--ipv6-group).
	Groups []netip.Addr
	// Probes, if set, answers `snowsignal doctor`'s probes, from any
	// source (probe.go).
	Probes *ProbeResponder
}

// Stage rewrites mesh datagrams into broadcast frames.
type Stage struct {
	cfg     Config
	in, out *pipeline.Link
	rules   *rules.Rules
	log     zerolog.Logger
	target  *iface.Current
	peers   *peers.Table
	opener  *mesh.Opener   // nil: legacy "SS" format only
	segment *segment.Table // nil: no hellos, this relay assumes it is alone on its segment

	// per batch
	set  *peers.Set
	info *iface.Info

	// per packet
	fr []byte // the frame the datagram carries, set by unwrap

	unknown unknownSources
}

// New returns a rewrite stage from in to out. opener, d and seg may be nil.
func New(cfg Config, in, out *pipeline.Link, target *iface.Current, t *peers.Table, opener *mesh.Opener,
	d *dedup.Cache, seg *segment.Table, seed maphash.Seed, c *pipeline.StageCounters, m *pipeline.Metrics, log zerolog.Logger) *Stage {
	return &Stage{cfg: cfg, in: in, out: out, target: target, peers: t, opener: opener, segment: seg,
		rules: rules.New(rules.Config{Ports: cfg.Ports, Fragments: cfg.Fragments, Limiter: cfg.Limiter,
			Dedup: d, Segment: seg, Seed: seed, Observer: cfg.Observer, Groups: cfg.Groups}, c, m),
		log: log.With().Str("stage", c.Name()).Logger(), unknown: unknownSources{m: map[netip.Addr]uint64{}}}
}

// Run rewrites until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	return s.in.Serve(ctx, s.Handle)
}

// Handle rewrites one batch and passes it on. Run calls it for each batch;
// benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.set = s.peers.Load()
	s.info = s.target.Load()
	s.rules.Handle(b, s.out, s.keep)
	return nil
}

// keep takes one mesh datagram through the inbound steps, in order. The
// first step that refuses it names the reason it is counted under; a hello
// is used (rules.Used), not dropped, and counts as nothing.
//
// Only frames that would otherwise be injected spend rate-limit tokens, so
// on an authenticated mesh datagrams forged with a peer's source address
// cannot starve the peer.
func (s *Stage) keep(p *pipeline.Packet) bool {
	r, src := s.rules, p.Addr.Addr()
	if s.notOwnHello(p, src) &&
		s.notProbe(p) &&
		s.fromPeer(p, src) &&
		s.targetKnown() &&
		s.unwrap(p, src) &&
		r.NotFromNeighbour(p, src) &&
		s.validate(p) &&
		r.WithinRate(p, src) &&
		r.FollowFragments(p) &&
		s.rewrite(p) &&
		s.deliverOnce(p) {
		return true
	}
	return r.Drop(p)
}

// notOwnHello refuses our own hello (sealed, with a key), looped back by
// the kernel like every broadcast (and every ff02::1 hello of a relay
// without IPv4, which sends from its IPv6 address).
func (s *Stage) notOwnHello(p *pipeline.Packet, src netip.Addr) bool {
	if s.info != nil && !s.set.Self && (src == s.info.Addr || !s.info.Addr.IsValid() && src == s.info.Addr6()) {
		if d := p.Bytes(); segment.IsHello(d) || mesh.Kind(d) == mesh.Auth {
			return s.rules.Refuse(rules.Used)
		}
	}
	return true
}

// fromPeer admits datagrams from the peer set, and notes that the peer was
// heard; with AcceptAnyPeer, any source (unknown_peer).
func (s *Stage) fromPeer(p *pipeline.Packet, src netip.Addr) bool {
	if peer := s.set.Lookup(src); peer != nil {
		peer.Heard(s.rules.Now(), p.Len)
	} else if !s.cfg.AcceptAnyPeer {
		s.unknownPeer(src)
		return s.rules.Refuse(pipeline.ReasonUnknownPeer)
	}
	return true
}

// targetKnown refuses every datagram while the target interface is not
// known: there is nowhere to inject (send_error).
func (s *Stage) targetKnown() bool {
	if s.info == nil {
		return s.rules.Refuse(pipeline.ReasonSendError)
	}
	return true
}

// unwrap opens (authenticated mesh) or decodes (legacy mesh) the datagram
// and keeps the frame it carries in s.fr; a neighbour's hello goes to hello
// instead. A relay with a key takes only sealed hellos.
func (s *Stage) unwrap(p *pipeline.Packet, src netip.Addr) bool {
	d := p.Bytes()
	if s.opener == nil {
		if segment.IsHello(d) {
			return s.hello(src, d)
		}
		if mesh.IsCaps(d) {
			return s.caps(src, d)
		}
		fr, err := mesh.DecodeLegacy(d)
		if err != nil {
			return s.rules.Refuse(meshReason(err, d))
		}
		s.fr = fr
		return true
	}
	fr, _, _, err := s.opener.Open(d)
	if err != nil {
		return s.rules.Refuse(meshReason(err, d))
	}
	if segment.IsHello(fr) {
		return s.hello(src, fr)
	}
	if mesh.IsCaps(fr) {
		return s.caps(src, fr)
	}
	s.fr = fr
	return true
}

// caps hands a peer's capabilities announcement b to OnCaps: it is used,
// not injected, and not counted as a drop unless malformed (malformed_mesh).
// A source outside the peer set (admitted by AcceptAnyPeer) is not recorded.
func (s *Stage) caps(src netip.Addr, b []byte) bool {
	a, err := mesh.ParseCaps(b)
	if err != nil {
		return s.rules.Refuse(pipeline.ReasonMalformedMesh)
	}
	if peer := s.set.Lookup(src); peer != nil && s.cfg.OnCaps != nil {
		s.cfg.OnCaps(peer, a)
	}
	return s.rules.Refuse(rules.Used)
}

// hello handles a neighbour's hello body b from src: it is used, not
// injected, and not counted as a drop unless malformed (malformed_mesh).
func (s *Stage) hello(src netip.Addr, b []byte) bool {
	id, mac, ok := segment.ParseHello(b)
	if !ok || s.segment == nil {
		return s.rules.Refuse(pipeline.ReasonMalformedMesh)
	}
	if s.segment.HeardCaps(s.rules.Now(), src, id, mac, mesh.HelloCaps(b)) {
		s.log.Info().Str("peer", src.String()).Msg("another relay shares this segment; sharing injections with it")
		if s.cfg.OnNewNeighbour != nil {
			s.cfg.OnNewNeighbour()
		}
	}
	return s.rules.Refuse(rules.Used)
}

// rewrite turns the frame into a broadcast for this segment: Ethernet
// padding cut (the NIC pads again if needed), the --rebroadcast-destination
// policy applied, Ethernet source our MAC and destination broadcast, IP and
// UDP checksums valid. An IPv6 frame keeps its group, goes to the group's
// MAC (33:33:…) from ours, and gets a valid UDP checksum (mandatory in
// IPv6); source, ports, hop limit and payload stay. It cannot fail.
func (s *Stage) rewrite(p *pipeline.Packet) bool {
	f := &p.Frame
	p.Len = f.Len()
	b := p.Bytes()
	if f.IPv6 {
		frame.SetMulticastEthernet(b, f.Dst, s.info.MAC)
		f.FixChecksums(b)
		return true
	}
	if dst, change := s.destination(f.Src, f.Dst); change {
		f.SetDst(b, dst)
	}
	frame.SetBroadcastEthernet(b, s.info.MAC)
	f.FixChecksums(b)
	return true
}

// deliverOnce refuses a frame already delivered (duplicate) and one another
// relay on this segment injects (other_injector). Self mode re-broadcasts
// our own captures on purpose, as the Python relay does for testing, so it
// skips both.
func (s *Stage) deliverOnce(p *pipeline.Packet) bool {
	return s.set.Self || s.rules.FirstDelivery(p) && s.rules.OurInjection(p)
}

var limited = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// destination applies the --rebroadcast-destination policy to dst, for a
// frame from src. With several IPv4 addresses on the interface, "our"
// broadcast address is that of the subnet holding src (else the first
// address's), and any of our subnets' broadcast addresses is kept in auto.
func (s *Stage) destination(src, dst netip.Addr) (netip.Addr, bool) {
	ours := s.info.BroadcastFor(src)
	switch s.cfg.Dest {
	case Limited:
		return limited, dst != limited
	case Subnet:
		return ours, ours.IsValid() && dst != ours
	case Auto:
		return ours, ours.IsValid() && dst != limited && !s.info.IsBroadcast(dst)
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
	now := s.rules.Now()
	logNow := now-u.lastLog > int64(10*time.Second)
	if logNow {
		u.lastLog = now
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
