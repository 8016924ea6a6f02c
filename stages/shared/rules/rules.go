// Package rules holds what both directions of a relay apply to a frame: the
// source check, the relayed ports, fragment tracking, the per-source rate
// limit, duplicate suppression and the segment rules, and the bookkeeping of
// their verdicts (drop counters, the Observer). The filter stage (outbound)
// and the rewrite stage (inbound) are compositions of these rules, each in
// its own documented order.
//
// Every rule takes the packet it judges and reports whether the packet may
// go on; a rule that refuses it notes its reason, so a stage reads as a chain
// of rules joined by && followed by one Drop, which counts the drop under
// the reason noted and tells the observer. The rules are small enough to be
// inlined into that chain, and none allocates.
package rules

import (
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// Config is the state and settings the rules of one direction check against.
type Config struct {
	// Ports are the relayed UDP destination ports.
	Ports []uint16
	// Fragments relays the fragments of datagrams too large for one frame.
	Fragments bool
	// Limiter, if set, limits the frames each source is relayed.
	Limiter *ratelimit.Limiter
	// Dedup, if set, suppresses loops and duplicate deliveries.
	Dedup *dedup.Cache
	// Segment, if set, knows the other relays on this segment.
	Segment *segment.Table
	// Seed keys the dedup hash (netio/frame.Key); the directions of one
	// relay share it, so an injected frame matches its own capture.
	Seed maphash.Seed
	// Observer, if set, sees every batch's verdicts.
	Observer Observer
	// Groups are the IPv6 link-scope groups relayed (--ipv6-group); an IPv6
	// frame to any other destination is refused. Only a stage that decodes
	// IPv6 (--ipv6) ever shows the rules an IPv6 frame.
	Groups []netip.Addr
}

// FragmentTrackSize bounds how many fragmented datagrams are followed at once.
const FragmentTrackSize = 1024

// FragmentLifetime is how long the remaining fragments of a datagram are
// expected after its first; per RFC 791 reassembly gives up after 15-60 s,
// but on one segment fragments follow each other within microseconds.
const FragmentLifetime = 2 * time.Second

// Rules applies Config to the packets of one stage. It belongs to that
// stage's goroutine.
type Rules struct {
	cfg   Config
	c     *pipeline.StageCounters
	m     *pipeline.Metrics
	frags *Fragments

	// per batch, see Begin
	now   int64 // unix ns
	rlNow int64 // the limiter's clock
	trace bool  // the observer traces this batch's drops

	why pipeline.Reason // the reason the last rule that refused gave
}

// Used is the reason a step gives for a packet it consumed rather than
// dropped (a hello): Drop neither counts nor traces it.
const Used = pipeline.NumReasons

// New returns the rules of cfg for the stage counted by c, dropping into m.
func New(cfg Config, c *pipeline.StageCounters, m *pipeline.Metrics) *Rules {
	return &Rules{cfg: cfg, c: c, m: m, frags: NewFragments(FragmentTrackSize)}
}

// Handle runs keep over the packets of b, one batch, and passes what it kept
// on to out: it counts the batch in, reads the clocks once (Begin), and shows
// the observer what was kept.
func (r *Rules) Handle(b *pipeline.Batch, out *pipeline.Link, keep func(*pipeline.Packet) bool) {
	r.c.In.Add(uint64(len(b.Pkts)))
	var rlNow int64
	if r.cfg.Limiter != nil {
		rlNow = r.cfg.Limiter.Now()
	}
	r.Begin(time.Now().UnixNano(), rlNow)
	b.Keep(keep)
	if r.cfg.Observer != nil {
		r.cfg.Observer.Kept(b)
	}
	r.c.Pass(out, b)
}

// Begin starts a batch at now (unix ns), with limiterNow the limiter's clock
// (ratelimit.Limiter.Now), and asks the observer whether it traces the
// batch. Handle calls it; tests and benchmarks that call a stage's
// per-packet step directly call it themselves.
func (r *Rules) Begin(now, limiterNow int64) {
	r.now, r.rlNow = now, limiterNow
	r.trace = r.cfg.Observer != nil && r.cfg.Observer.Tracing()
}

// Now is the time of the current batch, unix ns.
func (r *Rules) Now() int64 { return r.now }

// Refuse notes why the current packet is refused and returns false, so a
// step can end with return r.Refuse(why); Drop counts it.
func (r *Rules) Refuse(why pipeline.Reason) bool {
	r.why = why
	return false
}

// Drop counts p as dropped for the reason the rule that refused it gave
// (nothing for Used), tells the observer if it traces the batch, and returns
// false.
func (r *Rules) Drop(p *pipeline.Packet) bool {
	if r.why == Used {
		return false
	}
	r.m.Drop(r.why, 1)
	if r.trace {
		r.cfg.Observer.Dropped(p, r.why)
	}
	return false
}

// The rules below keep their common case (nothing to check, or the check
// passes) within the compiler's inlining budget: the work they rarely or
// only sometimes do is a call of its own.

// GoodSource refuses a frame whose IP source no client can have
// (bad_source; see ClientSource), and an IPv6 frame from a link-local
// source, which no server on another segment can answer
// (link_local_source; see frame.CheckSource6).
func (r *Rules) GoodSource(p *pipeline.Packet) bool {
	if p.Frame.IPv6 {
		return r.goodSource6(p.Frame.Src)
	}
	return ClientSource(p.Frame.Src) || r.Refuse(pipeline.ReasonBadSource)
}

// goodSource6 is kept out of line, so GoodSource stays within the budget.
//
//go:noinline
func (r *Rules) goodSource6(src netip.Addr) bool {
	if err := frame.CheckSource6(src); err != nil {
		return r.Refuse(pipeline.FrameReason(err))
	}
	return true
}

// RelayedGroup refuses an IPv6 frame whose destination is not one of the
// relayed link-scope groups (not_broadcast, as for an IPv4 frame that is
// not a broadcast: the group is IPv6's broadcast). IPv4 frames pass; each
// direction checks their broadcast destination its own way.
func (r *Rules) RelayedGroup(p *pipeline.Packet) bool {
	return !p.Frame.IPv6 || r.relayedGroup(p.Frame.Dst)
}

//go:noinline
func (r *Rules) relayedGroup(dst netip.Addr) bool {
	if err := frame.CheckGroup(dst, r.cfg.Groups); err != nil {
		return r.Refuse(pipeline.FrameReason(err))
	}
	return true
}

// GroupEthernet refuses a captured IPv6 frame whose Ethernet destination is
// not its group's MAC (frame.MulticastMAC; not_broadcast): a frame
// unicast to one host at the link layer was not sent to the segment, even
// with a group as its IP destination. IPv4 frames pass (the capture filter
// admits only broadcast MACs for them).
func (r *Rules) GroupEthernet(p *pipeline.Packet) bool {
	if p.Frame.IPv6 {
		if m := frame.MulticastMAC(p.Frame.Dst); [6]byte(p.Bytes()[0:6]) != m {
			return r.Refuse(pipeline.ReasonNotBroadcast)
		}
	}
	return true
}

// ClientSource reports whether a client can have a as its IP source: not in
// 0.0.0.0/8 ("this network", RFC 1122; the unspecified address included),
// loopback, multicast, 240.0.0.0/4 (reserved, RFC 1112) or the limited
// broadcast address.
func ClientSource(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	// On the first byte alone: 0/8, loopback 127/8, multicast 224/4 and
	// 240/4 (which holds the limited broadcast address).
	b := a.As4()[0]
	return b != 0 && b != 127 && b < 224
}

// RelayedPort refuses a frame with a UDP header (a whole datagram or a first
// fragment) to a port not relayed (wrong_port). A later fragment carries no
// port: see Fragment.
func (r *Rules) RelayedPort(p *pipeline.Packet) bool {
	f := &p.Frame
	return !f.HasUDPHeader() || HasPort(r.cfg.Ports, f.DstPort) || r.Refuse(pipeline.ReasonWrongPort)
}

// HasPort reports whether p is one of ports.
func HasPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// Fragment refuses a fragment when fragments are not relayed, and a later
// fragment whose first one did not pass, or passed more than
// FragmentLifetime ago (both unmatched_fragment). Whole datagrams pass.
func (r *Rules) Fragment(p *pipeline.Packet) bool {
	f := &p.Frame
	if f.IsFragment() && (!r.cfg.Fragments || !f.HasUDPHeader() && !r.frags.Match(r.now, f)) {
		return r.Refuse(pipeline.ReasonFragment)
	}
	return true
}

// FollowFragments starts following the datagram whose first fragment p is,
// so that Fragment passes its later fragments. Called once p has passed
// every rule that can refuse its datagram, it always returns true.
func (r *Rules) FollowFragments(p *pipeline.Packet) bool {
	if f := &p.Frame; f.MoreFrags && f.HasUDPHeader() { // a first fragment
		r.follow(f)
	}
	return true
}

// follow is kept out of line, so FollowFragments stays within the budget.
//
//go:noinline
func (r *Rules) follow(f *frame.Frame) { r.frags.Add(r.now+int64(FragmentLifetime), f) }

// WithinRate takes a token from the bucket of src (rate_limited when there
// is none).
func (r *Rules) WithinRate(p *pipeline.Packet, src netip.Addr) bool {
	return r.cfg.Limiter == nil || r.withinRate(src)
}

// withinRate is kept out of line, so WithinRate stays within the budget.
//
//go:noinline
func (r *Rules) withinRate(src netip.Addr) bool {
	return r.cfg.Limiter.Allow(r.rlNow, src) || r.Refuse(pipeline.ReasonRateLimited)
}

// FirstCapture refuses a captured frame that matches one injected or
// captured within the dedup window: a loop or a repeat (duplicate). It
// records the frame's key in p.
func (r *Rules) FirstCapture(p *pipeline.Packet) bool {
	return r.cfg.Dedup == nil || r.firstCapture(p)
}

func (r *Rules) firstCapture(p *pipeline.Packet) bool {
	p.Key = p.Frame.Key(p.Bytes(), r.cfg.Seed)
	return r.cfg.Dedup.Captured(r.now, p.Key) || r.Refuse(pipeline.ReasonDuplicate)
}

// FirstDelivery refuses a frame from the mesh already delivered within the
// dedup window, by another relay of its origin segment for instance
// (duplicate). It records the frame's key in p; called after the frame is
// rewritten, so the key matches what relays on our segment capture of our
// injection.
func (r *Rules) FirstDelivery(p *pipeline.Packet) bool {
	return r.cfg.Dedup == nil || r.firstDelivery(p)
}

func (r *Rules) firstDelivery(p *pipeline.Packet) bool {
	p.Key = p.Frame.Key(p.Bytes(), r.cfg.Seed)
	return r.cfg.Dedup.Received(r.now, p.Key) || r.Refuse(pipeline.ReasonDuplicate)
}

// NotNeighbourInjection refuses a captured frame sent from the MAC a relay
// on this segment injects with: forwarding it again would send it back
// towards where it came from (neighbour_injection).
func (r *Rules) NotNeighbourInjection(p *pipeline.Packet) bool {
	if s := r.cfg.Segment; s != nil && s.IsNeighbourMAC([6]byte(p.Bytes()[6:12])) {
		return r.Refuse(pipeline.ReasonNeighbourInjection)
	}
	return true
}

// NotFromNeighbour refuses a mesh datagram from src, a relay on this
// segment: it carries a frame captured on our own segment (same_segment).
func (r *Rules) NotFromNeighbour(p *pipeline.Packet, src netip.Addr) bool {
	if s := r.cfg.Segment; s != nil && s.IsNeighbour(src) {
		return r.Refuse(pipeline.ReasonSameSegment)
	}
	return true
}

// OurInjection refuses a frame that another relay on this segment injects
// (other_injector): of the relays on a segment exactly one injects each
// frame (segment.Table.Owner).
func (r *Rules) OurInjection(p *pipeline.Packet) bool {
	return r.cfg.Segment == nil || r.ourInjection(p)
}

// ourInjection elects the injector of p among this segment's relays; an
// IPv6 frame only among those that announced IPv6, since the others drop it.
func (r *Rules) ourInjection(p *pipeline.Packet) bool {
	key := uint64(p.Frame.StableKey(p.Bytes()))
	if p.Frame.IPv6 {
		return r.cfg.Segment.Owner6(key) || r.Refuse(pipeline.ReasonOtherInjector)
	}
	return r.cfg.Segment.Owner(key) || r.Refuse(pipeline.ReasonOtherInjector)
}
