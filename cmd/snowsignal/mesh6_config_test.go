package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
)

// TestConfigMeshIPv6: --mesh-ipv6 and MESH_IPV6 turn the IPv6 mesh on, and
// IPv6 --other-relays addresses are accepted as peers.
func TestConfigMeshIPv6(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want bool
	}{
		{"default", nil, nil, false},
		{"flag", []string{"--mesh-ipv6"}, nil, true},
		{"env", nil, []string{"MESH_IPV6", "true"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t, tc.env...)
			c := parseRun(t, append([]string{"-t", "lo", "--other-relays", "fd00:77::2,10.0.0.2"}, tc.args...)...)
			cfg, _, err := c.config()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MeshIPv6 != tc.want {
				t.Errorf("MeshIPv6 = %v, want %v", cfg.MeshIPv6, tc.want)
			}
			if len(cfg.Peers) != 2 || cfg.Peers[0] != "fd00:77::2" {
				t.Errorf("peers %q, want the IPv6 address kept", cfg.Peers)
			}
		})
	}
}

// TestStatsPeerCaps: the stats table shows each peer's capabilities, and
// how many IPv6 frames were withheld from one that did not announce ipv6.
func TestStatsPeerCaps(t *testing.T) {
	s := snapshot(time.Now())
	s.Peers = []readout.PeerStats{
		{Addr: "[fd00:77::2]:7124", Sources: "static", Capabilities: "ipv6", TxPackets: 4, TxBytes: 400},
		{Addr: "10.77.0.3:7124", Sources: "static", Capabilities: "unknown", WithheldIPv6: 2, TxPackets: 1, TxBytes: 90},
	}
	var buf bytes.Buffer
	if err := renderStats(&buf, &s, nil); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{
		"PEER SOURCES CAPS TX TX BYTES TX ERRORS RX RX BYTES LAST HEARD",
		"[fd00:77::2]:7124 static ipv6 4 400 0 0 0 never",
		"10.77.0.3:7124 static unknown (2 IPv6 withheld) 1 90 0 0 0 never",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing line %q in:\n%s", want, buf.String())
		}
	}
}
