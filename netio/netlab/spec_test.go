package netlab

import (
	"net/netip"
	"strings"
	"testing"
)

// These tests need no privileges: they check planning only.

func TestPlanAddresses(t *testing.T) {
	spec := Spec{
		Subnet: netip.MustParsePrefix("10.5.0.77/24"), // host bits are ignored
		Segments: []SegmentSpec{
			{Name: "a", Hosts: []HostSpec{{Name: "x"}, {Name: "fixed", Addr: netip.MustParseAddr("10.5.0.1")}}},
			{Name: "b", Hosts: HostNames("y", "z")},
		},
	}
	p, err := makePlan(spec, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"x": "10.5.0.2", "fixed": "10.5.0.1", "y": "10.5.0.3", "z": "10.5.0.4"}
	for _, h := range p.hosts {
		if h.addr.String() != want[h.name] {
			t.Errorf("%s: %v, want %s", h.name, h.addr, want[h.name])
		}
		if h.subnet.String() != "10.5.0.0/24" {
			t.Errorf("%s: subnet %v", h.name, h.subnet)
		}
	}
	if g := p.segments[1].group; g != 2 {
		t.Errorf("segment b group %d, want 2", g)
	}
	if mac := p.hosts[0].mac.String(); mac != "02:00:0a:05:00:02" {
		t.Errorf("x: MAC %s", mac)
	}

	r, err := makePlan(TwoSubnetRouted(), true)
	if err != nil {
		t.Fatal(err)
	}
	if gw := r.segments[1].gateway.String(); gw != "10.2.0.1" {
		t.Errorf("gateway %s, want 10.2.0.1", gw)
	}
	if b := broadcastOf(netip.MustParsePrefix("10.1.2.0/23")).String(); b != "10.1.3.255" {
		t.Errorf("broadcast of 10.1.2.0/23: %s", b)
	}
}

func TestPlanNames(t *testing.T) {
	spec := Spec{Subnet: netip.MustParsePrefix("10.5.0.0/24"), Segments: []SegmentSpec{
		{Name: "segment1", Hosts: HostNames("a-long-host-name-1", "a-long-host-name-2")},
		{Name: "b", Hosts: HostNames("c")},
	}}
	p, err := makePlan(spec, false)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{p.hosts[0].port, p.hosts[1].port, p.hosts[2].port}
	want := []string{"segment1-a-long", "p0", "b-c"} // cut to 15 bytes; a clash falls back
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ports %v, want %v", got, want)
	}
}

func TestPlanErrors(t *testing.T) {
	subnet := netip.MustParsePrefix("10.5.0.0/24")
	seg := func(name string, hosts ...HostSpec) SegmentSpec { return SegmentSpec{Name: name, Hosts: hosts} }
	h := func(name, addr string) HostSpec {
		hs := HostSpec{Name: name}
		if addr != "" {
			hs.Addr = netip.MustParseAddr(addr)
		}
		return hs
	}
	for _, tc := range []struct {
		name   string
		spec   Spec
		routed bool
		want   string
	}{
		{"no segments", Spec{Subnet: subnet}, false, "no segments"},
		{"no subnet", Spec{Segments: []SegmentSpec{seg("a")}}, false, "not an IPv4 prefix"},
		{"IPv6 subnet", Spec{Subnet: netip.MustParsePrefix("fd00::/64"), Segments: []SegmentSpec{seg("a")}}, false, "not an IPv4 prefix"},
		{"/31", Spec{Subnet: netip.MustParsePrefix("10.0.0.0/31"), Segments: []SegmentSpec{seg("a")}}, false, "/8 to /30"},
		{"bad segment name", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a/b")}}, false, "segment name"},
		{"segment twice", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a"), seg("a")}}, false, "twice"},
		{"bad host name", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("-x", ""))}}, false, "host name"},
		{"reserved host name", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("switch", ""))}}, false, "not switch or router"},
		{"host twice", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("x", "")), seg("b", h("x", ""))}}, false, "twice"},
		{"address outside", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("x", "10.6.0.1"))}}, false, "outside"},
		{"network address", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("x", "10.5.0.0"))}}, false, "network or broadcast"},
		{"broadcast address", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("x", "10.5.0.255"))}}, false, "network or broadcast"},
		{"address twice", Spec{Subnet: subnet, Segments: []SegmentSpec{seg("a", h("x", "10.5.0.9"), h("y", "10.5.0.9"))}}, false, "in use"},
		{"full", Spec{Subnet: netip.MustParsePrefix("10.5.0.0/30"), Segments: []SegmentSpec{seg("a", h("x", ""), h("y", ""), h("z", ""))}}, false, "no free address"},
		{"swarm segment subnet", Spec{Subnet: subnet, Segments: []SegmentSpec{{Name: "a", Subnet: subnet}}}, false, "one Spec.Subnet"},
		{"routed with spec subnet", Spec{Subnet: subnet, Segments: []SegmentSpec{{Name: "a", Subnet: subnet}}}, true, "leave Spec.Subnet zero"},
		{"routed overlap", Spec{Segments: []SegmentSpec{{Name: "a", Subnet: subnet}, {Name: "b", Subnet: netip.MustParsePrefix("10.5.0.128/25")}}}, true, "overlaps"},
		{"routed gateway taken", Spec{Segments: []SegmentSpec{{Name: "a", Subnet: subnet, Hosts: []HostSpec{h("x", "10.5.0.1")}}}}, true, "in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := makePlan(tc.spec, tc.routed)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestPlanIPv6: hosts' IPv6 addresses read as their IPv4 ones; IPv6 is for
// Swarm labs, on a /64.
func TestPlanIPv6(t *testing.T) {
	p, err := makePlan(TwoSegmentSwarm6(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range p.hosts {
		if want := map[string]string{"client": "fd00:77::11", "relay-a": "fd00:77::1", "server": "fd00:77::21", "relay-b": "fd00:77::2"}[h.name]; h.addr6.String() != want {
			t.Errorf("%s: %v, want %s", h.name, h.addr6, want)
		}
	}
	if a := ip6For(DefaultIPv6, netip.MustParseAddr("10.77.1.255")); a.String() != "fd00:77::1:255" {
		t.Errorf("10.77.1.255 -> %v, want fd00:77::1:255", a)
	}
	routed := TwoSubnetRouted()
	routed.IPv6 = DefaultIPv6
	if _, err := makePlan(routed, true); err == nil || !strings.Contains(err.Error(), "Swarm labs only") {
		t.Errorf("routed with IPv6: %v", err)
	}
	wide := TwoSegmentSwarm()
	wide.IPv6 = netip.MustParsePrefix("fd00:77::/48")
	if _, err := makePlan(wide, false); err == nil || !strings.Contains(err.Error(), "want an IPv6 /64") {
		t.Errorf("a /48: %v", err)
	}
}
