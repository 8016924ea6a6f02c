//go:build linux

package assembly

import (
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/iface"
)

// TestAutoMeshBind: the mesh socket stays on 0.0.0.0 for an IPv4 mesh, as
// before IPv6; it is the dual-stack [::] with --mesh-ipv6, with an IPv6
// --other-relays address, and on an interface without IPv4 that has a ULA
// (a link-local address alone does not count).
func TestAutoMeshBind(t *testing.T) {
	v4 := &iface.Info{Addr: netip.MustParseAddr("10.77.0.1"), Addrs6: []netip.Prefix{netip.MustParsePrefix("fd00:77::1/64")}}
	v6only := &iface.Info{Addrs6: []netip.Prefix{netip.MustParsePrefix("fd00:77::1/64")}}
	llOnly := &iface.Info{LinkLocal6: netip.MustParseAddr("fe80::1")}
	for _, tc := range []struct {
		name string
		cfg  Config
		info *iface.Info
		want string
	}{
		{"ipv4 mesh", Config{Peers: []string{"10.77.0.2", "relay-b"}}, v4, "0.0.0.0"},
		{"interface not there yet", Config{}, nil, "0.0.0.0"},
		{"link-local only", Config{}, llOnly, "0.0.0.0"},
		{"--mesh-ipv6", Config{MeshIPv6: true}, v4, "::"},
		{"ipv6 peer", Config{Peers: []string{"10.77.0.2", "fd00:77::2"}}, v4, "::"},
		{"ipv6-only interface", Config{}, v6only, "::"},
	} {
		if got := tc.cfg.autoMeshBind(tc.info).String(); got != tc.want {
			t.Errorf("%s: bind %s, want %s", tc.name, got, tc.want)
		}
	}
}
