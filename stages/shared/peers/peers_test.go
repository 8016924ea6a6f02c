package peers

import (
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
)

// TestCaps: a peer has no capabilities until it announces, has them until
// they expire, and loses them with its record when it leaves the set; a
// peer that stays keeps them across an update.
func TestCaps(t *testing.T) {
	a := netip.MustParseAddrPort("[fd00:77::2]:7124")
	tb := NewTable()
	now := time.Unix(1000, 0)
	tb.Update(map[netip.AddrPort]string{a: "static"}, false, now)
	p := tb.Load().Lookup(a.Addr())
	if c, known := p.CapsKnown(now.UnixNano()); known || c != 0 || !p.CapsHeard().IsZero() {
		t.Fatalf("new peer: caps %v known %v heard %v, want none", c, known, p.CapsHeard())
	}
	p.SetCaps(mesh.CapIPv6|0x80, now.UnixNano(), now.Add(90*time.Second).UnixNano())
	if c := p.Caps(now.Add(89 * time.Second).UnixNano()); c != mesh.CapIPv6|0x80 {
		t.Errorf("caps before expiry = %v, want ipv6+0x80", c)
	}
	if c, known := p.CapsKnown(now.Add(90 * time.Second).UnixNano()); known || c != 0 {
		t.Errorf("caps at expiry = %v known %v, want forgotten", c, known)
	}
	p.SetCaps(0, now.UnixNano(), now.Add(time.Minute).UnixNano())
	if c, known := p.CapsKnown(now.UnixNano()); !known || c != 0 {
		t.Errorf("announced none: caps %v known %v, want none and known", c, known)
	}
	p.SetCaps(mesh.CapIPv6, now.UnixNano(), now.Add(time.Minute).UnixNano())
	tb.Update(map[netip.AddrPort]string{a: "static,dns"}, false, now)
	if c := tb.Load().Lookup(a.Addr()).Caps(now.UnixNano()); c != mesh.CapIPv6 {
		t.Errorf("after an update that kept the peer: caps %v, want ipv6", c)
	}
	tb.Update(nil, false, now)
	tb.Update(map[netip.AddrPort]string{a: "static"}, false, now)
	if c := tb.Load().Lookup(a.Addr()).Caps(now.UnixNano()); c != 0 {
		t.Errorf("after leaving and rejoining: caps %v, want none", c)
	}
}
