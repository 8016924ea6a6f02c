package mesh

import (
	"bytes"
	"testing"
)

// TestProbeRoundTrip: a request parses back to its nonce, a reply to its
// fields, and the reply is never longer than the request.
func TestProbeRoundTrip(t *testing.T) {
	req := PutProbe(make([]byte, 128), 0x0102030405060708)
	if len(req) != ProbeLen || !bytes.HasPrefix(req, []byte("SP\x01\x00\x01\x02\x03\x04\x05\x06\x07\x08\x00")) {
		t.Fatalf("request % x", req)
	}
	if n, ok := ParseProbe(req); !ok || n != 0x0102030405060708 {
		t.Fatalf("ParseProbe = %x, %v", n, ok)
	}
	if _, ok := ParseProbe(req[:ProbeLen-1]); ok {
		t.Error("a request too short for the reply parsed")
	}
	if Kind(req) != Unknown {
		t.Error("a probe looks like a legacy datagram: Python relays would take it for a frame")
	}
	want := ProbeReply{Nonce: 7, Flags: ProbeKnownPeer, MTU: 1400, Format: Auth, KeyID: 0x63, Version: "1.2.3", KnownPeer: true}
	rep := PutProbeReply(make([]byte, ProbeLen), want)
	if len(rep) > len(req) {
		t.Fatalf("reply %d bytes, request %d: the probe amplifies", len(rep), len(req))
	}
	got, ok := ParseProbeReply(rep)
	if !ok || got != want {
		t.Fatalf("ParseProbeReply = %+v, %v; want %+v", got, ok, want)
	}
	long := PutProbeReply(make([]byte, ProbeLen), ProbeReply{Version: string(bytes.Repeat([]byte("v"), 100))})
	if got, ok := ParseProbeReply(long); !ok || len(got.Version) != ProbeLen-17 {
		t.Errorf("long version: %q, %v", got.Version, ok)
	}
	bad := bytes.Clone(rep)
	bad[16] = 60
	if _, ok := ParseProbeReply(bad); ok {
		t.Error("a reply whose version runs past its end parsed")
	}
}
