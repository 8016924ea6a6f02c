// Package filter is the outbound pipeline's third stage: it decides which
// decoded broadcasts are forwarded to the mesh, and counts every one it drops
// under its reason.
package filter

import (
	"context"
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// Config is what the filter stage checks against.
type Config struct {
	// Ports are the relayed UDP destination ports.
	Ports []uint16
	// Fragments relays the fragments of datagrams too large for one frame.
	Fragments bool
	// Observer, if set, sees every batch's verdicts (see Observer).
	Observer Observer
	// Limiter, if set, limits the frames each client (keyed by the IP
	// source of the captured frame) gets forwarded (--rate-limit).
	Limiter *ratelimit.Limiter
}

// Stage filters decoded frames.
type Stage struct {
	cfg     Config
	in, out *pipeline.Link
	c       *pipeline.StageCounters
	m       *pipeline.Metrics
	dedup   *dedup.Cache   // nil: no duplicate suppression
	segment *segment.Table // nil: no relays known on our segment
	seed    maphash.Seed
	frags   *Fragments
	now     int64
	trace   bool  // the observer traces this batch's drops
	rlNow   int64 // the limiter's clock, read once per batch
}

// New returns a filter stage from in to out. dedup may be nil.
func New(cfg Config, in, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics, d *dedup.Cache, seg *segment.Table, seed maphash.Seed) *Stage {
	return &Stage{cfg: cfg, in: in, out: out, c: c, m: m, dedup: d, segment: seg, seed: seed, frags: NewFragments(fragmentTrackSize)}
}

// fragmentTrackSize bounds how many fragmented datagrams are followed at once.
const fragmentTrackSize = 1024

// fragmentLifetime is how long the remaining fragments of a datagram are
// expected after its first; per RFC 791 reassembly gives up after 15-60 s, but
// on one segment fragments follow each other within microseconds.
const fragmentLifetime = int64(2 * time.Second)

// Run filters until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	for b := range s.in.Batches(ctx) {
		s.Handle(b)
	}
	return nil
}

// Handle filters one batch and passes it on. Run calls it for each batch;
// benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.c.In.Add(uint64(len(b.Pkts)))
	s.now = time.Now().UnixNano()
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

func (s *Stage) keep(p *pipeline.Packet) bool {
	f := &p.Frame
	if s.segment != nil && s.segment.IsNeighbourMAC([6]byte(p.Bytes()[6:12])) {
		s.drop(p, pipeline.ReasonNeighbourInjection)
		return false
	}
	if r, ok := CheckSource(f.Src); !ok {
		s.drop(p, r)
		return false
	}
	// Before fragment tracking, so the later fragments of a first fragment
	// that was refused are refused too (unmatched); before dedup, so a
	// client's retry of a refused datagram is not taken for a duplicate.
	if l := s.cfg.Limiter; l != nil && !l.Allow(s.rlNow, f.Src) {
		s.drop(p, pipeline.ReasonRateLimited)
		return false
	}
	switch {
	case !f.IsFragment():
		if !hasPort(s.cfg.Ports, f.DstPort) {
			s.drop(p, pipeline.ReasonWrongPort)
			return false
		}
	case !s.cfg.Fragments:
		s.drop(p, pipeline.ReasonFragment)
		return false
	case f.HasUDPHeader(): // first fragment
		if !hasPort(s.cfg.Ports, f.DstPort) {
			s.drop(p, pipeline.ReasonWrongPort)
			return false
		}
		s.frags.Add(s.now+fragmentLifetime, f)
	default: // a later fragment: relayed only if its first one was
		if !s.frags.Match(s.now, f) {
			s.drop(p, pipeline.ReasonFragment)
			return false
		}
	}
	if s.dedup != nil {
		p.Key = f.Key(p.Bytes(), s.seed)
		if !s.dedup.Captured(s.now, p.Key) {
			s.drop(p, pipeline.ReasonDuplicate)
			return false
		}
	}
	return true
}

func hasPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// CheckSource rejects IP sources no client can have: 0.0.0.0/8 ("this
// network", RFC 1122; the unspecified address included), loopback,
// multicast, 240.0.0.0/4 (reserved, RFC 1112) and the limited broadcast
// address.
func CheckSource(a netip.Addr) (pipeline.Reason, bool) {
	if !a.Is4() || a.IsLoopback() || a.IsMulticast() {
		return pipeline.ReasonBadSource, false
	}
	if b := a.As4(); b[0] == 0 || b[0] >= 240 {
		return pipeline.ReasonBadSource, false
	}
	return 0, true
}
