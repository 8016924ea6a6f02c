// Package decode is the outbound pipeline's second stage: it parses each
// captured frame as Ethernet/IPv4/UDP (and, with --ipv6, Ethernet/IPv6/UDP)
// and drops, counted, what does not parse.
package decode

import (
	"context"

	"github.com/snowsignal/snowsignal/pipeline"
)

// Stage decodes frames in place; packets that survive carry their Frame.
type Stage struct {
	ipv6    bool
	in, out *pipeline.Link
	c       *pipeline.StageCounters
	m       *pipeline.Metrics
}

// New returns a decode stage from in to out that decodes IPv4 frames only.
func New(in, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics) *Stage {
	return &Stage{in: in, out: out, c: c, m: m}
}

// NewIP returns a decode stage from in to out that decodes IPv6 frames too
// when ipv6 is set (--ipv6); without it, an IPv6 frame is not_ipv4, as New's.
func NewIP(ipv6 bool, in, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics) *Stage {
	return &Stage{ipv6: ipv6, in: in, out: out, c: c, m: m}
}

// Run decodes until its input link is closed.
func (s *Stage) Run(ctx context.Context) error {
	return s.in.Serve(ctx, s.Handle)
}

// Handle decodes one batch and passes it on. Run calls it for each batch;
// benchmarks call it directly.
func (s *Stage) Handle(b *pipeline.Batch) error {
	s.c.In.Add(uint64(len(b.Pkts)))
	b.Keep(s.decode)
	s.c.Pass(s.out, b)
	return nil
}

func (s *Stage) decode(p *pipeline.Packet) bool {
	var err error
	if s.ipv6 {
		err = p.Frame.DecodeIP(p.Bytes())
	} else {
		err = p.Frame.Decode(p.Bytes())
	}
	if err != nil {
		s.m.Drop(pipeline.FrameReason(err), 1)
		return false
	}
	// Trailing Ethernet padding stays: the mesh carries the frame as captured,
	// byte for byte, as the Python relay does.
	return true
}
