package assembly

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/rawsock"
	"github.com/snowsignal/snowsignal/stages/rewrite"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
)

// The daemon's defaults, which `snowsignal run` shows in its help (a test
// in cmd/snowsignal keeps the flags' defaults equal to Default()).
const (
	DefaultInterface         = "eth0"
	DefaultBroadcastPort     = 5076 // PVAccess
	DefaultMeshPort          = 7124
	DefaultDiscoveryInterval = 10 * time.Second
	DefaultDedupWindow       = 250 * time.Millisecond
	DefaultHelloInterval     = time.Second
	DefaultCoalesce          = 150 * time.Microsecond
	// DefaultMaxDelay bounds every frame's wait, burst or not: what waited
	// out a longer stall, its clients have searched for again since.
	// Without --queue-target (the default) it is the only bound, and a
	// storm on a CPU-starved host is relayed whole, late, as the
	// benchmark's reference relay pair relays it (p99 100-250 ms;
	// docs/BENCHMARKS.md).
	DefaultMaxDelay = 250 * time.Millisecond
	// DefaultQueueTarget is off: a search storm is short, and a search
	// relayed 200 ms late is still answered where one shed costs its client
	// a retry, seconds later. Shedding a standing queue over 2 ms bounded
	// the latency at the benchmark's ceiling near 10 ms, but also shed up
	// to 1.25 % at 40k/s, which the reference relay delivers whole
	// (docs/BENCHMARKS.md, item 21). DefaultQueueInterval applies once a
	// target is set: a relay that has not caught up with its queue for
	// 20 ms is short of CPU, not in a burst.
	DefaultQueueTarget     = time.Duration(0)
	DefaultQueueInterval   = 20 * time.Millisecond
	DefaultStatsSocket     = "/run/snowsignal/snowsignal.sock"
	DefaultSummaryInterval = 60 * time.Second
)

// DefaultIPv6Group is the group relayed with --ipv6 when no --ipv6-group is
// given: all nodes (ff02::1), where EPICS clients send their IPv6 searches.
var DefaultIPv6Group = netip.MustParseAddr("ff02::1")

// MaxMeshKeys is how many mesh keys a relay holds: one, or two during key
// rotation (send with the first, accept either).
const MaxMeshKeys = 2

// Default returns the configuration of a relay given no flags: the Python
// relay's (port 5076 relayed over mesh port 7124 on eth0, no peers) plus
// SnowSignal's own settings at their defaults.
func Default() Config {
	return Config{
		Interface:         DefaultInterface,
		BroadcastPorts:    []uint16{DefaultBroadcastPort},
		MeshPort:          DefaultMeshPort,
		DiscoveryInterval: DefaultDiscoveryInterval,
		DedupWindow:       DefaultDedupWindow,
		HelloInterval:     DefaultHelloInterval,
		LocalDelivery:     true,
		Mark:              DefaultMark,
		Coalesce:          DefaultCoalesce,
		MaxDelay:          DefaultMaxDelay,
		QueueTarget:       DefaultQueueTarget,
		QueueInterval:     DefaultQueueInterval,
		MeshOffload:       true,
		Observability:     Observability{StatsSocket: DefaultStatsSocket, SummaryInterval: DefaultSummaryInterval},
	}
}

// withDefaults fills the fields whose zero value means "the default" (see
// each field's comment). New applies it; Validate checks the config as given.
func (c Config) withDefaults() Config {
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	if !c.MeshBind.IsValid() {
		c.MeshBind = netip.IPv4Unspecified() // New picks [::] instead when the mesh may use IPv6
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.PeerRateLimit == 0 {
		c.PeerRateLimit = c.RateLimit
	}
	if c.QueueInterval == 0 {
		c.QueueInterval = DefaultQueueInterval
	}
	if c.IPv6 {
		if len(c.IPv6Groups) == 0 {
			c.IPv6Groups = []netip.Addr{DefaultIPv6Group}
		}
		c.IPv6Groups = uniqueAddrs(c.IPv6Groups)
	}
	return c
}

// meshCaps are the capabilities this relay announces to other relays, in
// its hellos and capabilities datagrams: ipv6 with IPv6 relaying (it
// injects IPv6 frames), else none.
func (c Config) meshCaps() mesh.Caps {
	if c.IPv6 {
		return mesh.CapIPv6
	}
	return 0
}

// A ConfigError is one invalid setting of a Config.
type ConfigError struct {
	// Setting names the field as the command line does ("--mesh-port"),
	// the name operators know and the one to change.
	Setting string
	// Err says what is wrong and what is allowed.
	Err error
}

func (e *ConfigError) Error() string { return e.Setting + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *ConfigError) Unwrap() error { return e.Err }

func invalid(setting, format string, args ...any) error {
	return &ConfigError{Setting: setting, Err: fmt.Errorf(format, args...)}
}

// Validate checks c without looking at the system (whether the interface
// exists is New's business): it returns a *ConfigError for the first
// setting out of its range, or nil. The command line calls it; New does not,
// so that tests may build what the command line refuses (MeshPort 0 for an
// ephemeral port, say).
func (c *Config) Validate() error {
	if c.Interface == "" {
		return invalid("--target-interface", "must not be empty")
	}
	if c.MeshPort == 0 {
		return invalid("--mesh-port", "0 is out of range (allowed: 1-65535)")
	}
	for _, p := range c.BroadcastPorts {
		if p == 0 {
			return invalid("--broadcast-port", "0 is out of range (allowed: 1-65535)")
		}
		if p == c.MeshPort {
			return invalid("--broadcast-port", "%d is also the mesh port (--mesh-port); they must differ", p)
		}
	}
	if len(c.BroadcastPorts) == 0 {
		return invalid("--broadcast-port", "at least one port is required (allowed: 1-65535)")
	}
	for _, p := range c.Peers {
		a, err := netip.ParseAddr(p)
		if err != nil {
			continue // a name
		}
		if a = a.Unmap(); a.Is6() && (a.Zone() != "" || a.IsLinkLocalUnicast()) {
			return invalid("--other-relays", "%s is a link-local address (use the peer's global or unique-local IPv6 address)", p)
		}
		if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
			return invalid("--other-relays", "%s is not a unicast address of another host", p)
		}
	}
	if c.DiscoveryInterval < time.Second {
		return invalid("--discovery-interval", "%s is too short (allowed: 1s or more)", c.DiscoveryInterval)
	}
	if c.DedupWindow < 0 || c.DedupWindow > time.Minute {
		return invalid("--dedup-window", "%s is out of range (allowed: 0 to 1m)", c.DedupWindow)
	}
	if c.Coalesce < 0 || c.Coalesce > 10*time.Millisecond {
		return invalid("--coalesce", "%s is out of range (allowed: 0 to disable, up to 10ms)", c.Coalesce)
	}
	if c.MaxDelay != 0 && (c.MaxDelay < time.Millisecond || c.MaxDelay > 10*time.Second) {
		// Under a millisecond a relay would shed frames that merely waited
		// for a wake-up; beyond seconds it sheds nothing a client still wants.
		return invalid("--max-delay", "%s is out of range (allowed: 0 to disable, or 1ms to 10s)", c.MaxDelay)
	}
	if c.QueueTarget != 0 && (c.QueueTarget < 500*time.Microsecond || c.QueueTarget > time.Second) {
		// Under half a millisecond a wake-up's delay would count as a queue.
		return invalid("--queue-target", "%s is out of range (allowed: 0 to disable, or 500us to 1s)", c.QueueTarget)
	}
	if c.QueueInterval < time.Millisecond || c.QueueInterval > 10*time.Second {
		return invalid("--queue-interval", "%s is out of range (allowed: 1ms to 10s)", c.QueueInterval)
	}
	if c.HelloInterval != 0 && (c.HelloInterval < 100*time.Millisecond || c.HelloInterval > time.Minute) {
		return invalid("--hello-interval", "%s is out of range (allowed: 0 to disable, or 100ms to 1m)", c.HelloInterval)
	}
	if _, err := rewrite.ParseDestMode(c.RebroadcastDestination.String()); err != nil {
		return &ConfigError{Setting: "--rebroadcast-destination", Err: err}
	}
	if len(c.MeshKeys) > MaxMeshKeys {
		return invalid("--mesh-key-file", "given %d times (allowed: once, or twice during key rotation)", len(c.MeshKeys))
	}
	for i, k := range c.MeshKeys {
		if len(k) < mesh.MinKeyLen {
			return invalid("--mesh-key-file", "key %d is %d bytes (allowed: %d or more)", i+1, len(k), mesh.MinKeyLen)
		}
	}
	if c.RateLimit < 0 || c.RateLimit > ratelimit.MaxRate {
		return invalid("--rate-limit", "%d is out of range (allowed: 0 to disable, or 1-%d packets per second)", c.RateLimit, ratelimit.MaxRate)
	}
	if c.PeerRateLimit < 0 || c.PeerRateLimit > ratelimit.MaxRate {
		return invalid("--peer-rate-limit", "%d is out of range (allowed: 0 for --rate-limit's, or 1-%d packets per second)", c.PeerRateLimit, ratelimit.MaxRate)
	}
	if err := c.validateIPv6(); err != nil {
		return err
	}
	return c.Observability.Validate()
}

// validateIPv6 checks the IPv6 groups: given only with --ipv6 (without it
// the user forgot the switch), each a link-scope group without a zone, and
// no more distinct ones than the capture filter tests.
func (c *Config) validateIPv6() error {
	if len(c.IPv6Groups) > 0 && !c.IPv6 {
		return invalid("--ipv6-group", "given without --ipv6 (add --ipv6 to relay IPv6 searches)")
	}
	for _, g := range c.IPv6Groups {
		if !frame.IsLinkScopeMulticast(g) || g.Zone() != "" {
			return invalid("--ipv6-group", "%s is not a link-scope multicast group (allowed: ff02::/16, without a zone, e.g. ff02::1)", g)
		}
	}
	if n := len(uniqueAddrs(c.IPv6Groups)); n > rawsock.MaxFilterGroups {
		return invalid("--ipv6-group", "%d groups given (allowed: 1-%d)", n, rawsock.MaxFilterGroups)
	}
	return nil
}

// uniqueAddrs returns as in order with repeats removed, as a new slice.
func uniqueAddrs(as []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Validate checks the observability settings; Config.Validate calls it.
func (o *Observability) Validate() error {
	if o.MetricsAddress != "" {
		_, port, err := net.SplitHostPort(o.MetricsAddress)
		if err != nil {
			return invalid("--metrics-address", "%q is not HOST:PORT (e.g. :9124 or 127.0.0.1:9124)", o.MetricsAddress)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return invalid("--metrics-address", "port %q is out of range (allowed: 0-65535)", port)
		}
	}
	if o.SummaryInterval != 0 && o.SummaryInterval < time.Second {
		return invalid("--summary-interval", "%s is too short (allowed: 0 to disable, or 1s or more)", o.SummaryInterval)
	}
	return nil
}
