package main

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/assembly"
)

// TestConfigDefaults: the defaults (as kong fills them) make the Python
// relay's configuration: port 5076 relayed over mesh port 7124, no peers.
func TestConfigDefaults(t *testing.T) {
	cleanEnv(t)
	c := parseRun(t, "-t", "lo")
	cfg, warnings, err := c.config()
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if cfg.Interface != "lo" || cfg.MeshPort != 7124 || !reflect.DeepEqual(cfg.BroadcastPorts, []uint16{5076}) || len(cfg.Peers) != 0 {
		t.Errorf("config %+v", cfg)
	}
}

// TestConfigPorts: several broadcast ports, by commas or repeated flags,
// are kept once each in order.
func TestConfigPorts(t *testing.T) {
	cleanEnv(t)
	c := parseRun(t, "-t", "lo", "-b", "5076,5064", "-b", "5076", "--broadcast-port", "5065", "-m", "7125")
	cfg, _, err := c.config()
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{5076, 5064, 5065}; !reflect.DeepEqual(cfg.BroadcastPorts, want) || cfg.MeshPort != 7125 {
		t.Errorf("ports %v mesh %d, want %v mesh 7125", cfg.BroadcastPorts, cfg.MeshPort, want)
	}
}

// TestConfigErrors calls config directly on flag values kong would accept,
// and checks each error names the flag and what it allows.
func TestConfigErrors(t *testing.T) {
	valid := func() RunCmd {
		cleanEnv(t)
		return parseRun(t, "-t", "lo")
	}
	for _, tc := range []struct {
		name   string
		change func(*RunCmd)
		want   []string
	}{
		{"empty interface", func(c *RunCmd) { c.TargetInterface = "" }, []string{"--target-interface", "empty"}},
		{"unknown interface", func(c *RunCmd) { c.TargetInterface = "nosuch0" }, []string{"--target-interface", "nosuch0", "have:", "lo"}},
		{"mesh port 0", func(c *RunCmd) { c.MeshPort = 0 }, []string{"--mesh-port", "1-65535"}},
		{"mesh port negative", func(c *RunCmd) { c.MeshPort = -1 }, []string{"--mesh-port", "1-65535"}},
		{"mesh port 65536", func(c *RunCmd) { c.MeshPort = 65536 }, []string{"--mesh-port", "1-65535"}},
		{"broadcast port 65536", func(c *RunCmd) { c.BroadcastPort = []string{"65536"} }, []string{"--broadcast-port", "1-65535"}},
		{"broadcast port with sign", func(c *RunCmd) { c.BroadcastPort = []string{"+5076"} }, []string{"--broadcast-port", "not a port number"}},
		{"no broadcast port", func(c *RunCmd) { c.BroadcastPort = []string{" , "} }, []string{"--broadcast-port", "at least one"}},
		{"broadcast port equals mesh port", func(c *RunCmd) { c.BroadcastPort = []string{"5064", "7124"} }, []string{"--broadcast-port", "7124", "--mesh-port"}},
		{"loopback IPv6 peer", func(c *RunCmd) { c.OtherRelays = []string{"10.0.0.1", "::1"} }, []string{"--other-relays", "::1", "unicast address of another host"}},
		{"IPv6 group without --ipv6", func(c *RunCmd) { c.IPv6Group = []string{"ff02::1"} }, []string{"--ipv6-group", "without --ipv6"}},
		{"IPv6 group not an address", func(c *RunCmd) { c.IPv6, c.IPv6Group = true, []string{"ff02::1,all-nodes"} }, []string{"--ipv6-group", `"all-nodes" is not an IPv6 address`, "ff02::/16"}},
		{"IPv6 group IPv4", func(c *RunCmd) { c.IPv6, c.IPv6Group = true, []string{"224.0.0.1"} }, []string{"--ipv6-group", `"224.0.0.1" is not an IPv6 address`}},
		{"IPv6 group not link-scope", func(c *RunCmd) { c.IPv6, c.IPv6Group = true, []string{"ff0e::1"} }, []string{"--ipv6-group", "ff0e::1", "not a link-scope", "ff02::/16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			_, _, err := c.config()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestConfigIPv6: --ipv6 and --ipv6-group (IPV6, IPV6_GROUPS) reach the
// config, groups by commas or repeated flags, kept once each in order; off
// by default, with no groups.
func TestConfigIPv6(t *testing.T) {
	cleanEnv(t)
	c := parseRun(t, "-t", "lo")
	cfg, _, err := c.config()
	if err != nil || cfg.IPv6 || cfg.IPv6Groups != nil {
		t.Errorf("default: IPv6 %v groups %v (err %v), want off and none", cfg.IPv6, cfg.IPv6Groups, err)
	}
	c = parseRun(t, "-t", "lo", "--ipv6", "--ipv6-group", "ff02::1,ff02::1:3", "--ipv6-group", "ff02::1")
	cfg, _, err = c.config()
	if want := []netip.Addr{netip.MustParseAddr("ff02::1"), netip.MustParseAddr("ff02::1:3")}; err != nil || !cfg.IPv6 || !reflect.DeepEqual(cfg.IPv6Groups, want) {
		t.Errorf("flags: IPv6 %v groups %v (err %v), want on and %v", cfg.IPv6, cfg.IPv6Groups, err, want)
	}
	cleanEnv(t, "IPV6", "true", "IPV6_GROUPS", "ff02::2,ff02::1")
	c = parseRun(t, "-t", "lo")
	cfg, _, err = c.config()
	if want := []netip.Addr{netip.MustParseAddr("ff02::2"), netip.MustParseAddr("ff02::1")}; err != nil || !cfg.IPv6 || !reflect.DeepEqual(cfg.IPv6Groups, want) {
		t.Errorf("environment: IPv6 %v groups %v (err %v), want on and %v", cfg.IPv6, cfg.IPv6Groups, err, want)
	}
}

// loConfig is the assembly config of `run -t lo args...` with only the
// environment variables env (name, value, ...) set; it fails the test if
// the flags are refused.
func loConfig(t *testing.T, env []string, args ...string) assembly.Config {
	t.Helper()
	cleanEnv(t, env...)
	c := parseRun(t, append([]string{"-t", "lo"}, args...)...)
	cfg, _, err := c.config()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// wantConfigError checks that `run -t lo args...`, with no environment,
// is refused with an error that mentions each of words.
func wantConfigError(t *testing.T, args []string, words ...string) {
	t.Helper()
	cleanEnv(t)
	c := parseRun(t, append([]string{"-t", "lo"}, args...)...)
	_, _, err := c.config()
	if err == nil {
		t.Errorf("%q: no error", args)
		return
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q: error %q does not mention %q", args, err, w)
		}
	}
}

// TestConfigCoalesce: --coalesce (COALESCE) reaches relay.Config as given,
// 150µs by default and 0 to disable; out of 0..10ms it is an error naming
// the flag and the range.
func TestConfigCoalesce(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want time.Duration
	}{
		{"default", nil, nil, 150 * time.Microsecond},
		{"COALESCE=0", []string{"COALESCE", "0"}, nil, 0},
		{"--coalesce 300us", nil, []string{"--coalesce", "300us"}, 300 * time.Microsecond},
		{"--coalesce 10ms", nil, []string{"--coalesce", "10ms"}, 10 * time.Millisecond},
		{"flag beats env", []string{"COALESCE", "0"}, []string{"--coalesce=1ms"}, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loConfig(t, tc.env, tc.args...)
			if cfg.Coalesce != tc.want {
				t.Errorf("Coalesce = %v, want %v", cfg.Coalesce, tc.want)
			}
		})
	}
	// (A negative value needs "=": kong reads "-1ms" after a space as a
	// short flag, TestRunErrors.)
	for _, args := range [][]string{{"--coalesce", "20ms"}, {"--coalesce=-1ms"}, {"--coalesce", "10001us"}} {
		wantConfigError(t, args, "--coalesce", "out of range", "allowed: 0 to disable, up to 10ms")
	}
}

// TestConfigMaxDelay: --max-delay (MAX_DELAY) reaches the assembly's
// Config as given, 250ms by default and 0 to disable; out of range it is an
// error naming the flag and the range.
func TestConfigMaxDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want time.Duration
	}{
		{"default", nil, nil, 250 * time.Millisecond},
		{"MAX_DELAY=0", []string{"MAX_DELAY", "0"}, nil, 0},
		{"--max-delay 20ms", nil, []string{"--max-delay", "20ms"}, 20 * time.Millisecond},
		{"flag beats env", []string{"MAX_DELAY", "0"}, []string{"--max-delay=2ms"}, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loConfig(t, tc.env, tc.args...)
			if cfg.MaxDelay != tc.want {
				t.Errorf("MaxDelay = %v, want %v", cfg.MaxDelay, tc.want)
			}
		})
	}
	for _, args := range [][]string{{"--max-delay", "500us"}, {"--max-delay=-1ms"}, {"--max-delay", "1m"}} {
		wantConfigError(t, args, "--max-delay", "out of range", "allowed: 0 to disable, or 1ms to 10s")
	}
}

// TestConfigQueueTarget: --queue-target and --queue-interval (QUEUE_TARGET,
// QUEUE_INTERVAL) reach the assembly's Config, off (0) and 20ms by
// default; out of range each is an error naming its flag
// and the range.
func TestConfigQueueTarget(t *testing.T) {
	for _, tc := range []struct {
		name             string
		env              []string
		args             []string
		target, interval time.Duration
	}{
		{"default", nil, nil, 0, 20 * time.Millisecond},
		{"QUEUE_TARGET=2ms", []string{"QUEUE_TARGET", "2ms"}, nil, 2 * time.Millisecond, 20 * time.Millisecond},
		{"flags", nil, []string{"--queue-target", "5ms", "--queue-interval=100ms"}, 5 * time.Millisecond, 100 * time.Millisecond},
		{"env", []string{"QUEUE_TARGET", "1ms", "QUEUE_INTERVAL", "20ms"}, nil, time.Millisecond, 20 * time.Millisecond},
		{"flag beats env", []string{"QUEUE_TARGET", "0"}, []string{"--queue-target=3ms"}, 3 * time.Millisecond, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loConfig(t, tc.env, tc.args...)
			if cfg.QueueTarget != tc.target || cfg.QueueInterval != tc.interval {
				t.Errorf("QueueTarget, QueueInterval = %v, %v; want %v, %v", cfg.QueueTarget, cfg.QueueInterval, tc.target, tc.interval)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--queue-target", "100us"}, []string{"--queue-target", "out of range", "allowed: 0 to disable, or 500us to 1s"}},
		{[]string{"--queue-target", "2s"}, []string{"--queue-target", "out of range"}},
		{[]string{"--queue-interval", "0"}, []string{"--queue-interval", "out of range", "allowed: 1ms to 10s"}},
		{[]string{"--queue-interval", "1m"}, []string{"--queue-interval", "out of range"}},
	} {
		wantConfigError(t, tc.args, tc.want...)
	}
}

// TestConfigUnresolvablePeerIsNotAnError: a peer name is resolved in the
// background by the relay (DNS may come up later in containers), so the
// configuration accepts any name.
func TestConfigUnresolvablePeerIsNotAnError(t *testing.T) {
	cleanEnv(t)
	c := parseRun(t, "-t", "lo", "--other-relays", "no-such-relay.invalid")
	cfg, _, err := c.config()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Peers, []string{"no-such-relay.invalid"}) {
		t.Errorf("peers %q", cfg.Peers)
	}
}

// TestFlagDefaultsAreTheAssemblys: the defaults kong fills in (the
// run command's tags, shown in its help) are assembly.Default()'s, so the
// two cannot drift apart.
func TestFlagDefaultsAreTheAssemblys(t *testing.T) {
	cleanEnv(t)
	for _, k := range obsEnv {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	c := parseRun(t)
	d := assembly.Default()
	ports, _, err := c.parse()
	if err != nil {
		t.Fatal(err)
	}
	if c.TargetInterface != d.Interface || !reflect.DeepEqual(ports.BroadcastPorts, d.BroadcastPorts) || ports.MeshPort != d.MeshPort ||
		c.DiscoveryInterval != d.DiscoveryInterval || c.DedupWindow != d.DedupWindow || c.HelloInterval != d.HelloInterval ||
		c.LocalDelivery != d.LocalDelivery || c.InjectMark != d.Mark || c.Coalesce != d.Coalesce || c.MaxDelay != d.MaxDelay || c.QueueTarget != d.QueueTarget || c.QueueInterval != d.QueueInterval ||
		c.StatsSocket != d.Observability.StatsSocket || c.SummaryInterval != d.Observability.SummaryInterval {
		t.Errorf("flag defaults %+v\nassembly.Default() %+v", c, d)
	}
}
