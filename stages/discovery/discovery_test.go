package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const meshPort = 7124

// fakeDNS is an injected Resolver whose answers the test changes between
// rounds. It records when each name was looked up.
type fakeDNS struct {
	mu       sync.Mutex
	answers  map[string][]netip.Addr
	errs     map[string]error
	block    map[string]bool // names whose lookup waits for the context
	times    map[string][]time.Time
	networks []string // the network of every lookup, in order
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{answers: map[string][]netip.Addr{}, errs: map[string]error{}, block: map[string]bool{}, times: map[string][]time.Time{}}
}

func (f *fakeDNS) set(name string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[name] = nil
	for _, a := range addrs {
		f.answers[name] = append(f.answers[name], netip.MustParseAddr(a))
	}
	delete(f.errs, name)
}

func (f *fakeDNS) fail(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[name] = err
}

func (f *fakeDNS) lookups(name string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times[name])
}

func (f *fakeDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip4" && network != "ip" {
		return nil, errors.New("fakeDNS: discovery must ask for ip4 or ip, asked for " + network)
	}
	f.mu.Lock()
	f.times[host] = append(f.times[host], time.Now())
	f.networks = append(f.networks, network)
	ans, err, block := slices.Clone(f.answers[host]), f.errs[host], f.block[host]
	f.mu.Unlock()
	if network == "ip4" && ans != nil {
		// As a resolver asked for A records only: no IPv6 address.
		ans = slices.DeleteFunc(ans, func(a netip.Addr) bool { return !a.Unmap().Is4() })
	}
	if block {
		<-ctx.Done()
		return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
	}
	if err != nil {
		return nil, err
	}
	if ans == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return ans, nil
}

var errTimeout = &net.DNSError{Err: "i/o timeout", Name: "x", Server: "10.0.0.53:53", IsTimeout: true}

// logBuf collects JSON log lines; safe for the Run goroutine and the test.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the decoded log lines whose message contains msg.
func (l *logBuf) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(l.b.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if s, _ := m["message"].(string); strings.Contains(s, msg) {
			out = append(out, m)
		}
	}
	return out
}

// rig is a stage under test with a fake clock, resolver and log.
type rig struct {
	s     *Stage
	table *peers.Table
	dns   *fakeDNS
	log   *logBuf
	clock time.Time
}

func newRig(cfg Config) *rig {
	r := &rig{table: peers.NewTable(), dns: newFakeDNS(), log: &logBuf{}, clock: time.Unix(1_700_000_000, 0)}
	cfg.MeshPort = meshPort
	if cfg.Resolver == nil {
		cfg.Resolver = r.dns
	}
	r.s = New(cfg, r.table, zerolog.New(r.log))
	r.s.now = func() time.Time { return r.clock }
	return r
}

// peers returns the published set as "addr=sources" strings, in order.
func (r *rig) peers() []string {
	var out []string
	for _, p := range r.table.Load().Peers {
		out = append(out, p.Addr.Addr().String()+"="+p.Sources())
	}
	return out
}

func (r *rig) resolve() { r.s.Resolve(context.Background()) }

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("peers = %q, want %q", got, want)
	}
}

func TestJoinAndLeave(t *testing.T) {
	r := newRig(Config{Discover: []string{"tasks.snowsignal"}, Interval: time.Hour})
	r.dns.set("tasks.snowsignal", "10.0.1.2", "10.0.1.3")
	r.resolve()
	want(t, r.peers(), "10.0.1.2=tasks.snowsignal", "10.0.1.3=tasks.snowsignal")
	if got := r.table.Load().Peers[0].Addr.Port(); got != meshPort {
		t.Fatalf("peer port %d, want the mesh port %d", got, meshPort)
	}
	stay := r.table.Load().Lookup(netip.MustParseAddr("10.0.1.3"))
	stay.TxPackets.Add(5)

	r.dns.set("tasks.snowsignal", "10.0.1.3", "10.0.1.4")
	r.resolve()
	want(t, r.peers(), "10.0.1.3=tasks.snowsignal", "10.0.1.4=tasks.snowsignal")
	if p := r.table.Load().Lookup(netip.MustParseAddr("10.0.1.3")); p != stay || p.TxPackets.Load() != 5 {
		t.Fatal("a peer that stayed in the set lost its identity or counters")
	}

	changes := r.log.lines(t, "peer set changed")
	if len(changes) != 2 {
		t.Fatalf("%d 'peer set changed' lines, want one per change (2)", len(changes))
	}
	last := changes[1]
	if j, l := last["joined"], last["left"]; !equalAny(j, "10.0.1.4:7124") || !equalAny(l, "10.0.1.2:7124") || last["level"] != "info" {
		t.Fatalf("change line %v: want joined [10.0.1.4:7124], left [10.0.1.2:7124] at info", last)
	}

	r.resolve() // no change, no line
	if n := len(r.log.lines(t, "peer set changed")); n != 2 {
		t.Fatalf("an unchanged round logged a change (%d lines)", n)
	}
	if got := r.s.Resolutions.Load(); got != 3 {
		t.Fatalf("Resolutions = %d, want 3", got)
	}
}

func equalAny(v any, want ...string) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}

func TestDNSFailureKeepsLastSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error // nil: the name vanishes (NXDOMAIN)
	}{
		{"timeout", errTimeout},
		{"servfail", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}},
		{"nxdomain", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counters := pipeline.NewMetrics().Stage("discovery")
			r := newRig(Config{Discover: []string{"relays.example"}, Interval: 10 * time.Second, Counters: counters})
			r.dns.set("relays.example", "10.0.1.2", "10.0.1.3")
			r.resolve()
			if tc.err != nil {
				r.dns.fail("relays.example", tc.err)
			} else {
				r.dns.set("relays.example") // no addresses: the fake answers NXDOMAIN
			}
			for range 5 { // e.g. kicks: five rounds within one interval
				r.clock = r.clock.Add(time.Second)
				r.resolve()
				want(t, r.peers(), "10.0.1.2=relays.example", "10.0.1.3=relays.example")
			}
			if got := r.s.Failures.Load(); got != 5 {
				t.Fatalf("Failures = %d, want 5 (every failed lookup counts)", got)
			}
			if got := counters.Errors.Load(); got != 5 {
				t.Fatalf("stage Errors counter = %d, want 5", got)
			}
			warns := r.log.lines(t, "cannot resolve peer name")
			if len(warns) != 1 {
				t.Fatalf("%d warnings in one interval, want 1", len(warns))
			}
			if w := warns[0]; w["level"] != "warn" || w["name"] != "relays.example" || w["kept"] != 2.0 || w["error"] == nil {
				t.Fatalf("warning %v: want level warn, the name, kept 2 and the error", w)
			}
			r.clock = r.clock.Add(10 * time.Second) // one interval after the warning
			r.resolve()
			if n := len(r.log.lines(t, "cannot resolve peer name")); n != 2 {
				t.Fatalf("%d warnings after a second interval, want 2", n)
			}
			if n := len(r.log.lines(t, "peer set changed")); n != 1 {
				t.Fatalf("failures changed the set (%d change lines, want the first only)", n)
			}

			r.dns.set("relays.example", "10.0.1.3")
			r.resolve()
			want(t, r.peers(), "10.0.1.3=relays.example")
			if n := len(r.log.lines(t, "peer name resolves again")); n != 1 {
				t.Fatalf("%d recovery lines, want 1", n)
			}
		})
	}
}

func TestDNSFailureBeforeAnyAnswer(t *testing.T) {
	r := newRig(Config{Discover: []string{"relays.example"}, Interval: time.Second})
	r.dns.fail("relays.example", errTimeout)
	r.resolve()
	want(t, r.peers())
	if r.table.Load().Self {
		t.Fatal("a configured name that fails must not turn on self mode")
	}
	if n := len(r.log.lines(t, "have no earlier answer")); n != 1 {
		t.Fatalf("%d warnings about a name never resolved, want 1", n)
	}
	r.dns.set("relays.example", "10.0.1.7")
	r.resolve()
	want(t, r.peers(), "10.0.1.7=relays.example")
}

func TestOwnAddressesRemoved(t *testing.T) {
	local := []netip.Addr{
		netip.MustParseAddr("10.0.1.2"),         // the overlay interface
		netip.MustParseAddr("172.18.0.5"),       // docker_gwbridge: not what the hostname resolves to
		netip.MustParseAddr("::ffff:192.0.2.1"), // v4-mapped form of another interface
		netip.MustParseAddr("127.0.0.1"),
	}
	var localErr error
	r := newRig(Config{
		Static:     []string{"172.18.0.5", "192.0.2.1", "127.0.0.2", "10.0.1.9"},
		Discover:   []string{"tasks.snowsignal"},
		Interval:   time.Second,
		LocalAddrs: func() ([]netip.Addr, error) { return local, localErr },
	})
	r.dns.set("tasks.snowsignal", "10.0.1.2", "10.0.1.3", "127.0.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1")
	r.resolve()
	want(t, r.peers(), "10.0.1.3=tasks.snowsignal", "10.0.1.9=static")

	// The addresses cannot be read: the last known ones are still excluded.
	localErr = errors.New("netlink: too many open files")
	r.dns.set("tasks.snowsignal", "10.0.1.2", "10.0.1.3", "10.0.1.4")
	r.resolve()
	want(t, r.peers(), "10.0.1.3=tasks.snowsignal", "10.0.1.4=tasks.snowsignal", "10.0.1.9=static")
	if n := len(r.log.lines(t, "cannot list this host's addresses")); n != 1 {
		t.Fatalf("%d warnings about local addresses, want 1", n)
	}
}

func TestUnionWithStaticPeers(t *testing.T) {
	r := newRig(Config{
		Static:   []string{"10.0.2.9", "relay-x", "10.0.1.3"},
		Discover: []string{"tasks.snowsignal", "snowsignal.controls.svc.cluster.local"},
		Interval: time.Second,
	})
	r.dns.set("relay-x", "10.0.3.1")
	r.dns.set("tasks.snowsignal", "10.0.1.2", "10.0.1.3")
	r.dns.set("snowsignal.controls.svc.cluster.local", "10.0.1.3", "10.0.4.4")
	r.resolve()
	want(t, r.peers(),
		"10.0.1.2=tasks.snowsignal",
		"10.0.1.3=snowsignal.controls.svc.cluster.local,static,tasks.snowsignal",
		"10.0.2.9=static",
		"10.0.3.1=static",
		"10.0.4.4=snowsignal.controls.svc.cluster.local",
	)
	// A static name is re-resolved like a discovery name: the relay moved.
	r.dns.set("relay-x", "10.0.3.2")
	// One failing name does not disturb the others.
	r.dns.fail("tasks.snowsignal", errTimeout)
	r.resolve()
	want(t, r.peers(),
		"10.0.1.2=tasks.snowsignal",
		"10.0.1.3=snowsignal.controls.svc.cluster.local,static,tasks.snowsignal",
		"10.0.2.9=static",
		"10.0.3.2=static",
		"10.0.4.4=snowsignal.controls.svc.cluster.local",
	)
	if r.table.Load().Self {
		t.Fatal("self mode with peers configured")
	}
}

func TestSelfModeOnlyWhenNothingConfigured(t *testing.T) {
	self := func() netip.Addr { return netip.MustParseAddr("10.0.1.2") }
	local := func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.1.2")}, nil }

	t.Run("nothing configured", func(t *testing.T) {
		r := newRig(Config{Interval: time.Second, SelfAddr: self, LocalAddrs: local})
		r.s.logStart()
		r.resolve()
		want(t, r.peers(), "10.0.1.2=self")
		if !r.table.Load().Self {
			t.Fatal("Set.Self is false in self mode")
		}
		if n := len(r.log.lines(t, "self mode")); n != 1 {
			t.Fatalf("%d self-mode lines, want 1", n)
		}
	})
	t.Run("only ourselves discovered", func(t *testing.T) {
		// A one-node Swarm: tasks.NAME is this relay alone. That is an
		// empty mesh, not self mode.
		r := newRig(Config{Discover: []string{"tasks.snowsignal"}, Interval: time.Second, SelfAddr: self, LocalAddrs: local})
		r.dns.set("tasks.snowsignal", "10.0.1.2")
		r.s.logStart()
		r.resolve()
		want(t, r.peers())
		if r.table.Load().Self {
			t.Fatal("self mode with a discovery name configured")
		}
		if n := len(r.log.lines(t, "self mode")); n != 0 {
			t.Fatal("logged self mode with a discovery name configured")
		}
	})
	t.Run("static and discovery", func(t *testing.T) {
		r := newRig(Config{Static: []string{"10.0.2.2"}, Discover: []string{"tasks.snowsignal"}, Interval: time.Second})
		r.s.logStart()
		if n := len(r.log.lines(t, "union")); n != 1 {
			t.Fatal("no log line saying static peers and discovery combine")
		}
	})
}

func TestLookupsRunConcurrently(t *testing.T) {
	// With a 200 ms interval each lookup may take 200 ms. A name whose
	// server never answers must not keep the others from being used.
	r := newRig(Config{Discover: []string{"dead.example", "live.example"}, Interval: 200 * time.Millisecond})
	r.dns.block["dead.example"] = true
	r.dns.set("live.example", "10.0.1.5")
	start := time.Now()
	r.resolve()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a round took %v with a 200ms lookup bound", d)
	}
	want(t, r.peers(), "10.0.1.5=live.example")
	if got := r.s.Failures.Load(); got != 1 {
		t.Fatalf("Failures = %d, want 1", got)
	}
}

// waitFor polls cond every 5 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestKickRateLimited(t *testing.T) {
	const gap = 150 * time.Millisecond
	r := newRig(Config{Discover: []string{"tasks.snowsignal"}, Interval: time.Hour})
	r.s.now = time.Now
	r.s.kickGap = gap
	r.dns.set("tasks.snowsignal", "10.0.1.2")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}()
	if !waitFor(time.Second, func() bool { return r.s.Resolutions.Load() == 1 }) {
		t.Fatal("no first round")
	}

	// A kick right after a round is deferred to the end of the gap, not lost.
	r.dns.set("tasks.snowsignal", "10.0.1.2", "10.0.1.3")
	r.s.Kick()
	if !waitFor(time.Second, func() bool { return len(r.peers()) == 2 }) {
		t.Fatal("a kick inside the gap was lost: the new peer was not picked up")
	}

	// A stream of kicks (one per datagram from an unknown relay) for 600 ms.
	for range 120 {
		r.s.Kick()
		time.Sleep(5 * time.Millisecond)
	}
	times := r.dns.lookups("tasks.snowsignal")
	if max := 2 + int(time.Since(times[0])/gap) + 1; len(times) > max {
		t.Fatalf("%d lookups in %v with a %v gap (want at most %d)", len(times), time.Since(times[0]), gap, max)
	}
	if len(times) < 4 {
		t.Fatalf("%d lookups: a stream of kicks for 600ms should give several early rounds", len(times))
	}
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < gap-20*time.Millisecond {
			t.Fatalf("rounds %d and %d only %v apart, want at least %v", i-1, i, d, gap)
		}
	}
}

func TestKickDoesNotAllocate(t *testing.T) {
	r := newRig(Config{Discover: []string{"tasks.snowsignal"}})
	if allocs := testing.AllocsPerRun(1000, r.s.Kick); allocs != 0 {
		t.Fatalf("Kick allocates %v times per call; it runs once per datagram from an unknown source", allocs)
	}
}

func TestRunStopsWithoutPublishingOnCancel(t *testing.T) {
	r := newRig(Config{Discover: []string{"dead.example"}, Interval: time.Hour})
	r.dns.block["dead.example"] = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	if !waitFor(time.Second, func() bool { return len(r.dns.lookups("dead.example")) == 1 }) {
		t.Fatal("no lookup")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not stop within 2s of cancel")
	}
	if r.s.Failures.Load() != 0 || len(r.log.lines(t, "cannot resolve")) != 0 {
		t.Fatal("a lookup cut short by shutdown was counted or logged as a DNS failure")
	}
}

// Prime publishes the peers known without DNS before the first round, so
// static IP peers are admitted from the first datagram.
func TestPrimePublishesStaticAddressesWithoutDNS(t *testing.T) {
	r := newRig(Config{Static: []string{"10.0.2.9", "relay-x"}, Discover: []string{"tasks.snowsignal"}, Interval: time.Second})
	r.dns.set("relay-x", "10.0.3.1")
	r.s.Prime(context.Background())
	want(t, r.peers(), "10.0.2.9=static")
	if n := len(r.dns.lookups("relay-x")) + len(r.dns.lookups("tasks.snowsignal")); n != 0 {
		t.Errorf("Prime made %d DNS lookups", n)
	}
	r.resolve()
	want(t, r.peers(), "10.0.2.9=static", "10.0.3.1=static")
}
