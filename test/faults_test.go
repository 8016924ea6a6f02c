package test

// Fault tests (issue 4, "Faults"): the real binary in namespaces, faced with
// what an operator meets: its interface removed and re-created, set down and
// up, missing at start; a peer relay killed and restarted; ten times more
// broadcasts than it can forward; SIGTERM.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout/statsserver"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/test/harness"
)

// Limits the issue sets.
const (
	recoverWithin = 2 * time.Second // relaying again after the interface is back
	stopWithin    = time.Second     // SIGTERM to exit
	probeEvery    = 50 * time.Millisecond
)

// faultPath is one direction across the swarm: a broadcaster on one
// segment and a socket on the relayed port on the other.
type faultPath struct {
	name string
	from *net.UDPConn
	to   *net.UDPConn
	dst  netip.AddrPort
}

// faultPaths returns the client-to-server path (relay-a captures, relay-b
// injects) and the server-to-client one (relay-b captures, relay-a injects).
func faultPaths(t *testing.T, s *swarm) []faultPath {
	t.Helper()
	dst := netip.AddrPortFrom(s.client.Broadcast, pvaPort)
	bind := fmt.Sprintf("0.0.0.0:%d", pvaPort)
	return []faultPath{
		{"client->server", broadcaster(t, s.client), listen(t, s.server, bind), dst},
		{"server->client", broadcaster(t, s.server), listen(t, s.client, bind), dst},
	}
}

// crossWithin broadcasts a fresh probe along p every probeEvery until one
// arrives, for at most limit, and returns how long the first arrival took.
func crossWithin(t *testing.T, p faultPath, limit time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	sent := map[string]bool{}
	buf := make([]byte, 2048)
	for n := 0; time.Since(start) < limit && n < 10_000; n++ {
		probe := payload(t, 16)
		send(t, p.from, probe, p.dst)
		sent[string(probe)] = true
		next := time.Now().Add(probeEvery)
		for {
			p.to.SetReadDeadline(next)
			k, _, err := p.to.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return 0, err
			}
			if sent[string(buf[:k])] {
				return time.Since(start), nil
			}
		}
	}
	return 0, fmt.Errorf("%s: none of %d probes arrived within %s", p.name, len(sent), limit)
}

// crossOnce broadcasts one probe along p and waits up to limit for it.
func crossOnce(t *testing.T, p faultPath, limit time.Duration) error {
	t.Helper()
	probe := payload(t, 16)
	send(t, p.from, probe, p.dst)
	buf := make([]byte, 2048)
	for end := time.Now().Add(limit); ; {
		p.to.SetReadDeadline(end)
		n, _, err := p.to.ReadFromUDPAddrPort(buf)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if bytes.Equal(buf[:n], probe) {
			return nil
		}
	}
}

// mustCross fails the test unless every path relays within limit of the
// call, and logs when each did.
func mustCross(t *testing.T, paths []faultPath, limit time.Duration, when string) {
	t.Helper()
	start := time.Now()
	for _, p := range paths {
		if _, err := crossWithin(t, p, time.Until(start.Add(limit))); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		t.Logf("%s: %s relays after %s", when, p.name, time.Since(start).Round(time.Millisecond))
	}
}

// snapshot asks a running relay for its counters over its stats socket.
func snapshot(t *testing.T, r *labrelay.Relay) readout.Snapshot {
	t.Helper()
	if r.StatsSocket == "" {
		t.Fatalf("%s: the relay has no stats socket", r.Host.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	raw, err := statsserver.Fetch(ctx, r.StatsSocket, "snapshot")
	if err != nil {
		t.Fatalf("%s: %v", r.Host.Name, err)
	}
	var s readout.Snapshot
	if err := json.Unmarshal(raw, &s); err != nil || s.Format == 0 {
		t.Fatalf("%s: snapshot %.200s: %v", r.Host.Name, raw, err)
	}
	return s
}

// sumLinkDrops sums the packets the links of every snapshot dropped.
func sumLinkDrops(snaps ...readout.Snapshot) uint64 {
	var n uint64
	for _, s := range snaps {
		for _, l := range s.Links {
			n += l.DroppedPackets
		}
	}
	return n
}

// logSnapshot logs what r counted, for a failing test.
func logSnapshot(t *testing.T, r *labrelay.Relay) {
	t.Helper()
	s := snapshot(t, r)
	var b strings.Builder
	for _, st := range s.Stages {
		fmt.Fprintf(&b, "\n  stage %-10s in %d out %d errors %d restarts %d %s", st.Name, st.In, st.Out, st.Errors, st.Restarts, st.LastError)
	}
	for _, l := range s.Links {
		fmt.Fprintf(&b, "\n  link %-18s len %d/%d packets %d dropped %d", l.Name, l.Len, l.Cap, l.Packets, l.DroppedPackets)
	}
	for k, v := range s.Drops {
		if v != 0 {
			fmt.Fprintf(&b, "\n  drop %s %d", k, v)
		}
	}
	t.Logf("%s: kernel drops %d (capture) %d (mesh), capture up %v%s", r.Host.Name, s.KernelDrops, s.MeshKernelDrops, s.CaptureUp, b.String())
}

// stageOf returns a stage's counters from a snapshot.
func stageOf(t *testing.T, s readout.Snapshot, name string) pipeline.StageStats {
	t.Helper()
	st, ok := s.Stage(name)
	if !ok {
		t.Fatalf("no stage %q in the snapshot", name)
	}
	return st
}

// msgContains matches a JSON log line whose message contains sub and whose
// string fields match kv.
func msgContains(sub string, kv ...string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		m, _ := e["message"].(string)
		if !strings.Contains(m, sub) {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s, _ := e[kv[i]].(string); s != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// mustLog waits for a matching log line of r.
func mustLog(t *testing.T, r *labrelay.Relay, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	e, err := r.WaitLog(match, recoverWithin)
	if err != nil {
		t.Fatalf("%s: no log line %s: %v", r.Host.Name, what, err)
	}
	return e
}

// mustRun fails the test if r's process has exited.
func mustRun(t *testing.T, r *labrelay.Relay) {
	t.Helper()
	select {
	case <-r.Done():
		t.Fatalf("%s exited: %v", r.Host.Name, r.ExitErr())
	default:
	}
}

// TestFaultInterfaceRemovedAndRecreated: relay-b's eth0 (a veth) is deleted
// and made again with the same name and address, as when a container's
// network is detached and re-attached. The capture stage fails, is restarted
// (counted, logged) and waits for the interface; the inject stage fails on
// its first frame to the dead socket and is restarted. Within 2 s of the
// interface's return relay-b relays both ways again, without a restart of
// the process.
func TestFaultInterfaceRemovedAndRecreated(t *testing.T) {
	s := startSwarm(t)
	paths := faultPaths(t, s)
	mustCross(t, paths, deliveryTimeout, "before")

	rl, err := s.relayB.RemoveLink()
	if err != nil {
		t.Fatal(err)
	}
	mustLog(t, s.b, "capture: interface down", msgContains("interface down", "stage", "capture"))
	failed := mustLog(t, s.b, "capture: stage failed", msgContains("stage failed", "stage", "capture"))
	t.Logf("capture failed with: %v", failed["error"])
	mustLog(t, s.b, "capture: waiting for the interface", msgContains("waiting for it", "stage", "capture"))
	for _, p := range paths { // lost while eth0 is gone
		send(t, p.from, payload(t, 16), p.dst)
	}
	mustRun(t, s.b)

	if err := rl.Restore(); err != nil {
		t.Fatal(err)
	}
	mustCross(t, paths, recoverWithin, "after the interface came back")
	mustRun(t, s.b)

	snap := snapshot(t, s.b)
	for _, name := range []string{"capture", "inject"} {
		if st := stageOf(t, snap, name); st.Restarts < 1 {
			t.Errorf("relay-b: stage %s restarted %d times, want at least 1", name, st.Restarts)
		}
	}
	mustLog(t, s.b, "inject: stage failed", msgContains("stage failed", "stage", "inject"))
	if !snap.CaptureUp {
		t.Error("relay-b: snapshot says the capture is not up")
	}
}

// TestFaultInterfaceDownUp: relay-b's eth0 goes down and up (ip link set
// down/up). The relay keeps running, says so, keeps its sockets (no stage
// restarts) and relays both ways within 2 s of the link coming back.
func TestFaultInterfaceDownUp(t *testing.T) {
	s := startSwarm(t)
	paths := faultPaths(t, s)
	mustCross(t, paths, deliveryTimeout, "before")

	if err := s.relayB.SetLink(false); err != nil {
		t.Fatal(err)
	}
	mustLog(t, s.b, "capture: interface down", msgContains("interface down", "stage", "capture"))
	for _, p := range paths { // lost while eth0 is down; relay-b tries to inject one
		send(t, p.from, payload(t, 16), p.dst)
	}
	time.Sleep(3 * probeEvery)
	mustRun(t, s.b)

	if err := s.relayB.SetLink(true); err != nil {
		t.Fatal(err)
	}
	// The very first broadcast after the link is back crosses: no frame is
	// lost to an error the link's going down left pending on a socket.
	for _, p := range paths {
		if err := crossOnce(t, p, deliveryTimeout); err != nil {
			t.Errorf("first broadcast after link up: %v", err)
		}
	}
	mustCross(t, paths, recoverWithin, "after link up")
	mustLog(t, s.b, "capture: interface up again", msgContains("interface up again", "stage", "capture"))
	snap := snapshot(t, s.b)
	for _, name := range []string{"capture", "inject", "listener", "fanout"} {
		if st := stageOf(t, snap, name); st.Restarts != 0 {
			t.Errorf("relay-b: stage %s restarted %d times over a link down/up, want 0", name, st.Restarts)
		}
	}
	if !snap.CaptureUp {
		t.Error("relay-b: snapshot says the capture is not up")
	}
}

// TestFaultWaitForInterface: with --wait-for-interface a relay started
// before its interface exists says it waits, keeps running, and relays once
// the interface appears. Without the flag it exits at once with an error
// naming --target-interface and listing the interfaces there are.
func TestFaultWaitForInterface(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	s := &swarm{lab: l, client: l.Host("client"), server: l.Host("server"), relayA: l.Host("relay-a"), relayB: l.Host("relay-b")}
	s.a = harness.StartT(t, bin, s.relayA, "--other-relays", s.relayB.IP.String())
	paths := faultPaths(t, s)

	rl, err := s.relayB.RemoveLink()
	if err != nil {
		t.Fatal(err)
	}
	b, err := labrelay.Options{NoReadyWait: true}.Start(context.Background(), bin, s.relayB,
		"--other-relays", s.relayA.IP.String(), "--wait-for-interface")
	if err != nil {
		t.Fatal(err)
	}
	harness.StopOnCleanup(t, b)
	mustLog(t, b, "waiting for the interface", msgContains("does not exist yet; waiting for it"))
	mustLog(t, b, "capture: waiting", msgContains("waiting for it", "stage", "capture"))
	mustLog(t, b, "inject: waiting", msgContains("does not exist", "stage", "inject"))
	time.Sleep(300 * time.Millisecond)
	mustRun(t, b)
	if _, err := b.WaitLog(labrelay.Level("error", "fatal"), 0); err == nil {
		t.Errorf("relay-b logged an error while waiting:\n%s", b.Output())
	}

	if err := rl.Restore(); err != nil {
		t.Fatal(err)
	}
	mustLog(t, b, "capturing", labrelay.Msg("capturing", "stage", "capture"))
	mustLog(t, b, "injecting", labrelay.Msg("injecting", "stage", "inject"))
	mustCross(t, paths, recoverWithin, "after the interface appeared")

	t.Run("without the flag", func(t *testing.T) {
		start := time.Now()
		_, err := labrelay.Start(context.Background(), bin, s.relayB, "-t", "eth1", "--mesh-port", "7125")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("start with a missing interface: %v, want a non-zero exit", err)
		}
		for _, want := range []string{"--target-interface", `"eth1"`, "have: eth0, lo"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %q:\n%v", want, err)
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s to fail", d)
		}
	})
}

// procCPU returns the CPU time (user+system) a process has used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// TestFaultPeerKilledAndRestarted: relay-b is killed (SIGKILL) while the
// client keeps searching. relay-a keeps running, learns from the ICMP port
// unreachable that relay-b's host returns which peer refuses its datagrams,
// counts that per peer and logs it, without spinning on the socket errors;
// once relay-b is back, broadcasts cross again.
func TestFaultPeerKilledAndRestarted(t *testing.T) {
	s := startSwarm(t)
	paths := faultPaths(t, s)
	mustCross(t, paths, deliveryTimeout, "before")

	if err := s.b.Kill(); err == nil {
		t.Fatal("relay-b exited cleanly on SIGKILL?")
	}
	cpu0, start := procCPU(t, s.a.Pid()), time.Now()
	for i := 0; i < 20; i++ {
		send(t, paths[0].from, payload(t, 16), paths[0].dst)
		time.Sleep(probeEvery)
	}
	peerB := netip.AddrPortFrom(s.relayB.IP, meshPort).String()
	e := mustLog(t, s.a, "peer refuses", msgContains("peer refuses mesh datagrams", "peer", peerB))
	if e["error"] != "connection refused" {
		t.Errorf("logged error %v, want connection refused", e["error"])
	}
	if cpu, wall := procCPU(t, s.a.Pid())-cpu0, time.Since(start); cpu > wall/4 {
		t.Errorf("relay-a used %s of CPU in %s with a dead peer: spinning on socket errors?", cpu, wall)
	}
	mustRun(t, s.a)
	snap := snapshot(t, s.a)
	var txErrors uint64
	for _, p := range snap.Peers {
		switch p.Addr {
		case peerB:
			txErrors = p.TxErrors
		default:
			t.Errorf("relay-a has peer %s besides %s", p.Addr, peerB)
		}
	}
	fan := stageOf(t, snap, "fanout")
	if txErrors == 0 || fan.Errors < txErrors || snap.Drops["send_error"] < txErrors {
		t.Errorf("relay-a counted %d send errors for %s, fanout errors %d, send_error drops %d; want > 0, and the stage and reason counts at least as many",
			txErrors, peerB, fan.Errors, snap.Drops["send_error"])
	}
	for _, name := range []string{"listener", "fanout"} {
		if st := stageOf(t, snap, name); st.Restarts != 0 {
			t.Errorf("relay-a: stage %s restarted %d times", name, st.Restarts)
		}
	}

	s.b = harness.StartT(t, harness.Binary(t), s.relayB, "--other-relays", s.relayA.IP.String())
	mustCross(t, paths, recoverWithin, "after relay-b restarted")
}

// procStatus returns a /proc/<pid>/status field in bytes (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", field, line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// blast broadcasts distinct datagrams of size bytes from c to dst in
// sendmmsg(2) bursts until stop is closed or max are sent, and returns how
// many the kernel took.
func blast(c *net.UDPConn, dst netip.AddrPort, size int, max uint64, stop <-chan struct{}) (uint64, error) {
	const burst = 64
	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, burst)
	to := net.UDPAddrFromAddrPort(dst)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{make([]byte, size)}, Addr: to}
	}
	var n uint64
	for n < max {
		select {
		case <-stop:
			return n, nil
		default:
		}
		for i := range msgs {
			binary.BigEndian.PutUint64(msgs[i].Buffers[0], n+uint64(i)) // distinct: dedup must not help
		}
		k, err := pc.WriteBatch(msgs, 0)
		if err != nil && !errors.Is(err, syscall.ENOBUFS) {
			return n, err
		}
		n += uint64(k)
	}
	return n, nil
}

// TestFaultOverload: the client broadcasts as fast as sendmmsg(2) goes for
// 10 s, far more than the relays forward. They stay up, their memory stays
// bounded and stops growing, relay-a counts the drops (in the kernel, at
// its capture link or as stale), and a broadcast sent right after the storm
// crosses within a second (the first one sent may be shed as stale). The storm goes to port 5064 and the probes to 5076 (both
// relayed), so the server's socket does not drown the probe.
func TestFaultOverload(t *testing.T) {
	const (
		storm     = 10 * time.Second
		maxSent   = 50_000_000 // a bound, far above what 10 s allow here
		maxRSS    = 64 << 20
		maxGrow   = 4 << 20 // between 5 s and 10 s: GC noise, not growth
		sinks     = 12      // peers of relay-a besides relay-b
		stormSize = 1200    // bytes of UDP payload
	)
	// relay-a sends every frame to relay-b and to twelve more peers
	// (sockets on the mesh port of plain hosts on segment b), as in a mesh
	// of fourteen relays: forwarding a frame costs thirteen datagrams
	// (without the mesh offload, see below). That, not a faster sender, is
	// how one sender on a two-core machine offers about ten times what the
	// relay can forward.
	spec := netlab.TwoSegmentSwarm()
	peersA := []string{"10.77.0.2"}
	for i := 1; i <= sinks; i++ {
		a := netip.AddrFrom4([4]byte{10, 77, 0, byte(30 + i)})
		spec.Segments[1].Hosts = append(spec.Segments[1].Hosts, netlab.HostSpec{Name: fmt.Sprintf("sink-%d", i), Addr: a})
		peersA = append(peersA, a.String())
	}
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, spec)
	s := &swarm{lab: l, client: l.Host("client"), server: l.Host("server"), relayA: l.Host("relay-a"), relayB: l.Host("relay-b")}
	for i := 1; i <= sinks; i++ {
		listen(t, l.Host(fmt.Sprintf("sink-%d", i)), fmt.Sprintf("0.0.0.0:%d", meshPort))
	}
	// With the mesh offload relay-a would send each peer a burst's run of
	// datagrams as one message (docs/ARCHITECTURE.md): it forwarded 55–83 %
	// of this storm, not overloaded, so relay-a runs without it here.
	s.a = harness.StartT(t, bin, s.relayA, "-b", "5076,5064", "--no-mesh-offload", "--other-relays", strings.Join(peersA, ","))
	s.b = harness.StartT(t, bin, s.relayB, "-b", "5076,5064", "--other-relays", s.relayA.IP.String())
	paths := faultPaths(t, s)[:1]
	mustCross(t, paths, deliveryTimeout, "before")

	loader := broadcaster(t, s.client)
	stop := make(chan struct{})
	type result struct {
		n   uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := blast(loader, netip.AddrPortFrom(s.client.Broadcast, 5064), stormSize, maxSent, stop)
		done <- result{n, err}
	}()
	start := time.Now()
	rss := map[string][2]uint64{}
	for i, at := range []time.Duration{storm / 2, storm} {
		time.Sleep(time.Until(start.Add(at)))
		for _, r := range []*labrelay.Relay{s.a, s.b} {
			mustRun(t, r)
			v := rss[r.Host.Name]
			v[i] = procStatus(t, r.Pid(), "VmRSS")
			rss[r.Host.Name] = v
		}
	}
	close(stop)
	res := <-done
	if res.err != nil {
		t.Fatalf("load: %v", res.err)
	}
	sent, took := res.n, time.Since(start)

	// Right after the storm, a broadcast crosses within a second. The
	// relays shed what waited in them longer than --max-delay, and the
	// first probe may still queue behind that much of the storm's last
	// frames: so one more (each its own, for dedup) every 20 ms until one
	// crosses. A relay whose kernel drops fresh frames behind a stale
	// backlog fails this as before.
	sentAt := time.Now()
	probes := map[string]bool{}
	buf := make([]byte, 2048)
	for crossed := false; !crossed; {
		if time.Since(sentAt) > time.Second {
			logSnapshot(t, s.a)
			logSnapshot(t, s.b)
			t.Fatalf("none of %d broadcasts sent after the storm crossed within 1s", len(probes))
		}
		probe := payload(t, 16)
		probes[string(probe)] = true
		send(t, paths[0].from, probe, paths[0].dst)
		for {
			paths[0].to.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, _, err := paths[0].to.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // time for the next probe
			}
			if probes[string(buf[:n])] {
				t.Logf("a broadcast crossed %s after the storm, the %d. sent", time.Since(sentAt).Round(time.Microsecond), len(probes))
				crossed = true
				break
			}
		}
	}

	for _, r := range []*labrelay.Relay{s.a, s.b} {
		mustRun(t, r)
		v, hwm := rss[r.Host.Name], procStatus(t, r.Pid(), "VmHWM")
		t.Logf("%s: VmRSS %d KiB at %s, %d KiB at %s; VmHWM %d KiB", r.Host.Name, v[0]>>10, storm/2, v[1]>>10, storm, hwm>>10)
		if hwm > maxRSS {
			t.Errorf("%s: peak RSS %d MiB, want under %d MiB", r.Host.Name, hwm>>20, maxRSS>>20)
		}
		if v[1] > v[0]+maxGrow {
			t.Errorf("%s: RSS grew from %d KiB to %d KiB in the second half of the storm", r.Host.Name, v[0]>>10, v[1]>>10)
		}
	}

	snap := snapshot(t, s.a)
	var linkDrops uint64
	for _, l := range snap.Links {
		if l.Name == "capture->decode" {
			linkDrops = l.DroppedPackets
		}
	}
	fwd := stageOf(t, snap, "fanout").Out
	t.Logf("offered %d broadcasts in %s (%.0f/s); relay-a forwarded %d (%.0f/s), dropped %d at capture->decode, %d in the kernel and %d as stale",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), fwd, float64(fwd)/took.Seconds(), linkDrops, snap.KernelDrops, snap.Drops["stale"])
	if fwd*3 > sent { // about 8x on a two-core machine; machines differ
		t.Errorf("relay-a forwarded %d of %d: the storm did not overload it; the test proves nothing", fwd, sent)
	}
	// The capture link yields to its consumers before it drops, so with
	// one P the backlog waits in the capture socket and the kernel drops
	// the excess; with more Ps the link may drop too; what waited longer
	// than --max-delay is shed as stale. Either way the drops are counted,
	// and what was counted must add up.
	if linkDrops+snap.KernelDrops+snap.Drops["stale"] == 0 {
		t.Error("relay-a counted no drops at capture->decode, in the kernel or as stale")
	}
	if in := stageOf(t, snap, "capture").In; in+snap.KernelDrops > sent+100 {
		t.Errorf("relay-a captured %d and the kernel dropped %d of %d sent", in, snap.KernelDrops, sent)
	}
}

// TestFaultSIGTERM: a relay carrying traffic exits with status 0 within a
// second of SIGTERM and removes its stats socket; so does one still waiting
// for its interface.
func TestFaultSIGTERM(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	s := &swarm{lab: l, client: l.Host("client"), server: l.Host("server"), relayA: l.Host("relay-a"), relayB: l.Host("relay-b")}
	sockA := filepath.Join(t.TempDir(), "a.sock")
	s.a = harness.StartT(t, bin, s.relayA, "--other-relays", s.relayB.IP.String(), "--stats-socket", sockA)
	s.b = harness.StartT(t, bin, s.relayB, "--other-relays", s.relayA.IP.String())
	paths := faultPaths(t, s)
	mustCross(t, paths, deliveryTimeout, "before")
	if _, err := os.Stat(sockA); err != nil {
		t.Fatalf("stats socket: %v", err)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // traffic while it stops: both directions
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			p := paths[i%2]
			p.from.WriteToUDPAddrPort([]byte("while stopping"), p.dst)
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(100 * time.Millisecond)

	check := func(t *testing.T, r *labrelay.Relay, sock string) {
		t.Helper()
		start := time.Now()
		if err := r.Stop(); err != nil {
			t.Errorf("%s: exit after SIGTERM: %v", r.Host.Name, err)
		}
		d := time.Since(start)
		if d > stopWithin {
			t.Errorf("%s: took %s to exit after SIGTERM, want under %s", r.Host.Name, d, stopWithin)
		}
		t.Logf("%s exited %s after SIGTERM", r.Host.Name, d.Round(time.Millisecond))
		if _, err := r.WaitLog(labrelay.Msg("relay stopped"), 0); err != nil {
			t.Errorf("%s: no \"relay stopped\" line", r.Host.Name)
		}
		if sock != "" {
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: stats socket %s after exit: %v, want it removed", r.Host.Name, sock, err)
			}
		}
	}
	check(t, s.a, sockA)

	// Relays whose interface is gone: one that lost it while running, and
	// one started with --wait-for-interface, whose capture and inject
	// stages both wait.
	t.Run("waiting for its interface", func(t *testing.T) {
		rl, err := s.relayB.RemoveLink()
		if err != nil {
			t.Fatal(err)
		}
		defer rl.Restore()
		w, err := labrelay.Options{NoReadyWait: true}.Start(context.Background(), bin, s.relayB,
			"--other-relays", s.relayA.IP.String(), "--wait-for-interface", "--mesh-port", "7125")
		if err != nil {
			t.Fatal(err)
		}
		harness.StopOnCleanup(t, w)
		mustLog(t, s.b, "capture: waiting", msgContains("waiting for it", "stage", "capture"))
		mustLog(t, w, "capture: waiting", msgContains("waiting for it", "stage", "capture"))
		mustLog(t, w, "inject: waiting", msgContains("does not exist", "stage", "inject"))
		check(t, s.b, "")
		check(t, w, "")
	})
}
