package assembly

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/stages/rewrite"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
)

// TestValidate: Default() is valid, and each rule, broken alone, gives a
// *ConfigError naming the flag and saying what is allowed.
func TestValidate(t *testing.T) {
	if cfg := Default(); cfg.Validate() != nil {
		t.Fatalf("Default(): %v", cfg.Validate())
	}
	key := make([]byte, mesh.MinKeyLen)
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		setting string
		want    string
	}{
		{"empty interface", func(c *Config) { c.Interface = "" }, "--target-interface", "must not be empty"},
		{"mesh port 0", func(c *Config) { c.MeshPort = 0 }, "--mesh-port", "0 is out of range (allowed: 1-65535)"},
		{"broadcast port 0", func(c *Config) { c.BroadcastPorts = []uint16{5076, 0} }, "--broadcast-port", "0 is out of range (allowed: 1-65535)"},
		{"broadcast port is the mesh port", func(c *Config) { c.BroadcastPorts = []uint16{7124} }, "--broadcast-port", "7124 is also the mesh port (--mesh-port); they must differ"},
		{"no broadcast port", func(c *Config) { c.BroadcastPorts = nil }, "--broadcast-port", "at least one port is required"},
		{"link-local IPv6 peer", func(c *Config) { c.Peers = []string{"relay-b", "fd00::1", "fe80::1%eth0"} }, "--other-relays", "fe80::1%eth0 is a link-local address"},
		{"multicast peer", func(c *Config) { c.Peers = []string{"ff02::1"} }, "--other-relays", "ff02::1 is not a unicast address of another host"},
		{"discovery interval short", func(c *Config) { c.DiscoveryInterval = 999 * time.Millisecond }, "--discovery-interval", "999ms is too short (allowed: 1s or more)"},
		{"dedup window negative", func(c *Config) { c.DedupWindow = -time.Millisecond }, "--dedup-window", "-1ms is out of range (allowed: 0 to 1m)"},
		{"dedup window long", func(c *Config) { c.DedupWindow = time.Minute + 1 }, "--dedup-window", "is out of range (allowed: 0 to 1m)"},
		{"coalesce long", func(c *Config) { c.Coalesce = 11 * time.Millisecond }, "--coalesce", "11ms is out of range (allowed: 0 to disable, up to 10ms)"},
		{"coalesce negative", func(c *Config) { c.Coalesce = -1 }, "--coalesce", "is out of range"},
		{"max delay short", func(c *Config) { c.MaxDelay = 999 * time.Microsecond }, "--max-delay", "999µs is out of range (allowed: 0 to disable, or 1ms to 10s)"},
		{"max delay negative", func(c *Config) { c.MaxDelay = -time.Millisecond }, "--max-delay", "is out of range"},
		{"max delay long", func(c *Config) { c.MaxDelay = 11 * time.Second }, "--max-delay", "11s is out of range"},
		{"hello interval short", func(c *Config) { c.HelloInterval = 99 * time.Millisecond }, "--hello-interval", "99ms is out of range (allowed: 0 to disable, or 100ms to 1m)"},
		{"hello interval long", func(c *Config) { c.HelloInterval = 2 * time.Minute }, "--hello-interval", "2m0s is out of range"},
		{"unknown destination", func(c *Config) { c.RebroadcastDestination = rewrite.DestMode(99) }, "--rebroadcast-destination", "allowed: auto, keep, limited, subnet"},
		{"three keys", func(c *Config) { c.MeshKeys = [][]byte{key, key, key} }, "--mesh-key-file", "given 3 times (allowed: once, or twice during key rotation)"},
		{"short key", func(c *Config) { c.MeshKeys = [][]byte{key, key[:mesh.MinKeyLen-1]} }, "--mesh-key-file", "key 2 is 15 bytes (allowed: 16 or more)"},
		{"rate limit negative", func(c *Config) { c.RateLimit = -1 }, "--rate-limit", "-1 is out of range (allowed: 0 to disable"},
		{"rate limit high", func(c *Config) { c.RateLimit = ratelimit.MaxRate + 1 }, "--rate-limit", "is out of range"},
		{"peer rate limit high", func(c *Config) { c.PeerRateLimit = ratelimit.MaxRate + 1 }, "--peer-rate-limit", "(allowed: 0 for --rate-limit's"},
		{"metrics address without port", func(c *Config) { c.Observability.MetricsAddress = "9124" }, "--metrics-address", `"9124" is not HOST:PORT`},
		{"metrics port out of range", func(c *Config) { c.Observability.MetricsAddress = ":99999" }, "--metrics-address", `port "99999" is out of range (allowed: 0-65535)`},
		{"groups without --ipv6", func(c *Config) { c.IPv6Groups = []netip.Addr{DefaultIPv6Group} }, "--ipv6-group", "given without --ipv6"},
		{"site-scope group", func(c *Config) { c.IPv6, c.IPv6Groups = true, []netip.Addr{netip.MustParseAddr("ff05::1")} }, "--ipv6-group", "ff05::1 is not a link-scope multicast group (allowed: ff02::/16"},
		{"unicast group", func(c *Config) { c.IPv6, c.IPv6Groups = true, []netip.Addr{netip.MustParseAddr("fd00::1")} }, "--ipv6-group", "fd00::1 is not a link-scope"},
		{"IPv4 group", func(c *Config) { c.IPv6, c.IPv6Groups = true, []netip.Addr{netip.MustParseAddr("224.0.0.1")} }, "--ipv6-group", "224.0.0.1 is not a link-scope"},
		{"group with zone", func(c *Config) { c.IPv6, c.IPv6Groups = true, []netip.Addr{netip.MustParseAddr("ff02::1%eth0")} }, "--ipv6-group", "without a zone"},
		{"too many groups", func(c *Config) { c.IPv6, c.IPv6Groups = true, groups(17) }, "--ipv6-group", "17 groups given (allowed: 1-16)"},
		{"summary interval short", func(c *Config) { c.Observability.SummaryInterval = 500 * time.Millisecond }, "--summary-interval", "500ms is too short (allowed: 0 to disable, or 1s or more)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.change(&cfg)
			err := cfg.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want a *ConfigError", err)
			}
			if ce.Setting != tc.setting || !strings.HasPrefix(err.Error(), tc.setting+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %q (setting %q), want %s: ...%s...", err, ce.Setting, tc.setting, tc.want)
			}
		})
	}
}

// groups returns n distinct link-scope groups, ff02::1:1 onwards.
func groups(n int) []netip.Addr {
	var gs []netip.Addr
	for i := range n {
		gs = append(gs, netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 13: 1, 15: byte(i + 1)}))
	}
	return gs
}

// TestValidateIPv6: sixteen groups are allowed, and a group given twice
// counts once (and is kept once by New's defaults); --ipv6 alone relays
// ff02::1.
func TestValidateIPv6(t *testing.T) {
	cfg := Default()
	cfg.IPv6, cfg.IPv6Groups = true, append(groups(16), groups(2)...)
	if err := cfg.Validate(); err != nil {
		t.Errorf("16 distinct groups, 2 repeated: %v", err)
	}
	if got := cfg.withDefaults().IPv6Groups; len(got) != 16 || got[0] != groups(1)[0] {
		t.Errorf("groups after defaults %v, want the 16 distinct ones in order", got)
	}
	cfg.IPv6Groups = nil
	if err := cfg.Validate(); err != nil {
		t.Errorf("--ipv6 alone: %v", err)
	}
	if got := cfg.withDefaults().IPv6Groups; len(got) != 1 || got[0] != DefaultIPv6Group {
		t.Errorf("--ipv6 alone relays %v, want [ff02::1]", got)
	}
	if got := Default().withDefaults().IPv6Groups; got != nil {
		t.Errorf("without --ipv6 the groups are %v, want none", got)
	}
}

// TestQueueIntervalDefault: a Config built in code that sets a queue target
// but no interval gets the default interval, as the flag's default gives.
func TestQueueIntervalDefault(t *testing.T) {
	cfg := Config{QueueTarget: 2 * time.Millisecond}
	if got := cfg.withDefaults().QueueInterval; got != DefaultQueueInterval {
		t.Errorf("QueueInterval = %v, want %v", got, DefaultQueueInterval)
	}
	cfg.QueueInterval = 100 * time.Millisecond
	if got := cfg.withDefaults().QueueInterval; got != 100*time.Millisecond {
		t.Errorf("QueueInterval = %v, want the 100ms given", got)
	}
}

// TestValidateAllowsOff: the values that turn a feature off are valid.
func TestValidateAllowsOff(t *testing.T) {
	cfg := Default()
	cfg.DedupWindow, cfg.HelloInterval, cfg.Coalesce, cfg.RateLimit, cfg.PeerRateLimit, cfg.MaxDelay = 0, 0, 0, 0, 0, 0
	cfg.Observability = Observability{MetricsAddress: "127.0.0.1:0"}
	cfg.Peers = []string{"10.0.0.2", "relay-b.example", "fd00:77::2", "2001:db8::2"}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// TestWithDefaults: the zero values that mean "the default" are filled in
// by New; what was given is kept.
func TestWithDefaults(t *testing.T) {
	c := Config{RateLimit: 50}.withDefaults()
	if c.Mark != DefaultMark || c.MeshBind.String() != "0.0.0.0" || c.Resolver == nil || c.PeerRateLimit != 50 {
		t.Errorf("defaults: mark %#x bind %s resolver %v peer rate %d", c.Mark, c.MeshBind, c.Resolver, c.PeerRateLimit)
	}
	if c := (Config{Mark: 7, RateLimit: 50, PeerRateLimit: 500}).withDefaults(); c.Mark != 7 || c.PeerRateLimit != 500 {
		t.Errorf("given values changed: mark %d, peer rate %d", c.Mark, c.PeerRateLimit)
	}
}
