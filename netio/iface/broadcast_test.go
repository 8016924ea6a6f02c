package iface_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// The broadcast address is the one configured on the interface, and the
// prefix's last address when none is configured.
func TestLookupBroadcastConfiguredOrComputed(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.Spec{Subnet: netip.MustParsePrefix("10.79.0.0/24"),
		Segments: []netlab.SegmentSpec{{Name: "a", Hosts: netlab.HostNames("h")}}})
	h := l.Host("h")
	addr := h.IP.String() + "/24"
	for _, tc := range []struct {
		name string
		add  string // ip addr add arguments
		want string
	}{
		{"configured", addr + " brd 10.79.0.127", "10.79.0.127"},
		{"none configured", addr, "10.79.0.255"},
	} {
		for _, cmd := range []string{"addr flush dev eth0", "addr add " + tc.add + " dev eth0"} {
			if out, err := h.Command(t.Context(), "ip", strings.Fields(cmd)...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v\n%s", cmd, err, out)
			}
		}
		var info *iface.Info
		err := h.Do(func() (err error) {
			info, err = iface.Lookup("eth0")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if info.Broadcast.String() != tc.want || info.Addr != h.IP || info.Prefix.String() != "10.79.0.0/24" {
			t.Errorf("%s: %+v, want broadcast %s", tc.name, info, tc.want)
		}
	}
}

// Every IPv4 address is listed, the primary first, with its own broadcast;
// Addr, Prefix and Broadcast stay the primary's.
func TestLookupListsEveryAddress(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.Spec{Subnet: netip.MustParsePrefix("10.79.0.0/24"),
		Segments: []netlab.SegmentSpec{{Name: "a", Hosts: netlab.HostNames("h")}}})
	h := l.Host("h")
	for _, cmd := range []string{"addr flush dev eth0", "addr add " + h.IP.String() + "/24 brd 10.79.0.255 dev eth0",
		"addr add 192.168.40.7/16 dev eth0"} {
		if out, err := h.Command(t.Context(), "ip", strings.Fields(cmd)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", cmd, err, out)
		}
	}
	var info *iface.Info
	if err := h.Do(func() (err error) { info, err = iface.Lookup("eth0"); return err }); err != nil {
		t.Fatal(err)
	}
	want := []iface.Address{
		{Prefix: netip.PrefixFrom(h.IP, 24), Broadcast: netip.MustParseAddr("10.79.0.255"), BroadcastSet: true},
		{Prefix: netip.MustParsePrefix("192.168.40.7/16"), Broadcast: netip.MustParseAddr("192.168.255.255")},
	}
	if len(info.Addrs) != len(want) || info.Addrs[0] != want[0] || info.Addrs[1] != want[1] {
		t.Errorf("Addrs = %+v, want %+v", info.Addrs, want)
	}
	if info.Addr != h.IP || info.Prefix.String() != "10.79.0.0/24" || info.Broadcast.String() != "10.79.0.255" {
		t.Errorf("primary: %+v", info)
	}
}
