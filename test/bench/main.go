//go:build linux

// Command bench measures SnowSignal against the direct path, in network
// namespaces, and records the results in docs/BENCHMARKS.md.
//
//	sudo go run ./test/bench           # about 1.5 minutes
//	sudo go run ./test/bench -quick    # about 30 seconds
//
// It builds a Swarm-like lab with the netio/netlab package: segment a (client,
// relay-a), segment b (server, relay-b) and segment c (dclient, dserver, no
// relay). It builds the snowsignal binary and runs two real relay processes,
// then measures side by side, in the same run, the direct path (dclient to
// dserver on one segment: the ceiling set by the sender, the kernel and the
// receiver) and the relayed path (client → relay-a → relay-b → server) with
// 100-byte broadcasts to UDP port 5076:
//
//   - the highest offered rate with at least 99 % delivered (a sweep, then
//     a bisection; every step a short bounded run);
//   - delivery at 50k datagrams/s, the target rate;
//   - one-way latency p50/p99/max at 1k/s and 20k/s, from a send time in
//     each payload (namespaces share the host's clocks; both ends are in
//     this process);
//   - CPU time of each relay process per datagram (from /proc), idle CPU,
//     peak RSS (VmHWM);
//   - kernel and link drops.
//
// Every load loop is bounded in count and time, and a watchdog ends the run
// if it lasts longer than -max. The lab and the relays are removed on exit,
// on Ctrl-C too.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// options are the command-line flags.
type options struct {
	quick       bool
	step        time.Duration
	latency     time.Duration
	bin         string
	relayArgs   string
	relayEnv    string
	label       string
	brNetfilter bool
	out         string
	write       bool
	pprof       string
	pprofRate   float64
	max         time.Duration
	waitQuiet   time.Duration
}

// plan is what one run measures, derived from the options.
type plan struct {
	mode      string
	idle      time.Duration
	latency   time.Duration // each latency run at 1k/s
	latency20 time.Duration // each latency run at 20k/s
	target    time.Duration // the run at the target rate
	step      time.Duration // each sweep step
	bisect    int
	rates     []float64
	pause     time.Duration // between sweep steps, for queues to drain
}

// targetRate is the delivery target through two relays.
const targetRate = 50000

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "short run (about 30 s): shorter steps, fewer bisections")
	flag.DurationVar(&o.step, "step", 0, "duration of each sweep step (default 1s, 500ms with -quick)")
	flag.DurationVar(&o.latency, "latency", 0, "duration of each latency run at 1k/s (default 3s, 1s with -quick)")
	flag.StringVar(&o.bin, "bin", "", "snowsignal binary to measure (default: build ./cmd/snowsignal)")
	flag.StringVar(&o.relayArgs, "relay-args", "", "extra arguments for both relays, space-separated (e.g. \"--no-local-delivery\")")
	flag.StringVar(&o.relayEnv, "relay-env", "", "extra environment for both relays, space-separated (e.g. \"GOMAXPROCS=1 GOGC=400\")")
	flag.BoolVar(&o.brNetfilter, "br-netfilter", true, "leave the kernel's br_netfilter on the lab's bridge (false: set bridge-nf-call-* to 0 in the switch namespace, so bridged frames skip the iptables hooks)")
	flag.StringVar(&o.label, "label", "", "a note for the results' heading, e.g. which build was measured")
	flag.StringVar(&o.out, "out", "", "results file (default docs/BENCHMARKS.md in the module)")
	flag.BoolVar(&o.write, "write", true, "record the results in the results file")
	flag.StringVar(&o.pprof, "pprof", "", "also save CPU profiles of both relays under load into this directory (needs --debug-address)")
	flag.Float64Var(&o.pprofRate, "pprof-rate", 20e3, "datagrams/s through the relays while -pprof profiles them")
	flag.DurationVar(&o.max, "max", 5*time.Minute, "abort the run after this long")
	flag.DurationVar(&o.waitQuiet, "wait-quiet", time.Minute, "wait up to this long in all for other programs to leave the CPUs before steps (0: never wait)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func makePlan(o options) plan {
	p := plan{mode: "full", idle: 2 * time.Second, latency: 3 * time.Second, latency20: 2 * time.Second,
		target: 2 * time.Second, step: time.Second, bisect: 4, pause: 200 * time.Millisecond,
		rates: []float64{10e3, 25e3, 50e3, 75e3, 100e3, 150e3, 200e3, 300e3}}
	if o.quick {
		p = plan{mode: "quick", idle: 2 * time.Second, latency: time.Second, latency20: time.Second,
			target: time.Second, step: 500 * time.Millisecond, bisect: 2, pause: 100 * time.Millisecond,
			rates: []float64{25e3, 50e3, 100e3, 200e3}}
	}
	if o.step > 0 {
		p.step = o.step
	}
	if o.latency > 0 {
		p.latency = o.latency
	}
	return p
}

// benchSpec is TwoSegmentSwarm plus segment c, where a client and a server
// talk with no relay: the direct path.
func benchSpec() netlab.Spec {
	s := netlab.TwoSegmentSwarm()
	s.Segments = append(s.Segments, netlab.SegmentSpec{Name: "c", Hosts: []netlab.HostSpec{
		{Name: "dclient", Addr: netip.MustParseAddr("10.77.0.31")},
		{Name: "dserver", Addr: netip.MustParseAddr("10.77.0.41")},
	}})
	return s
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
	env.RelayArgs = o.relayArgs
	env.RelayEnv = o.relayEnv
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

// measure runs the relays in l and takes every measurement.
func measure(l *netlab.Lab, bin string, p plan, o options) (*results, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock{base: time.Now()}
	res := &results{Plan: p}

	// Relays first: their capture sockets open before any traffic.
	var relays []*relayProc
	defer func() {
		for _, r := range relays {
			if err := r.stop(); err != nil {
				logf("%v", err)
			}
		}
	}()
	extra := strings.Fields(o.relayArgs)
	for _, rp := range [][2]string{{"relay-a", "relay-b"}, {"relay-b", "relay-a"}} {
		args := append([]string{"-t", netlab.IfName, "--other-relays", l.Host(rp[1]).IP.String(), "-l", "info"}, extra...)
		if o.pprof != "" {
			args = append(args, "--debug-address", debugAddr)
		}
		r, err := startRelay(ctx, rp[0], bin, l.Host(rp[0]), strings.Fields(o.relayEnv), args...)
		if err != nil {
			return nil, err
		}
		relays = append(relays, r)
	}
	res.StatsSocket = relays[0].r.StatsSocket != ""

	mkPath := func(name, from, to string, relays []*relayProc) (*path, error) {
		src, dst := l.Host(from), l.Host(to)
		sc, err := src.BroadcastUDP("0.0.0.0:0")
		if err != nil {
			return nil, err
		}
		rc, err := dst.ListenUDP("0.0.0.0:5076")
		if err != nil {
			return nil, err
		}
		snd, err := newSender(sc, netip.AddrPortFrom(src.Broadcast, 5076), clk)
		if err != nil {
			return nil, err
		}
		rcv, err := newReceiver(rc, clk)
		if err != nil {
			return nil, err
		}
		return &path{name: name, snd: snd, rcv: rcv, relays: relays}, nil
	}
	direct, err := mkPath("direct", "dclient", "dserver", nil)
	if err != nil {
		return nil, err
	}
	relayed, err := mkPath("relayed", "client", "server", relays)
	if err != nil {
		return nil, err
	}
	paths := []*path{direct, relayed}
	rn := &runner{quiet: 250 * time.Millisecond, trace: logf, idle: relays, waitBudget: o.waitQuiet}
	counters := func() (counterSet, error) {
		return collectCounters(l, []*netlab.Host{l.Host("server"), l.Host("dserver")}, relays)
	}

	logf("waiting for the relays")
	if err := waitRelayed(rn, relayed); err != nil {
		return nil, err
	}
	logf("warming up")
	for _, pa := range paths {
		if _, err := rn.run(pa, 20e3, 500*time.Millisecond, false); err != nil {
			return nil, err
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, r := range relays {
		s, err := r.sample()
		if err != nil {
			return nil, err
		}
		res.MemWarm = append(res.MemWarm, s)
	}

	logf("idle CPU over %s", p.idle)
	before := make([]procSample, len(relays))
	for i, r := range relays {
		if before[i], err = r.sample(); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	time.Sleep(p.idle)
	res.IdleWall = time.Since(t0)
	for i, r := range relays {
		s, err := r.sample()
		if err != nil {
			return nil, err
		}
		res.Idle = append(res.Idle, s.sub(before[i]))
	}

	res.Paths = map[string]*pathResults{}
	for _, pa := range paths {
		res.Paths[pa.name] = &pathResults{}
	}
	logf("latency at 1k/s for %s", p.latency)
	for _, pa := range paths {
		if res.Paths[pa.name].Lat1k, err = rn.run(pa, 1e3, p.latency, true); err != nil {
			return nil, err
		}
	}
	logf("latency at 20k/s for %s", p.latency20)
	for _, pa := range paths {
		if res.Paths[pa.name].Lat20k, err = rn.run(pa, 20e3, p.latency20, true); err != nil {
			return nil, err
		}
	}
	logf("delivery at the target rate, %.0f/s, for %s", float64(targetRate), p.target)
	for _, pa := range paths {
		c0, err := counters()
		if err != nil {
			return nil, err
		}
		if res.Paths[pa.name].Target, err = rn.run(pa, targetRate, p.target, true); err != nil {
			return nil, err
		}
		c1, err := counters()
		if err != nil {
			return nil, err
		}
		res.Paths[pa.name].TargetDrops = c1.sub(c0)
	}
	if o.pprof != "" {
		if err := profile(o.pprof, o.pprofRate, rn, relayed, relays); err != nil {
			return nil, err
		}
	}
	logf("highest rate with ≥ %.0f %% delivered (steps of %s)", 100*minDelivered, p.step)
	for _, pa := range paths {
		c0, err := counters()
		if err != nil {
			return nil, err
		}
		if res.Paths[pa.name].Sweep, err = rn.sweep(pa, p.rates, p.step, p.bisect, p.pause); err != nil {
			return nil, err
		}
		time.Sleep(p.pause)
		c1, err := counters()
		if err != nil {
			return nil, err
		}
		res.Paths[pa.name].SweepDrops = c1.sub(c0)
	}
	for _, r := range relays {
		s, err := r.sample()
		if err != nil {
			return nil, err
		}
		res.MemEnd = append(res.MemEnd, s)
		res.Problems = append(res.Problems, r.problems()...)
		res.RelayNames = append(res.RelayNames, r.name)
	}
	return res, nil
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
		logs = append(logs, r.name+":\n"+tail(r.output(), 4096))
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
