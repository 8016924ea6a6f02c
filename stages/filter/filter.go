// Package filter is the outbound pipeline's third stage: it decides which
// decoded broadcasts are forwarded to the mesh, and counts every one it drops
// under its reason. It is a composition of the shared rules
// (stages/shared/rules), in the order keep documents.
package filter

import (
	"context"
	"hash/maphash"
	"net/netip"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/rules"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// Config is what the filter stage checks against.
type Config struct {
	// Ports are the relayed UDP destination ports.
	Ports []uint16
	// Fragments relays the fragments of datagrams too large for one frame.
	Fragments bool
	// Observer, if set, sees every batch's verdicts (see rules.Observer).
	Observer rules.Observer
	// Limiter, if set, limits the frames each client (keyed by the IP
	// source of the captured frame) gets forwarded (--rate-limit).
	Limiter *ratelimit.Limiter
	// Groups are the IPv6 groups relayed (--ipv6-group); the decode stage
	// passes IPv6 frames only with --ipv6.
	Groups []netip.Addr
}

// Stage filters decoded frames.
type Stage struct {
	in, out *pipeline.Link
	rules   *rules.Rules
}

// New returns a filter stage from in to out. d and seg may be nil: no
// duplicate suppression, no relays known on our segment.
func New(cfg Config, in, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics, d *dedup.Cache, seg *segment.Table, seed maphash.Seed) *Stage {
	return &Stage{in: in, out: out, rules: rules.New(rules.Config{Ports: cfg.Ports, Fragments: cfg.Fragments,
		Limiter: cfg.Limiter, Dedup: d, Segment: seg, Seed: seed, Observer: cfg.Observer, Groups: cfg.Groups}, c, m)}
}

// Run filters until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	return s.in.Serve(ctx, s.Handle)
}

// Handle filters one batch and passes it on. Run calls it for each batch;
// benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.rules.Handle(b, s.out, s.keep)
	return nil
}

// keep applies the outbound rules to p in order; the first that refuses p
// names the reason it is counted under.
//
// The rate limit comes before fragment tracking, so the later fragments of a
// first fragment that was refused are refused too (unmatched), and before
// dedup, so a client's retry of a refused datagram is not taken for a
// duplicate. A first fragment is followed only once its port passed. An
// IPv6 frame must also go to a relayed group, at the group's MAC (the
// kernel's filter checks both already; these make the rule explicit and
// counted).
func (s *Stage) keep(p *pipeline.Packet) bool {
	r := s.rules
	if r.NotNeighbourInjection(p) &&
		r.GroupEthernet(p) &&
		r.RelayedGroup(p) &&
		r.GoodSource(p) &&
		r.WithinRate(p, p.Frame.Src) &&
		r.Fragment(p) &&
		r.RelayedPort(p) &&
		r.FollowFragments(p) &&
		r.FirstCapture(p) {
		return true
	}
	return r.Drop(p)
}
