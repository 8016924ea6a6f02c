//go:build linux

package rewrite

import (
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
)

// sentTo records the datagrams a ProbeResponder sends.
type sentTo struct {
	to []netip.AddrPort
	b  [][]byte
}

func (s *sentTo) WriteTo(b []byte, addr netip.AddrPort) error {
	s.to, s.b = append(s.to, addr), append(s.b, append([]byte(nil), b...))
	return nil
}

// TestProbeAnswered: a legacy probe is answered, from a peer or a stranger,
// with the relay's MTU and version, no longer than the request; nothing is
// injected or counted as a drop, and answers beyond the burst are refused.
func TestProbeAnswered(t *testing.T) {
	r := newRig(t)
	var sent sentTo
	r.cfg.Probes = NewProbeResponder(&sent, nil, "9.9.9")
	probe := mesh.PutProbe(make([]byte, mesh.ProbeLen), 42)
	if out := r.one(peerA, probe); len(out) != 0 {
		t.Fatalf("a probe was injected: %d frames", len(out))
	}
	r.one(stranger, probe)
	r.wantDrops(map[pipeline.Reason]uint64{})
	if len(sent.b) != 2 || sent.to[0] != peerA || sent.to[1] != stranger {
		t.Fatalf("replies sent to %v; want %v and %v", sent.to, peerA, stranger)
	}
	for i, known := range []bool{true, false} {
		rep, ok := mesh.ParseProbeReply(sent.b[i])
		if !ok || len(sent.b[i]) > len(probe) {
			t.Fatalf("reply %d: % x (%d bytes, request %d)", i, sent.b[i], len(sent.b[i]), len(probe))
		}
		want := mesh.ProbeReply{Nonce: 42, MTU: 1500, Format: mesh.Legacy, Version: "9.9.9", KnownPeer: known}
		if known {
			want.Flags = mesh.ProbeKnownPeer
		}
		if rep != want {
			t.Errorf("reply %d = %+v; want %+v", i, rep, want)
		}
	}
	var flood []dgram
	for range 30 {
		flood = append(flood, dgram{stranger, probe})
	}
	r.run(flood)
	if a, l := r.cfg.Probes.Answered.Load(), r.cfg.Probes.Limited.Load(); a > probeBurst+2 || l < 30-probeBurst {
		t.Errorf("30 probes at once: %d answered, %d refused; want at most %d answered", a, l, probeBurst+2)
	}
}

// TestProbeSealed: on a keyed relay a sealed probe gets a sealed reply with
// the key id; an unsealed one only learns that a key is required; a probe
// sealed with another key is bad_auth.
func TestProbeSealed(t *testing.T) {
	r := newRig(t)
	r.opener = mesh.NewOpener(key1)
	var sent sentTo
	r.cfg.Probes = NewProbeResponder(&sent, mesh.NewSealer(key1, 1), "9.9.9")
	body := mesh.PutProbe(make([]byte, mesh.ProbeLen), 7)
	r.one(peerA, sealed(mesh.NewSealer(key1, 2), body))
	r.one(peerA, body)
	r.one(peerA, sealed(mesh.NewSealer(key2, 3), body))
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonBadAuth: 1})
	if len(sent.b) != 2 {
		t.Fatalf("%d replies; want 2", len(sent.b))
	}
	got, _, _, err := mesh.NewOpener(key1).Open(sent.b[0])
	if err != nil {
		t.Fatalf("sealed reply does not open: %v", err)
	}
	rep, _ := mesh.ParseProbeReply(got)
	if rep.Format != mesh.Auth || rep.KeyID != mesh.KeyID(key1) || rep.MTU != 1500 || rep.Version != "9.9.9" {
		t.Errorf("sealed reply %+v", rep)
	}
	rep, ok := mesh.ParseProbeReply(sent.b[1])
	if !ok || rep.Flags&mesh.ProbeAuthRequired == 0 || rep.Version != "" || rep.MTU != 0 || rep.KeyID != mesh.KeyID(key1) {
		t.Errorf("reply to an unsealed probe %+v, %v; want auth required, key id, nothing else", rep, ok)
	}
}
