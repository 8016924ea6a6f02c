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
	"github.com/snowsignal/snowsignal/stages/dedup"
)

// Config is what the filter stage checks against.
type Config struct {
	// Ports are the relayed UDP destination ports.
	Ports []uint16
	// Fragments relays the fragments of datagrams too large for one frame.
	Fragments bool
}

// Stage filters decoded frames.
type Stage struct {
	cfg     Config
	in, out *pipeline.Link
	c       *pipeline.StageCounters
	m       *pipeline.Metrics
	dedup   *dedup.Cache // nil: no duplicate suppression
	seed    maphash.Seed
	frags   *Fragments
	now     int64
}

// New returns a filter stage from in to out. dedup may be nil.
func New(cfg Config, in, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics, d *dedup.Cache, seed maphash.Seed) *Stage {
	return &Stage{cfg: cfg, in: in, out: out, c: c, m: m, dedup: d, seed: seed, frags: NewFragments(fragmentTrackSize)}
}

// fragmentTrackSize bounds how many fragmented datagrams are followed at once.
const fragmentTrackSize = 1024

// fragmentLifetime is how long the remaining fragments of a datagram are
// expected after its first; per RFC 791 reassembly gives up after 15-60 s, but
// on one segment fragments follow each other within microseconds.
const fragmentLifetime = int64(2 * time.Second)

// Run filters until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	for b := range s.in.C() {
		s.c.In.Add(uint64(len(b.Pkts)))
		s.now = time.Now().UnixNano()
		b.Keep(s.keep)
		n := len(b.Pkts)
		if s.out.Send(b) {
			s.c.Out.Add(uint64(n))
		}
	}
	return nil
}

func (s *Stage) keep(p *pipeline.Packet) bool {
	f := &p.Frame
	if r, ok := CheckSource(f.Src); !ok {
		s.m.Drop(r, 1)
		return false
	}
	switch {
	case !f.IsFragment():
		if !hasPort(s.cfg.Ports, f.DstPort) {
			s.m.Drop(pipeline.ReasonWrongPort, 1)
			return false
		}
	case !s.cfg.Fragments:
		s.m.Drop(pipeline.ReasonFragment, 1)
		return false
	case f.HasUDPHeader(): // first fragment
		if !hasPort(s.cfg.Ports, f.DstPort) {
			s.m.Drop(pipeline.ReasonWrongPort, 1)
			return false
		}
		s.frags.Add(s.now+fragmentLifetime, f)
	default: // a later fragment: relayed only if its first one was
		if !s.frags.Match(s.now, f) {
			s.m.Drop(pipeline.ReasonFragment, 1)
			return false
		}
	}
	if s.dedup != nil {
		p.Key = f.Key(p.Bytes(), s.seed)
		if !s.dedup.Captured(s.now, p.Key) {
			s.m.Drop(pipeline.ReasonDuplicate, 1)
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

// CheckSource rejects IP sources no client can have: unspecified, loopback,
// multicast and the limited broadcast address.
func CheckSource(a netip.Addr) (pipeline.Reason, bool) {
	if !a.Is4() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return pipeline.ReasonBadSource, false
	}
	return 0, true
}
