//go:build linux

package rewrite

import (
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// TestCapsAnnouncements: a peer's capabilities datagram, in the legacy
// (bare body) or the keyed (sealed) mesh, is handed to OnCaps with the
// peer's record, is not injected and is no drop; one cut short is
// malformed_mesh, one from outside the peer set unknown_peer (and not
// handed on), an unsealed one on a keyed mesh is refused like any datagram.
func TestCapsAnnouncements(t *testing.T) {
	body := mesh.PutCaps(make([]byte, mesh.CapsLen), mesh.Announce{ID: 0x0a0b0c0d, Caps: mesh.CapIPv6, WantReply: true})
	for _, keyed := range []bool{false, true} {
		t.Run(map[bool]string{false: "legacy", true: "keyed"}[keyed], func(t *testing.T) {
			r := newRig(t)
			var got []mesh.Announce
			var from []netip.AddrPort
			r.cfg.OnCaps = func(p *peers.Peer, a mesh.Announce) { got, from = append(got, a), append(from, p.Addr) }
			wrap := func(b []byte) []byte { return b }
			if keyed {
				r.opener = mesh.NewOpener(key1)
				s := mesh.NewSealer(key1, 5)
				wrap = func(b []byte) []byte { return sealed(s, b) }
			}
			if out := r.one(peerA, wrap(body)); len(out) != 0 {
				t.Fatalf("an announcement was passed on for injection: %x", out)
			}
			if len(got) != 1 || got[0] != (mesh.Announce{ID: 0x0a0b0c0d, Caps: mesh.CapIPv6, WantReply: true}) || from[0] != peerA {
				t.Fatalf("OnCaps got %+v from %v, want the announcement from %v", got, from, peerA)
			}
			r.wantDrops(nil)

			r.one(peerA, wrap(body[:mesh.CapsLen-1]))
			r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonMalformedMesh: 1})
			r.one(stranger, wrap(body))
			want := map[pipeline.Reason]uint64{pipeline.ReasonMalformedMesh: 1, pipeline.ReasonUnknownPeer: 1}
			r.wantDrops(want)
			if keyed {
				r.one(peerA, body)
				want[pipeline.ReasonMalformedMesh]++ // no "SN": not a datagram of this mesh
				r.wantDrops(want)
			}
			if len(got) != 1 {
				t.Errorf("OnCaps called %d times, want once", len(got))
			}
		})
	}
}

// TestHelloCaps: the capabilities in a neighbour's hello reach the segment
// table; only neighbours that announced ipv6 share IPv6 injections.
func TestHelloCaps(t *testing.T) {
	r := newRig(t)
	r.seg = segment.NewTable(0xaaaa, time.Minute)
	r.seg.SetSelf(ourAddr)
	r.one(peerC, segment.PutHelloCaps(make([]byte, segment.HelloLen), 0xbbbb, neighbourMAC, mesh.CapIPv6))
	if c := r.seg.NeighbourCaps(peerC.Addr()); c != mesh.CapIPv6 {
		t.Errorf("neighbour caps = %v, want ipv6", c)
	}
	r.wantDrops(nil)
}

// TestOwnHelloIPv6Only: a relay without IPv4 hears its own ff02::1 hello
// back from its ULA, which is not a peer: it is used, not an unknown_peer
// drop (nor a discovery kick). Another source's hello still is.
func TestOwnHelloIPv6Only(t *testing.T) {
	r := newRig(t)
	own := netip.MustParseAddr("fd00:77::2")
	info := ourInfo()
	info.Addr, info.Prefix, info.Broadcast = netip.Addr{}, netip.Prefix{}, netip.Addr{}
	info.Addrs6 = []netip.Prefix{netip.PrefixFrom(own, 64)}
	r.target.Store(info)
	r.seg = segment.NewTable(0xaaaa, time.Minute)
	hello := segment.PutHelloCaps(make([]byte, segment.HelloLen), 0xaaaa, ourMAC, mesh.CapIPv6)
	r.one(netip.AddrPortFrom(own, 7124), hello)
	r.wantDrops(nil)
	r.one(netip.MustParseAddrPort("[fd00:77::99]:7124"), hello)
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonUnknownPeer: 1})
}
