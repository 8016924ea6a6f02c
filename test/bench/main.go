//go:build linux

// Command bench measures SnowSignal against the physical path and against
// a reference relay, in network namespaces, and records the results in
// docs/BENCHMARKS.md.
//
//	sudo go run ./test/bench           # about 1.5 minutes
//	sudo go run ./test/bench -quick    # about 40 seconds
//
// It builds a Swarm-like lab with the netio/netlab package: segment a (eight
// clients, relay-a), segment b (server, relay-b) and segment c (eight
// clients and a server, no relay). The clients behave as EPICS clients in a
// search storm: each has a plain UDP socket and sends every 100-byte
// datagram with its own sendto(2) to the broadcast address, paced by the
// clock; the server reads with one recvmsg(2) per datagram. In one run it
// measures three paths at 1k, 20k, 40k datagrams/s and at the sender's
// ceiling (the rate where the sender can no longer keep pace):
//
//   - direct: segment c's clients to its server, no relay (the physical path);
//   - reference: segment a to segment b through a reference relay pair in
//     this process (refrelay.go: recvmmsg, a minimal rewrite, sendmmsg, on
//     locked threads), the limit of a relay written in Go on this machine;
//   - SnowSignal: the same through two real `snowsignal run` processes, in
//     the same hosts, after the reference pair has stopped.
//
// For each: offered and achieved rate, delivered share, one-way latency
// p50/p99 (from a send time in each payload; namespaces share the host's
// clocks and both ends are in this process), CPU per datagram of both
// relays together (/proc schedstat and utime+stime), idle CPU, peak RSS,
// every drop counter that moved, and the ratios SnowSignal / reference.
// Absolute figures do not carry from one machine to the next; the ratios do.
// -compare BIN adds a fourth path: another snowsignal build, measured after
// the first in the same run, with its own ratios.
//
// Every load loop is bounded in count and time, and a watchdog ends the run
// if it lasts longer than -max. The lab and the relays are removed on exit,
// on Ctrl-C too.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// options are the command-line flags.
type options struct {
	refProcess   bool
	refNetpoll   bool
	quick        bool
	step         time.Duration
	latency      time.Duration
	bin          string
	compare      string
	compareLabel string
	relayArgs    string
	relayEnv     string
	compareEnv   string
	label        string
	brNetfilter  bool
	out          string
	write        bool
	pprof        string
	pprofRate    float64
	max          time.Duration
	waitQuiet    time.Duration
	rounds       int
	sizes        int
}

// plan is what one run measures, derived from the options.
type plan struct {
	mode    string
	idle    time.Duration
	steps   []planStep    // the fixed rates, in order; the ceiling comes last
	ceiling time.Duration // each step of the run at the ceiling
	probe   time.Duration // each step of the ceiling search
	search  []float64     // offered rates of the ceiling search
	pause   time.Duration // between steps, for queues to drain
	rounds  int           // interleaved rounds of the light step (measureRounds); 1: none
}

// planStep is one offered rate and how long it runs.
type planStep struct {
	Rate float64
	D    time.Duration
}

// The fixed rates of every run: light traffic, a busy system, a storm.
var fixedRates = []float64{1e3, 20e3, 40e3}

// stormRate is the storm of issue 11, where the relay lost a quarter.
const stormRate = 40e3

func main() {
	if len(os.Args) > 1 && os.Args[1] == refChildArg {
		os.Exit(refChild(os.Args[2:]))
	}
	var o options
	flag.BoolVar(&o.refProcess, "reference-process", true, "also measure the reference relay pair as processes of their own (the path \"reference, own process\"), measured whole as SnowSignal's relays are, beside the pair of threads in this process that the targets are judged by")
	flag.BoolVar(&o.refNetpoll, "reference-netpoll", true, "also measure the reference relay pair as processes that wait in the Go runtime's poller on one P, as SnowSignal does (the path \"reference, netpoller\")")
	flag.BoolVar(&o.quick, "quick", false, "short run (about 40 s): shorter steps")
	flag.DurationVar(&o.step, "step", 0, "duration of each step at 20k/s, 40k/s and the ceiling (default 2s, 1s with -quick)")
	flag.IntVar(&o.rounds, "rounds", 0, "measure the 1k/s step in this many rounds, interleaved across the paths (default 3, 1 with -quick; 1: each path in one piece)")
	flag.DurationVar(&o.latency, "latency", 0, "duration of the step at 1k/s (default 3s, 1s with -quick)")
	flag.StringVar(&o.bin, "bin", "", "snowsignal binary to measure (default: build ./cmd/snowsignal)")
	flag.StringVar(&o.compare, "compare", "", "also measure this snowsignal binary in the same run, after -bin, as a fourth path (a change against the reference)")
	flag.StringVar(&o.compareLabel, "compare-label", "candidate", "name of the -compare path in the results")
	flag.StringVar(&o.relayArgs, "relay-args", "", "extra arguments for both relays, space-separated (e.g. \"--no-local-delivery\")")
	flag.StringVar(&o.compareEnv, "compare-env", "", "extra environment for the -compare path's relays only, after -relay-env (e.g. \"MAX_DELAY=4ms\": a setting against the default, in the same run)")
	flag.StringVar(&o.relayEnv, "relay-env", "", "extra environment for both relays, space-separated (e.g. \"GOMAXPROCS=1 GOGC=400\")")
	flag.BoolVar(&o.brNetfilter, "br-netfilter", true, "leave the kernel's br_netfilter on the lab's bridge (false: set bridge-nf-call-* to 0 in the switch namespace, so bridged frames skip the iptables hooks)")
	flag.StringVar(&o.label, "label", "", "a note for the results' heading, e.g. which build was measured")
	flag.StringVar(&o.out, "out", "", "results file (default docs/BENCHMARKS.md in the module)")
	flag.BoolVar(&o.write, "write", true, "record the results in the results file")
	flag.StringVar(&o.pprof, "pprof", "", "also save CPU profiles, runtime traces and stats snapshots of both SnowSignal relays under load into this directory (adds --debug-address)")
	flag.Float64Var(&o.pprofRate, "pprof-rate", stormRate, "datagrams/s through the relays while -pprof profiles them")
	flag.IntVar(&o.sizes, "sizes", 1, "payload sizes of the datagrams, from 100 bytes up, varied datagram to datagram as searches for PV names of different lengths are (1: every datagram 100 bytes)")
	flag.DurationVar(&o.max, "max", 5*time.Minute, "abort the run after this long")
	flag.DurationVar(&o.waitQuiet, "wait-quiet", time.Minute, "wait up to this long in all for other programs to leave the CPUs before steps (0: never wait)")
	flag.Parse()
	// The reference relay's four threads, the sender and the receiver each
	// run locked to a goroutine and block in system calls; returning from
	// one, a thread needs one of this process's Ps to go on. With as many
	// Ps as CPUs (2), they would wait for each other in Go's scheduler, not
	// the kernel's, and the reference would be slowed by the benchmark's own
	// sender. With a P for each, they compete for the CPUs as the relays'
	// processes do. Ps cost nothing while idle.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(runtime.NumCPU(), benchProcs))
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func makePlan(o options) plan {
	p := plan{mode: "full", idle: 2 * time.Second, ceiling: 2 * time.Second, probe: 500 * time.Millisecond,
		pause: 200 * time.Millisecond, search: []float64{50e3, 75e3, 100e3, 150e3, 200e3, 300e3}}
	lat, step := 3*time.Second, 2*time.Second
	p.rounds = 3
	if o.quick {
		p.mode, p.ceiling, p.probe, p.pause = "quick", time.Second, 300*time.Millisecond, 100*time.Millisecond
		lat, step = time.Second, time.Second
		p.rounds = 1
	}
	if o.rounds > 0 {
		p.rounds = o.rounds
	}
	if o.step > 0 {
		step, p.ceiling = o.step, o.step
	}
	if o.latency > 0 {
		lat = o.latency
	}
	for _, r := range fixedRates {
		d := step
		if r < 10e3 {
			d = lat
		}
		p.steps = append(p.steps, planStep{Rate: r, D: d})
	}
	return p
}

// benchProcs is the benchmark's GOMAXPROCS (see main): a P for each of
// its locked threads (4 reference relay threads, the sender, the receiver)
// and two for everything else.
const benchProcs = 8

// clients is how many client hosts, each with its own address and socket,
// send the storm on a segment: enough that per-client rate limits, dedup
// and the injector election see realistic keys.
const clients = 8

// benchSpec is the Swarm lab of the benchmark, on 10.77.0.0/24. Each
// client host gets clients-1 more addresses (clientAddrs):
//
//	segment a: client 10.77.0.11-18, relay-a 10.77.0.1
//	segment b: server 10.77.0.21, relay-b 10.77.0.2
//	segment c: dclient 10.77.0.31-38, dserver 10.77.0.41 (no relay)
//
// The clients share a host rather than having one each: in this lab every
// host on a segment costs the sender a copy of each broadcast (the bridge
// floods it to every port, and all of that runs on these two CPUs), which
// on a real network the other machines would pay.
func benchSpec() netlab.Spec {
	return netlab.Spec{
		Subnet: netip.MustParsePrefix("10.77.0.0/24"),
		Segments: []netlab.SegmentSpec{
			{Name: "a", Hosts: []netlab.HostSpec{
				{Name: "client", Addr: netip.MustParseAddr("10.77.0.11")},
				{Name: "relay-a", Addr: netip.MustParseAddr("10.77.0.1")},
			}},
			{Name: "b", Hosts: []netlab.HostSpec{
				{Name: "server", Addr: netip.MustParseAddr("10.77.0.21")},
				{Name: "relay-b", Addr: netip.MustParseAddr("10.77.0.2")},
			}},
			{Name: "c", Hosts: []netlab.HostSpec{
				{Name: "dclient", Addr: netip.MustParseAddr("10.77.0.31")},
				{Name: "dserver", Addr: netip.MustParseAddr("10.77.0.41")},
			}},
		},
	}
}

// clientAddrs gives host clients addresses, its own first and the next
// ones after it, adding the others to its eth0 (the lab removes them with
// the namespace).
func clientAddrs(h *netlab.Host) ([]netip.Addr, error) {
	addrs := []netip.Addr{h.IP}
	for a := h.IP.Next(); len(addrs) < clients; a = a.Next() {
		addrs = append(addrs, a)
	}
	err := h.Do(func() error {
		link, err := netlink.LinkByName(netlab.IfName)
		if err != nil {
			return err
		}
		for _, a := range addrs[1:] {
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(h.Prefix.Bits(), 32)}}); err != nil {
				return fmt.Errorf("add %v: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: client addresses: %w", h.Name, err)
	}
	return addrs, nil
}

func run(o options) error {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("needs root for network namespaces: %w", err)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "docs", "BENCHMARKS.md")
	}
	p := makePlan(o)
	stopSignals := netlab.CloseOnSignal()
	defer stopSignals()
	watchdog := time.AfterFunc(o.max, func() {
		fmt.Fprintf(os.Stderr, "bench: still running after %s; aborting\n", o.max)
		netlab.CloseAll()
		os.Exit(2) // the relays die with us (Pdeathsig)
	})
	defer watchdog.Stop()

	tmp, err := os.MkdirTemp("", "snowsignal-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(tmp, "snowsignal")
		logf("building %s", bin)
		if err := buildBinary(root, bin); err != nil {
			return err
		}
	}
	env := describeHost(root)
	env.Mode = p.mode
	env.Sizes = max(o.sizes, 1)
	env.RelayArgs = o.relayArgs
	env.RelayEnv = o.relayEnv
	env.CompareEnv = o.compareEnv
	env.Label = o.label
	if o.bin != "" {
		env.Binary = o.bin
	}

	logf("building the lab")
	l, err := netlab.NewSwarm(benchSpec())
	if err != nil {
		return err
	}
	defer l.Close()
	if !o.brNetfilter {
		for _, k := range []string{"iptables", "ip6tables", "arptables"} {
			if err := l.SwitchSysctl("net.bridge.bridge-nf-call-"+k, "0"); err != nil {
				return err
			}
		}
		env.Lab = "br_netfilter off in the lab's switch (-br-netfilter=false)"
	}

	res, err := measure(l, bin, p, o)
	if err != nil {
		return err
	}
	res.Env = env
	report := res.markdown()
	fmt.Println(report)
	if o.write {
		if err := record(o.out, report); err != nil {
			return err
		}
		logf("recorded in %s", o.out)
	}
	return nil
}

// Path names, as the results show them.
const (
	pathDirect     = "direct"
	pathReference  = "reference"
	pathRefProcess = "reference, own process"
	pathRefNetpoll = "reference, netpoller"
	pathSnowSignal = "SnowSignal"
)

// searchPort is the port the clients broadcast to (PVAccess).
const searchPort = 5076

// measure takes every measurement: the direct path first, then the
// reference relay pair, then the SnowSignal relays, each at every rate of
// the plan and the sender's ceiling. Only one relay pair runs at a time.
func measure(l *netlab.Lab, bin string, p plan, o options) (*results, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock{base: time.Now()}
	res := &results{Plan: p, Steps: map[string][]stepResult{}, Drops: map[string][]counterSet{},
		Idle: map[string]idleResult{}, RelayNames: map[string][]string{},
		MemWarm: map[string][]procSample{}, MemEnd: map[string][]procSample{}}

	mkPath := func(name string, from, to *netlab.Host) (*path, error) {
		addrs, err := clientAddrs(from)
		if err != nil {
			return nil, err
		}
		snd, err := newSender(from, addrs, netip.AddrPortFrom(from.Broadcast, searchPort), clk, o.sizes)
		if err != nil {
			return nil, err
		}
		rcv, err := newReceiver(to, searchPort, clk)
		if err != nil {
			snd.close()
			return nil, err
		}
		return &path{name: name, snd: snd, rcv: rcv}, nil
	}
	direct, err := mkPath(pathDirect, l.Host("dclient"), l.Host("dserver"))
	if err != nil {
		return nil, err
	}
	defer direct.close()
	relayed, err := mkPath("relayed", l.Host("client"), l.Host("server"))
	if err != nil {
		return nil, err
	}
	defer relayed.close()
	rn := &runner{quiet: 250 * time.Millisecond, trace: logf, waitBudget: o.waitQuiet}
	receivers := []*netlab.Host{l.Host("server"), l.Host("dserver")}

	// runRates runs pa at every rate, recording the steps and the drop
	// counters that moved in each under name.
	var rates []planStep
	var light map[string]stepResult // the light step, from interleaved rounds
	runRates := func(name string, pa *path) error {
		pa.name = name
		for i, st := range rates {
			if s, ok := light[name]; ok && i == 0 {
				res.Steps[name] = append(res.Steps[name], s)
				res.Drops[name] = append(res.Drops[name], counterSet{})
				continue
			}
			c0, err := collectCounters(l, receivers, pa.relays)
			if err != nil {
				return err
			}
			s, err := rn.run(pa, st.Rate, st.D, true)
			if err != nil {
				return err
			}
			time.Sleep(p.pause)
			c1, err := collectCounters(l, receivers, pa.relays)
			if err != nil {
				return err
			}
			res.Steps[name] = append(res.Steps[name], s)
			res.Drops[name] = append(res.Drops[name], c1.sub(c0))
		}
		return nil
	}

	logf("direct path: the sender's ceiling (steps of %s)", p.probe)
	if _, err := rn.run(direct, 20e3, 300*time.Millisecond, false); err != nil { // warm-up
		return nil, err
	}
	// A search disturbed by other programs can end below the storm's
	// rate; search once more then, and keep the higher ceiling.
	for attempt := 0; attempt < 2 && res.Ceiling < stormRate; attempt++ {
		c, steps, err := rn.ceiling(direct, p.search, p.probe, p.pause)
		if err != nil {
			return nil, err
		}
		res.CeilingSteps = append(res.CeilingSteps, steps...)
		res.Ceiling = max(res.Ceiling, c)
	}
	logf("sender's ceiling: %.0f/s", res.Ceiling)
	rates = append(append([]planStep(nil), p.steps...), planStep{Rate: res.Ceiling, D: p.ceiling})
	res.Rates = rates
	if p.rounds > 1 && rates[0].Rate < 10e3 {
		if light, err = measureRounds(rn, direct, relayed, roundPaths(ctx, l, bin, o, res), rates[0], p.rounds); err != nil {
			return nil, err
		}
	}
	logf("direct path")
	if err := runRates(pathDirect, direct); err != nil {
		return nil, err
	}

	measureRef := func(name string, mode refMode) error {
		logf("%s relay pair", name)
		ref, err := startRefPair(l, searchPort, mode)
		if err != nil {
			return err
		}
		defer ref.close()
		var diagnose func() error
		if o.pprof != "" && mode == refBlocking {
			diagnose = func() error {
				if err := os.MkdirAll(o.pprof, 0o755); err != nil {
					return err
				}
				_, err := sampleQueues(o.pprof, name, o.pprofRate, traceTime, rn, relayed, l)
				return err
			}
		}
		return measureRelays(name, ref.relays, rn, relayed, res, runRates, p, nil, diagnose)
	}
	if err := measureRef(pathReference, refBlocking); err != nil {
		return nil, err
	}
	if o.refProcess {
		if err := measureRef(pathRefProcess, refRaw); err != nil {
			return nil, err
		}
	}
	if o.refNetpoll {
		if err := measureRef(pathRefNetpoll, refNetpoll); err != nil {
			return nil, err
		}
	}

	if err := measureSnowSignal(ctx, pathSnowSignal, bin, l, o, rn, relayed, res, runRates, p, o.pprof); err != nil {
		return nil, err
	}
	if o.compare != "" {
		res.Candidate = o.compareLabel
		if err := measureSnowSignal(ctx, o.compareLabel, o.compare, l, o, rn, relayed, res, runRates, p, ""); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// measureSnowSignal starts two `bin run` processes in relay-a and relay-b
// and measures the relayed path through them under name; with pprofDir it
// also diagnoses them under load (profile). It stops them before it
// returns.
func measureSnowSignal(ctx context.Context, name, bin string, l *netlab.Lab, o options, rn *runner, relayed *path,
	res *results, runRates func(string, *path) error, p plan, pprofDir string) error {
	logf("%s relays (%s)", name, bin)
	procs, err := startSnowSignalPair(ctx, name, bin, l, o, pprofDir != "")
	defer stopAll(procs)
	if err != nil {
		return err
	}
	if name == pathSnowSignal {
		res.StatsSocket = procs[0].r.StatsSocket != ""
	}
	rs := []relay{procs[0], procs[1]}
	warm := func() error {
		for _, r := range procs {
			s, err := r.sample()
			if err != nil {
				return err
			}
			res.MemWarm[name] = append(res.MemWarm[name], s)
		}
		return nil
	}
	var diagnose func() error
	if pprofDir != "" {
		diagnose = func() error {
			if err := os.MkdirAll(pprofDir, 0o755); err != nil {
				return err
			}
			if _, err := sampleQueues(pprofDir, name, o.pprofRate, traceTime, rn, relayed, l); err != nil {
				return err
			}
			return profile(pprofDir, o.pprofRate, rn, relayed, procs)
		}
	}
	if err := measureRelays(name, rs, rn, relayed, res, runRates, p, warm, diagnose); err != nil {
		return err
	}
	for _, r := range procs {
		s, err := r.sample()
		if err != nil {
			return err
		}
		res.MemEnd[name] = append(res.MemEnd[name], s)
		if name == pathSnowSignal {
			res.Problems = append(res.Problems, r.problems()...)
		}
	}
	return nil
}

// roundPaths are the paths of the interleaved rounds, each with how to
// start its pair: those measure measures, in its order.
func roundPaths(ctx context.Context, l *netlab.Lab, bin string, o options, res *results) []roundPath {
	ref := func(mode refMode) func() ([]relay, func(), error) {
		return func() ([]relay, func(), error) {
			pair, err := startRefPair(l, searchPort, mode)
			if err != nil {
				return nil, nil, err
			}
			return pair.relays, pair.close, nil
		}
	}
	snowSignal := func(name, bin string) func() ([]relay, func(), error) {
		return func() ([]relay, func(), error) {
			procs, err := startSnowSignalPair(ctx, name, bin, l, o, false)
			if err != nil {
				stopAll(procs)
				return nil, nil, err
			}
			stop := func() {
				if name == pathSnowSignal {
					for _, r := range procs {
						res.Problems = append(res.Problems, r.problems()...)
					}
				}
				stopAll(procs)
			}
			return []relay{procs[0], procs[1]}, stop, nil
		}
	}
	paths := []roundPath{{name: pathDirect}, {pathReference, ref(refBlocking)}}
	if o.refProcess {
		paths = append(paths, roundPath{pathRefProcess, ref(refRaw)})
	}
	if o.refNetpoll {
		paths = append(paths, roundPath{pathRefNetpoll, ref(refNetpoll)})
	}
	paths = append(paths, roundPath{pathSnowSignal, snowSignal(pathSnowSignal, bin)})
	if o.compare != "" {
		paths = append(paths, roundPath{o.compareLabel, snowSignal(o.compareLabel, o.compare)})
	}
	return paths
}

// startSnowSignalPair starts `bin run` in relay-a and relay-b for the path
// name, each with the other as its peer, and with debug its profiling
// endpoint. On error it returns the relays it started, for stopAll.
func startSnowSignalPair(ctx context.Context, name, bin string, l *netlab.Lab, o options, debug bool) ([]*relayProc, error) {
	var procs []*relayProc
	extra := strings.Fields(o.relayArgs)
	env := strings.Fields(o.relayEnv)
	if o.compare != "" && name == o.compareLabel {
		env = append(env, strings.Fields(o.compareEnv)...)
	}
	for _, rp := range [][2]string{{"relay-a", "relay-b"}, {"relay-b", "relay-a"}} {
		args := append([]string{"-t", netlab.IfName, "--other-relays", l.Host(rp[1]).IP.String(), "-l", "info"}, extra...)
		if debug {
			args = append(args, "--debug-address", debugAddr)
		}
		r, err := startRelay(ctx, rp[0], bin, l.Host(rp[0]), env, args...)
		if err != nil {
			return procs, err
		}
		procs = append(procs, r)
	}
	return procs, nil
}

// stopAll stops the relays, logging what goes wrong.
func stopAll(procs []*relayProc) {
	for _, r := range procs {
		if err := r.stop(); err != nil {
			logf("%v", err)
		}
	}
}

// measureRelays measures the relayed path through rs, a running relay
// pair, under name: it waits for the first datagram to cross, warms up,
// calls afterWarm if set, measures idle CPU, then every rate, then calls
// after if set.
func measureRelays(name string, rs []relay, rn *runner, relayed *path, res *results,
	runRates func(string, *path) error, p plan, afterWarm, after func() error) error {
	relayed.name, relayed.relays, rn.idle = name, rs, rs
	defer func() { relayed.relays, rn.idle = nil, nil }()
	for _, r := range rs {
		res.RelayNames[name] = append(res.RelayNames[name], r.label())
	}
	if err := waitRelayed(rn, relayed); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := rn.run(relayed, 20e3, 500*time.Millisecond, false); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	if afterWarm != nil {
		if err := afterWarm(); err != nil {
			return err
		}
	}
	logf("%s: idle CPU over %s", name, p.idle)
	idle, err := measureIdle(rs, p.idle)
	if err != nil {
		return err
	}
	res.Idle[name] = idle
	if err := runRates(name, relayed); err != nil {
		return err
	}
	if after != nil {
		return after()
	}
	return nil
}

// idleResult is the CPU time each relay of a pair used with no traffic.
type idleResult struct {
	CPU  []cpuDelta
	Wall time.Duration
}

// PerSecond is the CPU seconds per second both relays used together.
func (r idleResult) PerSecond() float64 {
	if r.Wall <= 0 {
		return 0
	}
	var t uint64
	for _, c := range r.CPU {
		t += c.RunNS
	}
	return float64(t) / 1e9 / r.Wall.Seconds()
}

func measureIdle(rs []relay, d time.Duration) (idleResult, error) {
	var out idleResult
	before := make([]procSample, len(rs))
	for i, r := range rs {
		var err error
		if before[i], err = r.sample(); err != nil {
			return out, err
		}
	}
	t0 := time.Now()
	time.Sleep(d)
	out.Wall = time.Since(t0)
	for i, r := range rs {
		s, err := r.sample()
		if err != nil {
			return out, err
		}
		out.CPU = append(out.CPU, s.sub(before[i]))
	}
	return out, nil
}

// waitRelayed sends probes through the relays until a whole probe arrives:
// the relays have opened their sockets and relay-a has resolved relay-b's
// MAC. It gives up after 10 s.
func waitRelayed(rn *runner, p *path) error {
	deadline := time.Now().Add(10 * time.Second)
	q := rn.quiet
	rn.quiet = 50 * time.Millisecond
	defer func() { rn.quiet = q }()
	trace := rn.trace
	rn.trace = nil
	defer func() { rn.trace = trace }()
	for time.Now().Before(deadline) {
		s, err := rn.run(p, 200, 50*time.Millisecond, false)
		if err != nil {
			return err
		}
		if s.Recv.Got == s.Send.Sent && s.Send.Sent > 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	var logs []string
	for _, r := range p.relays {
		if rp, ok := r.(*relayProc); ok {
			logs = append(logs, rp.name+":\n"+tail(rp.output(), 4096))
		}
	}
	return fmt.Errorf("no datagram crossed the relays within 10 s\n%s", strings.Join(logs, "\n"))
}

// buildBinary builds the relay as `just build` does.
func buildBinary(root, out string) error {
	ver := gitOut(root, "describe", "--tags", "--always", "--dirty")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-X main.version="+orDefault(ver, "dev")+" -X main.commit="+orDefault(gitOut(root, "rev-parse", "--short", "HEAD"), "unknown"),
		"-o", out, "./cmd/snowsignal")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	return nil
}

// moduleRoot walks up from the working directory to the folder with go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

func gitOut(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// describeHost says what the results were measured on.
func describeHost(root string) envInfo {
	e := envInfo{When: time.Now().UTC(), NCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	e.Commit = orDefault(gitOut(root, "rev-parse", "--short", "HEAD"), "unknown")
	if gitOut(root, "status", "--porcelain", "--untracked-files=no") != "" {
		e.Commit += " (with uncommitted changes)"
	}
	return e
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}
