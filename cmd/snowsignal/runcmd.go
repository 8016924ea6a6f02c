package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/assembly"
	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/stages/rewrite"
)

// RunCmd relays broadcasts. Flags, environment variables and defaults match
// the Python SnowSignal; command line beats environment beats default.
type RunCmd struct {
	TargetInterface string   `short:"t" env:"TARGET_INTERFACE" default:"eth0" placeholder:"IFACE" help:"Interface to capture broadcasts on, talk to the mesh on and re-broadcast on." group:"net"`
	BroadcastPort   []string `short:"b" env:"BDCAST_PORT" default:"5076" sep:"," placeholder:"PORT" help:"UDP port(s) whose broadcasts are relayed; repeat or separate with commas (e.g. 5076,5064)." group:"net"`
	MeshPort        int      `short:"m" env:"MESH_PORT" default:"7124" placeholder:"PORT" help:"UDP port for relay-to-relay unicast." group:"net"`
	OtherRelays     []string `name:"other-relays" env:"OTHER_RELAYS" sep:"none" placeholder:"RELAY" help:"Other relays (names or IPs): a space-separated list after one flag, commas, or the flag repeated." group:"peers"`
	LogLevel        string   `short:"l" env:"LOGLEVEL" default:"info" enum:"debug,info,warning,error,critical" help:"Log level: debug, info, warning, error or critical (also -ll)." group:"obs"`
	LogFormat       string   `env:"LOG_FORMAT" default:"auto" enum:"auto,json,console" help:"Log format: json, console, or auto (console on a terminal, JSON otherwise)." group:"obs"`

	Discover          []string      `env:"DISCOVER" sep:"," placeholder:"NAME" help:"DNS name whose IPv4 addresses (and IPv6 ones with an IPv6 mesh, --mesh-ipv6) are peers (e.g. a Kubernetes headless Service); re-resolved every --discovery-interval." group:"peers"`
	ServiceName       string        `env:"SERVICENAME" hidden:"" help:"Docker Swarm service name: shorthand for --discover tasks.NAME." group:"peers"`
	DiscoveryInterval time.Duration `env:"DISCOVERY_INTERVAL" default:"10s" help:"How often peer names are resolved again." group:"peers"`
	MeshIPv6          bool          `name:"mesh-ipv6" env:"MESH_IPV6" help:"Run the mesh over IPv6 too: dual-stack mesh socket, and --discover names' AAAA records as well as A. Implied by an IPv6 --other-relays address or an interface without IPv4." group:"peers"`

	RebroadcastDestination string        `env:"REBROADCAST_DESTINATION" default:"auto" enum:"auto,keep,limited,subnet" help:"IP destination of re-broadcasts: auto, keep, limited (255.255.255.255) or subnet (this segment's broadcast address)." group:"net"`
	DedupWindow            time.Duration `env:"DEDUP_WINDOW" default:"250ms" help:"How long a datagram is remembered to suppress loops and duplicates when several relays share a segment (0 disables)." group:"tuning"`
	HelloInterval          time.Duration `env:"HELLO_INTERVAL" default:"1s" help:"How often to announce this relay to other relays on its segment, so several relays per segment deliver each broadcast once (0 disables)." group:"tuning"`
	AcceptAnyPeer          bool          `env:"ACCEPT_ANY_PEER" help:"Accept mesh datagrams from any source, not only from the peer set (the Python relay's behaviour)." group:"peers"`
	MeshKeyFile            []string      `env:"MESH_KEY_FILE" sep:"," placeholder:"PATH" help:"Shared secret for the authenticated mesh format; give twice during key rotation (send with the first, accept either)." group:"peers"`
	LocalDelivery          bool          `env:"LOCAL_DELIVERY" default:"true" negatable:"" help:"Also deliver relayed broadcasts to servers on this host (--no-local-delivery to turn off)." group:"net"`
	WaitForInterface       bool          `env:"WAIT_FOR_INTERFACE" help:"Wait for the target interface to appear instead of failing at start." group:"net"`
	RateLimit              int           `env:"RATE_LIMIT" default:"0" placeholder:"PPS" help:"Packets per second each client (IP source) may have relayed, and each peer relay may have injected here; bursts of max(PPS, 128) pass. 0 disables." group:"tuning"`
	PeerRateLimit          int           `env:"PEER_RATE_LIMIT" default:"0" placeholder:"PPS" help:"Per-peer limit instead of --rate-limit's, for the frames each peer relay may have injected here; a peer forwards all its segment's clients, so set it higher (0: as --rate-limit)." group:"tuning"`
	Coalesce               time.Duration `env:"COALESCE" default:"150us" help:"Under sustained load (batches more often than one every two of these), a socket reader waits this long after each batch so that one wake-up carries several datagrams, like a network card's interrupt coalescing; it adds at most this much latency, and only then (0 disables)." group:"tuning"`
	MaxDelay               time.Duration `env:"MAX_DELAY" default:"250ms" help:"Drop, counted as stale, frames that waited in this relay longer than this since the kernel received them, instead of sending them late, burst or not (a standing queue is shed sooner, at --queue-target). Keep it above --coalesce. 0 disables; allowed 1ms to 10s." group:"tuning"`
	QueueTarget            time.Duration `env:"QUEUE_TARGET" default:"0" help:"Shed a standing queue early, as CoDel does (e.g. 2ms; 0, the default, is off): once every frame sent for --queue-interval had waited longer than this since the kernel received it, the relay receives more than it can send, and frames older than this are dropped (counted as overload) until a fresher one is sent an interval after the last older one. Bursts that drain within the interval are carried whole. Off, a storm queues, late, up to --max-delay; a --max-delay at or below it sheds as stale first. Allowed 500us to 1s." group:"tuning"`
	QueueInterval          time.Duration `env:"QUEUE_INTERVAL" default:"20ms" help:"How long a queue must stand above --queue-target before it is shed, and how long after the last frame over it shedding stops; allowed 1ms to 10s." group:"tuning"`
	MeshOffload            bool          `env:"MESH_OFFLOAD" default:"true" negatable:"" help:"Send a burst's datagrams to each peer as segmented messages (UDP_SEGMENT) and read peers' coalesced (UDP_GRO): the same datagrams on the wire, a fraction of the CPU (--no-mesh-offload to turn off)." group:"tuning"`
	IPv6                   bool          `name:"ipv6" env:"IPV6" help:"Also relay IPv6 UDP datagrams sent to link-scope multicast groups (--ipv6-group) on the broadcast ports: IPv6 clients' searches." group:"net"`
	IPv6Group              []string      `name:"ipv6-group" env:"IPV6_GROUPS" sep:"," placeholder:"GROUP" help:"IPv6 link-scope group (ff02::/16) relayed with --ipv6; repeat or separate with commas (default: ff02::1)." group:"net"`
	InjectMark             uint32        `env:"INJECT_MARK" default:"0x534e4f57" hidden:"" help:"SO_MARK of the inject socket, recognised by the capture filter." group:"tuning"`

	StatsSocket     string        `env:"STATS_SOCKET" default:"/run/snowsignal/snowsignal.sock" placeholder:"PATH" help:"Unix socket (mode 0660) that 'snowsignal stats' and 'snowsignal health' query; every relay on a host needs its own. Empty disables it." group:"obs" emptyenv:"keep"`
	MetricsAddress  string        `env:"METRICS_ADDRESS" placeholder:"HOST:PORT" help:"Serve Prometheus metrics (/metrics) and a health check (/healthz) over HTTP on this address; off when empty." group:"obs" emptyenv:"keep"`
	SummaryInterval time.Duration `env:"SUMMARY_INTERVAL" default:"60s" help:"How often to log an info line with totals and rates since the last one (0 disables)." group:"obs"`
	DebugAddress    string        `env:"DEBUG_ADDRESS" hidden:"" placeholder:"HOST:PORT" help:"Serve Go's profiling endpoints (net/http/pprof) on this address; off when empty." group:"obs" emptyenv:"keep"`
}

// config turns the flags into an assembly.Config, or an error naming the
// flag at fault and what it allows: the flags are parsed here, the values
// checked by Config.Validate, and the interface looked up last.
func (c *RunCmd) config() (cfg assembly.Config, warnings []string, err error) {
	cfg, warnings, err = c.parse()
	if err != nil {
		return cfg, warnings, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, warnings, err
	}
	if !c.WaitForInterface {
		if _, err := iface.Lookup(c.TargetInterface); err != nil {
			return cfg, warnings, fmt.Errorf("--target-interface: %w", err)
		}
	}
	return cfg, warnings, nil
}

// parse converts the flags' text into a Config; only what cannot be
// represented in one (a port number beyond 65535, an unknown destination
// mode, an unreadable key file) is an error here.
func (c *RunCmd) parse() (assembly.Config, []string, error) {
	var warnings []string
	cfg := assembly.Config{
		Interface:         c.TargetInterface,
		DiscoveryInterval: c.DiscoveryInterval,
		DedupWindow:       c.DedupWindow,
		HelloInterval:     c.HelloInterval,
		AcceptAnyPeer:     c.AcceptAnyPeer,
		WaitForInterface:  c.WaitForInterface,
		LocalDelivery:     c.LocalDelivery,
		Mark:              c.InjectMark,
		Coalesce:          c.Coalesce,
		MaxDelay:          c.MaxDelay,
		QueueTarget:       c.QueueTarget,
		QueueInterval:     c.QueueInterval,
		MeshOffload:       c.MeshOffload,
		RateLimit:         c.RateLimit,
		PeerRateLimit:     c.PeerRateLimit,
		IPv6:              c.IPv6,
		Observability:     c.observabilityConfig(),
	}
	cfg.MeshIPv6 = c.MeshIPv6
	if c.MeshPort < 1 || c.MeshPort > 65535 {
		return cfg, warnings, fmt.Errorf("--mesh-port: %d is out of range (allowed: 1-65535)", c.MeshPort)
	}
	cfg.MeshPort = uint16(c.MeshPort)
	for _, s := range c.BroadcastPort {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			p, err := parsePort(f)
			if err != nil {
				return cfg, warnings, fmt.Errorf("--broadcast-port: %w", err)
			}
			if !slices.Contains(cfg.BroadcastPorts, p) {
				cfg.BroadcastPorts = append(cfg.BroadcastPorts, p)
			}
		}
	}
	for _, s := range c.OtherRelays {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !slices.Contains(cfg.Peers, f) {
				cfg.Peers = append(cfg.Peers, f)
			}
		}
	}
	for _, d := range c.Discover {
		if d = strings.TrimSpace(d); d != "" && !slices.Contains(cfg.Discover, d) {
			cfg.Discover = append(cfg.Discover, d)
		}
	}
	if s := strings.TrimSpace(c.ServiceName); s != "" && !slices.Contains(cfg.Discover, "tasks."+s) {
		cfg.Discover = append(cfg.Discover, "tasks."+s)
	}
	for _, s := range c.IPv6Group {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			g, err := netip.ParseAddr(f)
			if err != nil || !g.Is6() || g.Is4In6() {
				return cfg, warnings, fmt.Errorf("--ipv6-group: %q is not an IPv6 address (allowed: link-scope groups in ff02::/16, e.g. ff02::1)", f)
			}
			if !slices.Contains(cfg.IPv6Groups, g) {
				cfg.IPv6Groups = append(cfg.IPv6Groups, g)
			}
		}
	}
	mode, err := rewrite.ParseDestMode(c.RebroadcastDestination)
	if err != nil {
		return cfg, warnings, fmt.Errorf("--rebroadcast-destination: %w", err)
	}
	cfg.RebroadcastDestination = mode
	if len(c.MeshKeyFile) > assembly.MaxMeshKeys {
		// Before reading any of the files: Validate would say the same.
		return cfg, warnings, fmt.Errorf("--mesh-key-file: given %d times (allowed: once, or twice during key rotation)", len(c.MeshKeyFile))
	}
	for _, path := range c.MeshKeyFile {
		key, err := mesh.LoadKeyFile(path)
		var insecure *mesh.InsecureKeyFileError
		if errors.As(err, &insecure) {
			// Swarm mounts secrets 0444 unless told otherwise: warn, go on.
			warnings = append(warnings, fmt.Sprintf("--mesh-key-file: %v", err))
		} else if err != nil {
			return cfg, warnings, fmt.Errorf("--mesh-key-file: %w", err)
		}
		cfg.MeshKeys = append(cfg.MeshKeys, key)
	}
	return cfg, warnings, nil
}

func parsePort(s string) (uint16, error) {
	var p int
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || fmt.Sprint(p) != s {
		return 0, fmt.Errorf("%q is not a port number (allowed: 1-65535)", s)
	}
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("%d is out of range (allowed: 1-65535)", p)
	}
	return uint16(p), nil
}

// Run starts the relay and runs it until SIGINT or SIGTERM.
func (c *RunCmd) Run() error {
	log := newLogger(os.Stderr, c.LogLevel, c.LogFormat)
	cfg, warnings, err := c.config()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn().Msg(w)
	}
	if cfg.DedupWindow > 0 && cfg.DedupWindow < 10*time.Millisecond {
		log.Warn().Dur("dedup_window", cfg.DedupWindow).Msg("a dedup window under 10ms may let loops through")
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// One P: a batch handed from stage to stage is then a goroutine
		// switch on one thread instead of a wake-up of another, which
		// measured as most of the relay's CPU at low rates; one core is
		// several times what 50k datagrams/s need (docs/BENCHMARKS.md).
		runtime.GOMAXPROCS(defaultProcs)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.DebugAddress != "" {
		if err := serveDebug(ctx, c.DebugAddress, log); err != nil {
			return err
		}
	}
	r, err := assembly.New(cfg, log)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// The pipeline drains within its grace period; should a stage ever
	// hang, a stop request must still end the process promptly.
	select {
	case err := <-done:
		return err
	case <-time.After(shutdownDeadline):
		return fmt.Errorf("shutdown: the relay did not stop within %s", shutdownDeadline)
	}
}

// defaultProcs is the relay's GOMAXPROCS unless the environment sets one.
const defaultProcs = 1

// shutdownDeadline bounds the wait for the pipeline after SIGINT/SIGTERM.
const shutdownDeadline = 900 * time.Millisecond
