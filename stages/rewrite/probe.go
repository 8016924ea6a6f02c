package rewrite

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/rules"
)

// Probe answers are rate-limited globally: `snowsignal doctor` sends one
// probe per peer and run, so a few per second is plenty, and a flood of
// forged probes earns its victims at most this many replies.
const (
	probeRate  = 10 // answers per second
	probeBurst = 10
)

// A ProbeSender sends one datagram: the mesh socket (meshconn.Conn.WriteTo).
type ProbeSender interface {
	WriteTo(b []byte, addr netip.AddrPort) error
}

// A ProbeResponder answers `snowsignal doctor`'s probes (mesh.PutProbe) on
// the mesh port with the relay's version, mesh format, key id and MTU. Its
// Answer runs on the rewrite stage's goroutine; its counters may be read
// from any.
type ProbeResponder struct {
	conn    ProbeSender
	sealer  *mesh.Sealer // nil: legacy mesh
	version string

	// Answered and Limited count probes answered and probes refused by the
	// rate limit (or whose answer could not be sent).
	Answered, Limited atomic.Uint64

	tokens float64
	last   int64
	buf    [mesh.AuthHeaderLen + mesh.ProbeLen]byte
}

// NewProbeResponder returns a responder sending from conn, sealing with
// sealer (nil on a legacy mesh) and announcing version.
func NewProbeResponder(conn ProbeSender, sealer *mesh.Sealer, version string) *ProbeResponder {
	return &ProbeResponder{conn: conn, sealer: sealer, version: version, tokens: probeBurst}
}

// notProbe answers a doctor's probe, from any source, and uses it: it goes
// no further, and is no drop.
func (s *Stage) notProbe(p *pipeline.Packet) bool {
	if s.cfg.Probes != nil && s.info != nil && s.probe(p.Addr, p.Bytes()) {
		return s.rules.Refuse(rules.Used)
	}
	return true
}

// probe answers datagram d if it is a probe this relay can read, and reports
// whether it was one. A sealed probe on a relay without a key is not one: it
// is dropped as bad_auth like any sealed datagram there.
func (s *Stage) probe(src netip.AddrPort, d []byte) bool {
	r := s.cfg.Probes
	body, sealed := d, false
	if b := mesh.SealedBody(d); b != nil && mesh.IsProbe(b) && s.opener != nil {
		body, sealed = b, true
	} else if !mesh.IsProbe(d) {
		return false
	}
	if sealed {
		var err error
		if body, _, _, err = s.opener.Open(d); err != nil {
			return false // forged or another key: counted as bad_auth
		}
	}
	nonce, ok := mesh.ParseProbe(body)
	if !ok {
		return false // cut short: malformed
	}
	known := s.set.Lookup(src.Addr()) != nil
	r.answer(s.rules.Now(), src, nonce, known, sealed, s.info.MTU)
	return true
}

// answer sends the reply to a valid probe, if the rate limit allows.
func (r *ProbeResponder) answer(now int64, src netip.AddrPort, nonce uint64, known, sealed bool, mtu int) {
	r.tokens = min(probeBurst, r.tokens+float64(now-r.last)*probeRate/float64(time.Second))
	r.last = now
	if r.tokens < 1 {
		r.Limited.Add(1)
		return
	}
	r.tokens--
	rep := mesh.ProbeReply{Nonce: nonce, MTU: mtu, Format: mesh.Legacy, Version: r.version}
	if known {
		rep.Flags |= mesh.ProbeKnownPeer
	}
	if r.sealer != nil {
		rep.Format, rep.KeyID = mesh.Auth, r.sealer.KeyID()
		if !sealed {
			// Tell an unauthenticated prober only that it needs the key.
			rep.Flags |= mesh.ProbeAuthRequired
			rep.MTU, rep.Version = 0, ""
		}
	}
	off := mesh.AuthHeaderLen
	body := mesh.PutProbeReply(r.buf[off:], rep)
	out := body
	if sealed {
		start := r.sealer.Seal(r.buf[:], off, len(body))
		out = r.buf[start : off+len(body)]
	}
	if err := r.conn.WriteTo(out, src); err != nil {
		r.Limited.Add(1)
		return
	}
	r.Answered.Add(1)
}
