package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout/statsserver"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

// fakeRelay serves snap() on a stats socket, as a relay does, until the
// test ends, and returns the socket's path.
func fakeRelay(t *testing.T, snap func() readout.Snapshot) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.sock")
	ln, err := statsserver.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	st := statsserver.New(ln, func(verb string) (any, error) {
		if verb != "snapshot" {
			return nil, errors.New("unknown request " + verb)
		}
		return snap(), nil
	}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; ln.Close() })
	return path
}

// snapshot is a relay that relayed a pvget search to one peer.
func snapshot(at time.Time) readout.Snapshot {
	heard := at.Add(-3 * time.Second)
	return readout.Snapshot{
		Format: readout.SnapshotFormat, Version: "1.2.3", Commit: "abc", Time: at, StartTime: at.Add(-time.Hour - 2*time.Minute),
		UptimeSeconds: 3720, CaptureUp: true,
		Config: readout.ConfigSummary{Interface: "eth0", BroadcastPorts: []uint16{5076, 5064}, MeshPort: 7124, CoalesceSeconds: 150e-6},
		Stages: []pipeline.StageStats{{Name: "capture", State: "running", In: 10, Out: 10},
			{Name: "fanout", State: "running", In: 10, Out: 10}},
		Links: []pipeline.LinkStats{{Name: "capture->decode", Len: 1, Cap: 16, Packets: 10}},
		Drops: map[string]uint64{"wrong_port": 4, "duplicate": 0, "link_local_source": 2}, MeshKernelDrops: 6,
		Peers:    []readout.PeerStats{{Addr: "10.77.0.2:7124", Sources: "static", TxPackets: 10, TxBytes: 900, LastHeard: &heard}},
		Coalesce: readout.CoalesceStats{CapturePauses: 12, ListenerPauses: 3},
		EPICS: insight.Stats{WindowSeconds: 60, Outbound: insight.Counters{PVASearches: 2, CASearches: 1, Names: 4},
			TopNames:   []insight.Top{{Name: "EP:TEMP", Count: 3}, {Name: "EP:COUNT", Count: 1}},
			TopClients: []insight.Top{{Name: "10.77.0.11", Count: 4}}},
	}
}

func TestStatsTable(t *testing.T) {
	now := time.Now()
	path := fakeRelay(t, func() readout.Snapshot { return snapshot(now) })
	code, out, errOut := runCLI("stats", "--socket", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Column widths depend on the content: compare words, one line each.
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{
		"snowsignal 1.2.3 (abc) up 1h02m iface eth0 ports 5076,5064 mesh :7124 capture up",
		"STAGE STATE IN OUT ERRORS RESTARTS",
		"capture running 10 10 0 0",
		"capture->decode 1/16 10 0",
		"wrong_port 4",
		"link_local_source 2",
		"link_local_source: client uses a link-local source; give it a global or ULA address",
		"kernel (mesh socket buffer full) 6",
		"10.77.0.2:7124 static 10 900 0 0 0 3s ago",
		"NEIGHBOURS none",
		"COALESCE 150µs window, pauses capture 12 listener 3",
		"outbound 2 1 4 0 0",
		"TOP PV NAMES (last 1m00s) COUNT",
		"EP:TEMP 3",
		"EP:COUNT 1",
		"10.77.0.11 4",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing line %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "duplicate") || strings.Contains(out, "capture queue full") {
		t.Errorf("zero drop reason listed:\n%s", out)
	}

	// Coalescing off (--coalesce 0): no window, no pauses.
	off := snapshot(now)
	off.Config.CoalesceSeconds, off.Coalesce = 0, readout.CoalesceStats{}
	var buf bytes.Buffer
	if err := renderStats(&buf, &off, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(buf.String()), " "); !strings.Contains(got, "NEIGHBOURS none COALESCE off SHEDDING off EPICS") {
		t.Errorf("coalescing and shedding off not shown as off:\n%s", buf.String())
	}

	// Both shedding rules set: each with what it shed.
	shed := snapshot(now)
	shed.Config.MaxDelaySeconds, shed.Config.QueueTargetSeconds, shed.Config.QueueIntervalSeconds = 0.25, 0.002, 0.02
	shed.Drops["stale"], shed.Drops["overload"] = 3, 7
	buf.Reset()
	if err := renderStats(&buf, &shed, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(buf.String()), " "); !strings.Contains(got, "SHEDDING stale past 250ms 3, overload (a queue over 2ms for 20ms) 7") {
		t.Errorf("shedding rules not shown with their counts:\n%s", buf.String())
	}
}

func TestStatsJSON(t *testing.T) {
	path := fakeRelay(t, func() readout.Snapshot { return snapshot(time.Now()) })
	code, out, errOut := runCLI("stats", "--socket", path, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s readout.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if s.Format != readout.SnapshotFormat || s.Drops["wrong_port"] != 4 || s.EPICS.TopNames[0].Name != "EP:TEMP" {
		t.Errorf("decoded %+v", s)
	}
}

func TestStatsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, cmd := range []string{"stats", "health"} {
		code, _, errOut := runCLI(cmd, "--socket", missing)
		want := "snowsignal: error: is snowsignal running? socket " + missing + ": no such file or directory\n"
		if code != 1 || errOut != want {
			t.Errorf("%s without relay: exit %d, %q; want 1, %q", cmd, code, errOut, want)
		}
	}
	future := fakeRelay(t, func() readout.Snapshot { s := snapshot(time.Now()); s.Format = 99; return s })
	code, _, errOut := runCLI("stats", "--socket", future)
	if code != 1 || !strings.Contains(errOut, "version mismatch: the relay at "+future+" sends snapshot format 99, this snowsignal") {
		t.Errorf("future format: exit %d, %q", code, errOut)
	}
}

func TestHealthCmd(t *testing.T) {
	healthy := fakeRelay(t, func() readout.Snapshot { return snapshot(time.Now()) })
	code, out, errOut := runCLI("health", "--socket", healthy)
	if code != 0 || out != "ok: 2 stages running, capturing on eth0, 1 peers\n" {
		t.Errorf("healthy: exit %d, %q %q", code, out, errOut)
	}
	sick := fakeRelay(t, func() readout.Snapshot {
		s := snapshot(time.Now())
		s.CaptureUp = false
		s.Stages[1].State, s.Stages[1].LastError = "backoff", "sendmmsg: boom"
		return s
	})
	code, out, errOut = runCLI("health", "--socket", sick)
	want := "snowsignal: error: unhealthy: capture socket on eth0 is not up (interface down, gone, or not opened yet); stage fanout is backoff (last error: sendmmsg: boom)\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("unhealthy: exit %d, %q, %q; want 1, %q", code, out, errOut, want)
	}
}

func TestStatsWatch(t *testing.T) {
	start := time.Now()
	n := 0
	path := fakeRelay(t, func() readout.Snapshot {
		// Every query one second later, with 5 more packets captured, 3
		// more dropped by the kernel on the mesh socket and 4 more pauses
		// of the capture reader.
		s := snapshot(start.Add(time.Duration(n) * time.Second))
		s.Stages[0].In += uint64(5 * n)
		s.MeshKernelDrops += uint64(3 * n)
		s.Coalesce.CapturePauses += uint64(4 * n)
		n++
		return s
	})
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	c := &StatsCmd{Socket: path, Watch: true, Interval: 100 * time.Millisecond}
	done := make(chan error)
	go func() { done <- c.watch(ctx, &stdio{Out: &out}) }()
	time.Sleep(250 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(out.String(), clearScreen)[1:]
	if len(frames) < 2 {
		t.Fatalf("%d frames, want at least 2:\n%s", len(frames), out.String())
	}
	if strings.Contains(frames[0], "IN/s") {
		t.Errorf("first frame has rates:\n%s", frames[0])
	}
	if !strings.Contains(frames[1], "IN/s") || !strings.Contains(frames[1], "5.0") {
		t.Errorf("second frame lacks the 5.0/s capture rate:\n%s", frames[1])
	}
	if !strings.Contains(strings.Join(strings.Fields(frames[1]), " "), "kernel (mesh socket buffer full) 9 3.0") {
		t.Errorf("second frame lacks the 3.0/s mesh kernel drop rate:\n%s", frames[1])
	}
	if !strings.Contains(strings.Join(strings.Fields(frames[1]), " "), "COALESCE 150µs window, pauses capture 16 (4.0/s) listener 3 (0.0/s)") {
		t.Errorf("second frame lacks the coalescing pause rates:\n%s", frames[1])
	}
}
