//go:build linux

package iface

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/internal/nstest"
)

func TestAddr6Prefers(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		addrs []netip.Prefix
		want  string
	}{
		{nil, "invalid IP"},
		{[]netip.Prefix{p("fd00:6::2/64")}, "fd00:6::2"},
		{[]netip.Prefix{p("fd00:6::2/64"), p("2001:db8::2/64")}, "2001:db8::2"},     // global over ULA
		{[]netip.Prefix{p("2001:db8::2/64"), p("2001:db8:1::2/64")}, "2001:db8::2"}, // the first global
		{[]netip.Prefix{p("fc00::1/7"), p("fd00:6::2/64")}, "fc00::1"},              // the first ULA
	} {
		i := &Info{Addrs6: tc.addrs}
		if got := i.Addr6(); got.String() != tc.want {
			t.Errorf("Addr6 of %v = %v, want %s", tc.addrs, got, tc.want)
		}
	}
}

// TestLookupIPv6: Lookup lists the global and unique-local addresses of a
// real interface, not a deprecated one, and its link-local address apart.
func TestLookupIPv6(t *testing.T) {
	ns := nstest.New(t)
	var a, b *Info
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(nstest.IfB)
		if err != nil {
			return err
		}
		global, _ := netlink.ParseAddr("2001:db8:6::2/64")
		global.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(l, global); err != nil {
			return err
		}
		old, _ := netlink.ParseAddr("2001:db8:7::2/64")
		old.Flags = unix.IFA_F_NODAD
		old.PreferedLft, old.ValidLft = 0, 3600 // deprecated, still valid
		if err := netlink.AddrAdd(l, old); err != nil {
			return err
		}
		if b, err = Lookup(nstest.IfB); err != nil {
			return err
		}
		a, err = Lookup(nstest.IfA)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("fd00:6::2/64"), netip.MustParsePrefix("2001:db8:6::2/64")}
	got := slices.Clone(b.Addrs6)
	slices.SortFunc(got, func(x, y netip.Prefix) int { return y.Addr().Compare(x.Addr()) })
	if !slices.Equal(got, want) {
		t.Errorf("%s: Addrs6 = %v, want %v (in any order)", nstest.IfB, b.Addrs6, want)
	}
	if b.Addr6() != netip.MustParseAddr("2001:db8:6::2") {
		t.Errorf("%s: Addr6 = %v, want the global 2001:db8:6::2", nstest.IfB, b.Addr6())
	}
	if a.Addr6() != nstest.AddrA || len(a.Addrs6) != 1 {
		t.Errorf("%s: Addrs6 %v, Addr6 %v; want only %v", nstest.IfA, a.Addrs6, a.Addr6(), nstest.AddrA)
	}
	for _, i := range []*Info{a, b} {
		if ll := i.LinkLocal6; !ll.IsLinkLocalUnicast() || ll.Zone() != i.Name {
			t.Errorf("%s: LinkLocal6 = %v, want fe80::/10 zoned %s", i.Name, ll, i.Name)
		}
		if i.Addr.IsValid() {
			t.Errorf("%s: IPv4 address %v on an IPv6-only interface", i.Name, i.Addr)
		}
	}
}
