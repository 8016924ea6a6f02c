//go:build linux

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordInsertsNewestFirstAndKeepsEarlier(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(file, []byte("# Benchmarks\n\nHow to run.\n\n## Results\n\n"+resultsMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := record(file, "### first run\n\n| a |\n"); err != nil {
		t.Fatal(err)
	}
	if err := record(file, "### second run\n\n| b |\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	i, j, k := strings.Index(got, resultsMarker), strings.Index(got, "### second run"), strings.Index(got, "### first run")
	if !strings.HasPrefix(got, "# Benchmarks\n\nHow to run.\n") || i < 0 || j < i || k < j {
		t.Errorf("want the text, the marker, then the second run, then the first; got:\n%s", got)
	}
	if strings.Count(got, resultsMarker) != 1 {
		t.Errorf("marker appears %d times", strings.Count(got, resultsMarker))
	}
}

func TestRecordCreatesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "new.md")
	if err := record(file, "### run\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if got := string(b); !strings.Contains(got, "## Results\n\n"+resultsMarker+"\n\n### run\n") {
		t.Errorf("got:\n%s", got)
	}
}

func TestDropCountersFindsEveryNonZeroDrop(t *testing.T) {
	var snap map[string]any
	err := json.Unmarshal([]byte(`{
		"stages": [{"name": "capture", "in": 10, "errors": 0}],
		"links": [{"name": "capture->decode", "packets": 9, "dropped_packets": 3, "dropped_batches": 1},
		          {"name": "decode->filter", "dropped_packets": 0}],
		"drops": {"duplicate": 2, "wrong_port": 0},
		"coalesce": {"capture_pauses": 0, "listener_pauses": 7},
		"kernel_drops": 1,
		"peers": [{"addr": "10.77.0.2:7124", "tx_packets": 5}]
	}`), &snap)
	if err != nil {
		t.Fatal(err)
	}
	got := dropCounters(snap)
	want := map[string]float64{
		"links[capture->decode].dropped_packets": 3,
		"links[capture->decode].dropped_batches": 1,
		"drops.duplicate":                        2,
		"kernel_drops":                           1,
		"coalesce.listener_pauses":               7,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestLatencies(t *testing.T) {
	var ns []int64
	for i := 100; i >= 1; i-- {
		ns = append(ns, int64(i)*1000)
	}
	l := latencies(ns)
	if !l.ok || l.N != 100 || l.P50 != 51*time.Microsecond || l.P99 != 100*time.Microsecond || l.Max != 100*time.Microsecond {
		t.Errorf("got %+v", l)
	}
	if ns[0] != 100000 {
		t.Error("latencies sorted its argument")
	}
	if latencies(nil).ok {
		t.Error("no samples reported as ok")
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RunNS == 0 || s.HWMKiB == 0 || s.RSSKiB == 0 || s.AnonKiB+s.FileKiB == 0 {
		t.Errorf("implausible sample of a running process: %+v", s)
	}
	if selfCPU() <= 0 {
		t.Error("selfCPU: no CPU time for a running process")
	}
}

func TestSoftnetAndHostCPU(t *testing.T) {
	if _, err := softnetDrops(); err != nil {
		t.Error(err)
	}
	h, err := readHostCPU()
	if err != nil {
		t.Fatal(err)
	}
	if h.Total == 0 || h.Busy > h.Total {
		t.Errorf("host cpu %+v", h)
	}
}

func TestRatio(t *testing.T) {
	for _, c := range []struct {
		a, b float64
		want string
	}{
		{3, 2, "1.50"},
		{0, 2, "0.00"},
		{2, 0, "—"},  // nothing to divide by
		{-1, 2, "—"}, // a figure that was not measured
		{math.NaN(), 1, "—"},
	} {
		if got := ratioCell(c.a, c.b); got != c.want {
			t.Errorf("ratioCell(%v, %v) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

// fakeStep is a step of n datagrams sent at rate, got of them received
// with latency lat each (the last 10 µs of it in the server's socket), and
// relays costing cpu per datagram each.
func fakeStep(rate float64, n, got int, lat time.Duration, cpu ...time.Duration) stepResult {
	s := stepResult{Offered: rate, Send: sendResult{Sent: n, Elapsed: time.Duration(float64(n) / rate * 1e9)}}
	s.Recv.Got = got
	for range got {
		s.Recv.Latencies = append(s.Recv.Latencies, int64(lat))
		s.Recv.Arrivals = append(s.Recv.Arrivals, int64(lat-10*time.Microsecond))
	}
	for _, c := range cpu {
		s.CPU = append(s.CPU, cpuDelta{RunNS: uint64(c) * uint64(n)})
	}
	return s
}

func fakeResults() *results {
	r := &results{
		Env:     envInfo{When: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), Kernel: "6.18", CPU: "Test CPU", NCPU: 2, GoVersion: "go1.26", Commit: "abc", Mode: "quick"},
		Ceiling: 50e3,
		Rates:   []planStep{{1e3, time.Second}, {20e3, time.Second}, {40e3, time.Second}, {50e3, time.Second}},
		Steps:   map[string][]stepResult{},
		Drops:   map[string][]counterSet{},
		Idle: map[string]idleResult{
			pathReference:  {CPU: []cpuDelta{{RunNS: 1e5}, {RunNS: 1e5}}, Wall: time.Second},
			pathSnowSignal: {CPU: []cpuDelta{{RunNS: 3e5}, {RunNS: 1e5}}, Wall: time.Second},
		},
		RelayNames: map[string][]string{pathReference: {"ref-a", "ref-b"}, pathSnowSignal: {"relay-a", "relay-b"}},
		MemWarm:    map[string][]procSample{pathSnowSignal: {{RSSKiB: 15 << 10}, {RSSKiB: 15 << 10}}},
		MemEnd:     map[string][]procSample{pathSnowSignal: {{HWMKiB: 17 << 10, RSSKiB: 16 << 10}, {HWMKiB: 18 << 10, RSSKiB: 16 << 10}}},
	}
	us := time.Microsecond
	for _, st := range r.Rates {
		n := int(st.Rate)
		r.Steps[pathDirect] = append(r.Steps[pathDirect], fakeStep(st.Rate, n, n, 40*us))
		r.Steps[pathReference] = append(r.Steps[pathReference], fakeStep(st.Rate, n, n, 100*us, 20*us, 20*us))
		got := n
		if st.Rate >= 40e3 {
			got = n * 3 / 4 // the lost quarter
		}
		r.Steps[pathSnowSignal] = append(r.Steps[pathSnowSignal], fakeStep(st.Rate, n, got, 200*us, 30*us, 30*us))
		for _, p := range r.paths() {
			r.Drops[p] = append(r.Drops[p], counterSet{})
		}
	}
	r.Drops[pathSnowSignal][2] = counterSet{"relay-b stats links[listener->rewrite].dropped_packets": 10000}
	return r
}

func TestSideBySideShowsEveryPathAndTheRatios(t *testing.T) {
	md := fakeResults().markdown()
	for _, want := range []string{
		"kernel 6.18, Test CPU, nproc 2",
		"The reference relay pair costs 40.0 µs at 1.0k/s, 40.0 µs at 20.0k/s, 40.0 µs at 40.0k/s",
		"| 1.0k/s | direct | 1.0k/s | 100.00 % | 40 µs | 40 µs | 40 µs | — |",
		"|  | reference | 1.0k/s | 100.00 % | 100 µs | 100 µs | 100 µs | 40.0 µs (ref-a 20.0 + ref-b 20.0; utime+stime 0 µs) |",
		// SnowSignal / reference: sent, delivered, p50, p99, max, CPU.
		"| | *SnowSignal / reference* | 1.00 | 1.00 | 2.00 | 2.00 | 2.00 | 1.50 |",
		"| 40.0k/s | direct |",
		"| | *SnowSignal / reference* | 1.00 | 0.75 | 2.00 | 2.00 | 2.00 | 1.50 |",
		"| ceiling, 50.0k/s | direct |",
		"| idle CPU, both relays | 0.20 ms/s | 0.40 ms/s | 2.00 |",
		"relay-b stats links[listener->rewrite].dropped_packets 10000",
		// Where the latency was: direct, then the reference, to the socket and in it.
		"| 1.0k/s | 30 µs / 30 µs / 30 µs | 10 µs / 10 µs / 10 µs | 90 µs / 90 µs / 90 µs | 10 µs / 10 µs / 10 µs |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestTargets(t *testing.T) {
	got := map[string]bool{}
	for _, tg := range fakeResults().targets() {
		got[tg.What] = tg.Met
		if strings.HasPrefix(tg.What, "p99 ≤ 10 ms") && tg.Measured != "worst p99 200 µs (the reference's: 100 µs)" {
			t.Errorf("p99 target measured %q, want the worst p99 beside the reference's", tg.Measured)
		}
	}
	want := map[string]bool{
		"delivered ≥ 99 % wherever the reference delivers ≥ 99 %, and up to 40k/s": false, // 75 % at 40k/s
		"p99 ≤ 10 ms through two relays at every rate up to the ceiling":           true,
		"CPU per datagram, both relays, ≤ 1.5 × the reference at 1.0k/s":           true, // 1.50 exactly
		"CPU per datagram, both relays, ≤ 1.3 × the reference at 20.0k/s":          false,
		"idle CPU ≈ 0 (≤ 2 ms/s), no busy polling":                                 true,
		"latency at 1.0k/s: p50 ≤ direct + 80 µs":                                  false, // +160 µs
		"latency at 1.0k/s: p99 ≤ direct + 200 µs":                                 true,
		"RSS ≤ 20 MiB per relay, flat under overload":                              true,
	}
	if len(got) != len(want) {
		t.Errorf("got %d targets, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if m, ok := got[k]; !ok || m != v {
			t.Errorf("%q: met %v (present %v), want %v", k, m, ok, v)
		}
	}
}

func TestSignedAndUnits(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{154 * time.Microsecond, "+154 µs"},
		{-75 * time.Microsecond, "−75 µs"},
		{0, "+0 µs"},
		{42 * time.Millisecond, "+42.0 ms"}, // from 10 ms on, in ms
	} {
		if got := signed(c.d); got != c.want {
			t.Errorf("signed(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestCandidateGetsItsOwnRowsAndRatios(t *testing.T) {
	r := fakeResults()
	r.Candidate = "shorter links"
	for range r.Rates {
		n := 20000
		r.Steps[r.Candidate] = append(r.Steps[r.Candidate], fakeStep(20e3, n, n, 50*time.Microsecond, 10*time.Microsecond, 10*time.Microsecond))
		r.Drops[r.Candidate] = append(r.Drops[r.Candidate], counterSet{})
	}
	r.Idle[r.Candidate] = idleResult{CPU: []cpuDelta{{RunNS: 1e5}}, Wall: time.Second}
	md := r.markdown()
	for _, want := range []string{
		"|  | shorter links | 20.0k/s | 100.00 % | 50 µs |",
		// against the reference's 100 µs and 40 µs per datagram.
		"| | *shorter links / reference* | ", "| 0.50 | 0.50 | 0.50 | 0.50 |",
		"| | reference | SnowSignal | shorter links | SnowSignal / reference | shorter links / reference |",
		"| idle CPU, both relays | 0.20 ms/s | 0.40 ms/s | 0.10 ms/s | 2.00 | 0.50 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestQueueParsers(t *testing.T) {
	packet := `sk               RefCnt Type Proto  Iface R Rmem   User   Inode
0000000000000000 3      3    0003   2     1 0      0      1001
0000000000000000 3      3    0000   2     0 832000 0      1002
`
	if n, err := packetRmem(packet); err != nil || n != 832000 {
		t.Errorf("packetRmem = %d, %v; want 832000", n, err)
	}
	udp := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0200000A:1BD4 0100000A:1BD4 01 00000000:000CB200 00:00000000 00000000     0        0 1003 2 0000000000000000 0
  101: 00000000:13D4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1004 2 0000000000000000 7
`
	if n, err := udpRxQueue(7124)(udp); err != nil || n != 0xCB200 {
		t.Errorf("udpRxQueue(7124) = %d, %v; want %d", n, err, 0xCB200)
	}
	if _, err := udpRxQueue(9999)(udp); err == nil {
		t.Error("no error for a port without a socket")
	}
	if n, err := udpDropsOf(udp, 5076); err != nil || n != 7 {
		t.Errorf("udpDropsOf(5076) = %d, %v; want 7", n, err)
	}
}

// TestSideBySideWithOwnProcessReference: the reference pair measured as
// processes of their own is a path of its own, with SnowSignal's ratios to
// it beside those to the pair of threads, and a column of the pair table;
// the targets stay judged by the pair of threads.
func TestSideBySideWithOwnProcessReference(t *testing.T) {
	r := fakeResults()
	us := time.Microsecond
	r.Idle[pathRefProcess] = idleResult{CPU: []cpuDelta{{RunNS: 5e4}, {RunNS: 5e4}}, Wall: time.Second}
	r.RelayNames[pathRefProcess] = []string{"ref-a", "ref-b"}
	for _, st := range r.Rates {
		n := int(st.Rate)
		r.Steps[pathRefProcess] = append(r.Steps[pathRefProcess], fakeStep(st.Rate, n, n, 100*us, 10*us, 10*us))
		r.Drops[pathRefProcess] = append(r.Drops[pathRefProcess], counterSet{})
	}
	md := r.markdown()
	for _, want := range []string{
		"|  | reference, own process | 1.0k/s | 100.00 % | 100 µs | 100 µs | 100 µs | 20.0 µs (ref-a 10.0 + ref-b 10.0; utime+stime 0 µs) |",
		"| | *SnowSignal / reference* | 1.00 | 1.00 | 2.00 | 2.00 | 2.00 | 1.50 |",
		"| | *SnowSignal / reference, own process* | 1.00 | 1.00 | 2.00 | 2.00 | 2.00 | 3.00 |",
		"| | reference | reference, own process | SnowSignal | SnowSignal / reference |",
		"| idle CPU, both relays | 0.20 ms/s | 0.10 ms/s | 0.40 ms/s | 2.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	for _, tg := range r.targets() {
		if strings.HasPrefix(tg.What, "CPU per datagram, both relays, ≤ 1.5") && !tg.Met {
			t.Errorf("target judged by the own-process reference: %+v", tg)
		}
	}
}

// TestSideBySideWithNetpollerReference: the reference that waits in the
// runtime's poller gets its rows, ratios and a column after the other
// references, and the CPU targets name its ratio without being judged by
// it.
func TestSideBySideWithNetpollerReference(t *testing.T) {
	r := fakeResults()
	us := time.Microsecond
	for _, name := range []string{pathRefProcess, pathRefNetpoll} {
		r.Idle[name] = idleResult{CPU: []cpuDelta{{RunNS: 5e4}, {RunNS: 5e4}}, Wall: time.Second}
		r.RelayNames[name] = []string{"ref-a", "ref-b"}
	}
	for _, st := range r.Rates {
		n := int(st.Rate)
		r.Steps[pathRefProcess] = append(r.Steps[pathRefProcess], fakeStep(st.Rate, n, n, 100*us, 10*us, 10*us))
		r.Steps[pathRefNetpoll] = append(r.Steps[pathRefNetpoll], fakeStep(st.Rate, n, n, 150*us, 40*us, 40*us))
		r.Drops[pathRefProcess] = append(r.Drops[pathRefProcess], counterSet{})
		r.Drops[pathRefNetpoll] = append(r.Drops[pathRefNetpoll], counterSet{})
	}
	if got, want := strings.Join(r.paths(), ","), "direct,reference,reference, own process,reference, netpoller,SnowSignal"; got != want {
		t.Errorf("paths %q, want %q", got, want)
	}
	md := r.markdown()
	for _, want := range []string{
		"|  | reference, netpoller | 1.0k/s | 100.00 % | 150 µs | 150 µs | 150 µs | 80.0 µs (ref-a 40.0 + ref-b 40.0; utime+stime 0 µs) |",
		"| | *SnowSignal / reference, netpoller* | 1.00 | 1.00 | 1.33 | 1.33 | 1.33 | 0.75 |",
		"| | reference | reference, own process | reference, netpoller | SnowSignal | SnowSignal / reference |",
		"1.50 × (60.0 µs vs 40.0 µs); 0.75 × the reference, netpoller pair (80.0 µs); the reference's own code as relay processes: 0.50 × (own process), 2.00 × (netpoller)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	for _, tg := range r.targets() {
		if strings.HasPrefix(tg.What, "CPU per datagram, both relays, ≤ 1.5") && !tg.Met {
			t.Errorf("target judged by another reference than the pair of threads: %+v", tg)
		}
	}
}

// TestPoolSteps: rounds add up to one step whose figures are those of the
// whole (CPU per datagram over all datagrams, every latency, the host's
// shares weighted by time), and the results say the step was pooled.
func TestPoolSteps(t *testing.T) {
	us := time.Microsecond
	a := fakeStep(1e3, 1000, 1000, 100*us, 20*us, 20*us)
	a.Wall, a.Foreign, a.HostBusy = time.Second, 0.3, 0.5
	b := fakeStep(1e3, 1000, 990, 300*us, 40*us, 60*us)
	b.Wall, b.Foreign, b.HostBusy = 3*time.Second, 0.1, 0.1
	p := poolSteps([]stepResult{a, b})
	if p.Rounds != 2 || p.Send.Sent != 2000 || p.Recv.Got != 1990 || len(p.Recv.Latencies) != 1990 {
		t.Fatalf("pooled: %d rounds, %d sent, %d got, %d latencies", p.Rounds, p.Send.Sent, p.Recv.Got, len(p.Recv.Latencies))
	}
	if c, ok := p.CPUPerDatagram(); !ok || c*1e6 < 69.99 || c*1e6 > 70.01 {
		t.Errorf("CPU per datagram %.2f µs, want 70 (40 + 100 over two rounds)", c*1e6)
	}
	if p.Wall != 4*time.Second || p.Foreign < 0.149 || p.Foreign > 0.151 || p.HostBusy < 0.199 || p.HostBusy > 0.201 {
		t.Errorf("wall %s, foreign %.3f, busy %.3f; want 4s, 0.150, 0.200", p.Wall, p.Foreign, p.HostBusy)
	}
	if got := latencies(p.Recv.Latencies).P50; got != 100*us && got != 300*us {
		t.Errorf("p50 %s, want one of the rounds' latencies", got)
	}
	r := fakeResults()
	r.Steps[pathSnowSignal][0] = poolSteps([]stepResult{r.Steps[pathSnowSignal][0], r.Steps[pathSnowSignal][0], r.Steps[pathSnowSignal][0]})
	if md := r.markdown(); !strings.Contains(md, "The 1.0k/s step of every path is pooled from 3 rounds of 333ms") {
		t.Errorf("markdown does not say the light step was pooled:\n%s", md[:min(len(md), 1500)])
	}
}
