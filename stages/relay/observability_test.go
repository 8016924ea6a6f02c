//go:build linux

package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

// newTestRelay builds, but never runs, a relay on lo with its mesh socket on
// 127.0.0.1 and an ephemeral port: it sends nothing, and Snapshot works.
func newTestRelay(t *testing.T, obs Observability) *Relay {
	t.Helper()
	r, err := New(Config{Interface: "lo", BroadcastPorts: []uint16{5076, 5064}, MeshBind: netip.MustParseAddr("127.0.0.1"),
		DiscoveryInterval: 10 * time.Second, DedupWindow: 250 * time.Millisecond, HelloInterval: time.Second,
		Coalesce: 150 * time.Microsecond, Peers: []string{"10.99.0.2"}, Observability: obs}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.closeObservability(); r.conn.Close() })
	return r
}

// keyPaths lists every key path of a JSON value: "peers[].addr", ...
func keyPaths(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			keyPaths(p, x, out)
		}
	case []any:
		for _, x := range v {
			keyPaths(prefix+"[]", x, out)
		}
	}
}

// TestSnapshotFields pins the snapshot's JSON field names: they are an
// interface (`snowsignal stats --json`, scripts, docs/OBSERVABILITY.md).
// Adding a field means adding it here and to the docs; renaming one means
// a new SnapshotFormat.
func TestSnapshotFields(t *testing.T) {
	r := newTestRelay(t, Observability{})
	now := time.Now()
	r.Peers.Update(map[netip.AddrPort]string{netip.MustParseAddrPort("10.99.0.2:7124"): "static"}, false, now)
	r.Peers.Load().Peers[0].Heard(now.UnixNano(), 100)
	pool := pipeline.NewPool(1600)
	b := pool.Get()
	for _, fr := range frametest.Vector(t, "epics-search-segA-capture-and-mesh.pcap")[:1] {
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], fr)
		p.Frame.Decode(p.Bytes())
	}
	r.obs.insight.Observer(insight.Outbound, zerolog.Nop()).Kept(b)

	raw, err := json.Marshal(r.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	keyPaths("", v, got)
	for k := range got {
		if strings.HasPrefix(k, "drops.") {
			delete(got, k) // one key per reason, checked below
		}
	}
	want := strings.Fields(`format version commit go_version time start_time uptime_seconds
		config config.interface config.broadcast_ports config.mesh_port config.mesh_bind config.other_relays
		config.discover config.discovery_interval_seconds config.rebroadcast_destination config.dedup_window_seconds
		config.hello_interval_seconds config.accept_any_peer config.authenticated config.local_delivery
		config.stats_socket config.metrics_address config.summary_interval_seconds
		config.rate_limit config.peer_rate_limit config.coalesce_seconds
		capture_up
		stages stages[].name stages[].state stages[].in stages[].out stages[].errors stages[].restarts
		links links[].name links[].policy links[].len links[].cap links[].batches links[].packets
		links[].dropped_batches links[].dropped_packets
		drops kernel_drops mesh_kernel_drops self_mode
		peers peers[].addr peers[].sources peers[].tx_packets peers[].tx_bytes peers[].tx_errors
		peers[].rx_packets peers[].rx_bytes peers[].first_seen peers[].last_heard
		neighbours dedup dedup.enabled dedup.window_seconds dedup.entries dedup.evicted
		unknown_sources discovery discovery.resolutions discovery.failures
		rate_limited rate_limited.clients rate_limited.peers
		local_listeners coalesce coalesce.capture_pauses coalesce.listener_pauses
		epics epics.window_seconds
		epics.outbound epics.outbound.pva_searches epics.outbound.pva_beacons epics.outbound.ca_searches
		epics.outbound.ca_beacons epics.outbound.names epics.outbound.replies epics.outbound.malformed epics.outbound.other
		epics.inbound epics.inbound.pva_searches epics.inbound.pva_beacons epics.inbound.ca_searches
		epics.inbound.ca_beacons epics.inbound.names epics.inbound.replies epics.inbound.malformed epics.inbound.other
		epics.top_names epics.top_names[].name epics.top_names[].count
		epics.top_clients epics.top_clients[].name epics.top_clients[].count epics.top_servers
		epics.tracked epics.tracked.names epics.tracked.clients epics.tracked.servers
		epics.tracked.name_evictions epics.tracked.client_evictions`)
	gotKeys := slices.Sorted(maps.Keys(got))
	slices.Sort(want)
	if !slices.Equal(gotKeys, want) {
		for _, k := range gotKeys {
			if !slices.Contains(want, k) {
				t.Errorf("unexpected field %s", k)
			}
		}
		for _, k := range want {
			if !got[k] {
				t.Errorf("missing field %s", k)
			}
		}
	}

	// Every drop reason is present, zero or not.
	drops := v.(map[string]any)["drops"].(map[string]any)
	if len(drops) != int(pipeline.NumReasons) {
		t.Errorf("%d drop reasons, want %d", len(drops), pipeline.NumReasons)
	}
	for r := pipeline.Reason(0); r < pipeline.NumReasons; r++ {
		if _, ok := drops[r.String()]; !ok {
			t.Errorf("drop reason %s missing", r)
		}
	}
}

func TestSnapshotValues(t *testing.T) {
	r := newTestRelay(t, Observability{Version: "1.2.3", Commit: "abc", StatsSocket: filepath.Join(t.TempDir(), "s.sock")})
	now := time.Now()
	r.Peers.Update(map[netip.AddrPort]string{netip.MustParseAddrPort("10.99.0.2:7124"): "static"}, false, now)
	peer := r.Peers.Load().Peers[0]
	peer.TxPackets.Add(3)
	peer.TxBytes.Add(300)
	r.Metrics.Drop(pipeline.ReasonWrongPort, 2)
	// Batches back to back: the capture reader's coalescer engages
	// within a few dozen and pauses.
	for range 64 {
		r.captureCoalescer.Pause(1)
	}

	s := r.Snapshot()
	if s.Format != SnapshotFormat || s.Version != "1.2.3" || s.Commit != "abc" || !strings.HasPrefix(s.GoVersion, "go") {
		t.Errorf("build: %d %q %q %q", s.Format, s.Version, s.Commit, s.GoVersion)
	}
	if s.Drops["wrong_port"] != 2 || s.Drops["duplicate"] != 0 {
		t.Errorf("drops %v", s.Drops)
	}
	wantPeer := PeerStats{Addr: "10.99.0.2:7124", Sources: "static", TxPackets: 3, TxBytes: 300, FirstSeen: now}
	if len(s.Peers) != 1 || s.Peers[0] != wantPeer {
		t.Errorf("peers %+v, want [%+v]", s.Peers, wantPeer)
	}
	if c := s.Config; c.Interface != "lo" || !slices.Equal(c.BroadcastPorts, []uint16{5076, 5064}) || c.MeshBind != "127.0.0.1" ||
		c.DedupWindowSeconds != 0.25 || c.CoalesceSeconds != 150e-6 || c.StatsSocket == "" || c.Authenticated {
		t.Errorf("config %+v", c)
	}
	if !s.Dedup.Enabled || s.Dedup.WindowSeconds != 0.25 {
		t.Errorf("dedup %+v", s.Dedup)
	}
	if want := (CoalesceStats{CapturePauses: r.captureCoalescer.Pauses()}); s.Coalesce != want || want.CapturePauses == 0 {
		t.Errorf("coalesce %+v, want %+v with some capture pauses", s.Coalesce, want)
	}
	if _, ok := s.Stage("capture"); !ok {
		t.Error("no capture stage")
	}
	if _, ok := s.Stage("stats"); !ok {
		t.Error("no stats stage although the socket is on")
	}
	if s.CaptureUp {
		t.Error("capture up in a relay that never ran")
	}
}

// TestSnapshotMeshKernelDrops overflows the mesh socket of a relay that
// never reads it: the snapshot counts the kernel's drops, and keeps the last
// count once the socket is closed.
func TestSnapshotMeshKernelDrops(t *testing.T) {
	r := newTestRelay(t, Observability{})
	if s := r.Snapshot(); s.MeshKernelDrops != 0 {
		t.Fatalf("mesh kernel drops %d before any traffic", s.MeshKernelDrops)
	}
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	// More than the receive buffer holds (meshconn.BufferSize, doubled by
	// the kernel): a datagram of this size costs it about 2.3 KiB.
	const sent, size = 8000, 1400
	buf := make([]byte, size)
	for i := 0; i < sent; i++ {
		if _, err := tx.WriteToUDPAddrPort(buf, r.conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			time.Sleep(time.Millisecond) // let the loopback backlog drain: drops belong to the socket
		}
	}
	s := r.Snapshot()
	if s.MeshKernelDrops == 0 || s.MeshKernelDrops >= sent {
		t.Fatalf("mesh kernel drops %d of %d sent; want some, not all", s.MeshKernelDrops, sent)
	}
	r.conn.Close()
	if after := r.Snapshot(); after.MeshKernelDrops != s.MeshKernelDrops {
		t.Errorf("mesh kernel drops %d once the socket is closed; want the last count, %d", after.MeshKernelDrops, s.MeshKernelDrops)
	}
}

func TestHealth(t *testing.T) {
	ok := Snapshot{CaptureUp: true, Config: ConfigSummary{Interface: "eth0"},
		Stages: []pipeline.StageStats{{Name: "capture", State: "running"}, {Name: "inject", State: "running"}}}
	if err := ok.Health(); err != nil {
		t.Errorf("healthy snapshot: %v", err)
	}
	bad := ok
	bad.CaptureUp = false
	bad.Stages = []pipeline.StageStats{{Name: "capture", State: "backoff", LastError: "interface \"eth0\": no such interface"},
		{Name: "inject", State: "running"}}
	err := bad.Health()
	var he *HealthError
	if !errors.As(err, &he) || len(he.Problems) != 2 {
		t.Fatalf("unhealthy snapshot: %v", err)
	}
	want := "unhealthy: capture socket on eth0 is not up (interface down, gone, or not opened yet); " +
		"stage capture is backoff (last error: interface \"eth0\": no such interface)"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}
}

// sample is a snapshot with every kind of metric non-zero.
func sample() Snapshot {
	heard := time.Unix(1700000000, 500_000_000)
	return Snapshot{
		Version: "1.2.3", Commit: "abc", GoVersion: "go1.26", StartTime: time.Unix(1700000000, 0), CaptureUp: true,
		Stages: []pipeline.StageStats{{Name: "capture", State: "running", In: 10, Out: 9, Errors: 1, Restarts: 2},
			{Name: "inject", State: "backoff"}},
		Links: []pipeline.LinkStats{{Name: "capture->decode", Policy: "drop", Len: 3, Cap: 16, Batches: 4, Packets: 9, DroppedBatches: 1, DroppedPackets: 5}},
		Drops: map[string]uint64{"wrong_port": 7, "duplicate": 0}, KernelDrops: 11, MeshKernelDrops: 25,
		Peers: []PeerStats{{Addr: "10.0.0.2:7124", TxPackets: 20, TxBytes: 2000, TxErrors: 1, RxPackets: 30, RxBytes: 3000, LastHeard: &heard},
			{Addr: "10.0.0.3:7124"}},
		Neighbours: []string{"10.0.0.9"}, Dedup: DedupStats{Entries: 12, Evicted: 13},
		UnknownSources: []SourceCount{{Addr: "10.0.0.66", Datagrams: 14}},
		Discovery:      DiscoveryStats{Resolutions: 15, Failures: 16},
		Coalesce:       CoalesceStats{CapturePauses: 26, ListenerPauses: 27},
		EPICS: insight.Stats{Outbound: insight.Counters{PVASearches: 17, CASearches: 18, PVABeacons: 19, Names: 20, Malformed: 21, Other: 22},
			Inbound: insight.Counters{CABeacons: 23, Replies: 24}},
	}
}

// scrape fetches /metrics for snapshot s and parses it as the Prometheus
// text format.
func scrape(t *testing.T, s Snapshot) map[string]*dto.MetricFamily {
	t.Helper()
	// Served in memory: no socket, no traffic.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	w := httptest.NewRecorder()
	metricsHandler(func() Snapshot { return s }).ServeHTTP(w, req)
	resp := w.Result()
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels are
// exactly labels ("k=v" pairs), or fails the test.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Errorf("no metric %s", name)
		return -1
	}
	for _, m := range f.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(labels))
		if !slices.Equal(got, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Errorf("no series %s%v", name, labels)
	return -1
}

func TestCollector(t *testing.T) {
	s := sample()
	fams := scrape(t, s)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"snowsignal_build_info", []string{"version=1.2.3", "commit=abc", "goversion=go1.26"}, 1},
		{"snowsignal_start_time_seconds", nil, 1700000000},
		{"snowsignal_capture_up", nil, 1},
		{"snowsignal_stage_packets_in_total", []string{"stage=capture"}, 10},
		{"snowsignal_stage_packets_out_total", []string{"stage=capture"}, 9},
		{"snowsignal_stage_errors_total", []string{"stage=capture"}, 1},
		{"snowsignal_stage_restarts_total", []string{"stage=capture"}, 2},
		{"snowsignal_stage_running", []string{"stage=capture"}, 1},
		{"snowsignal_stage_running", []string{"stage=inject"}, 0},
		{"snowsignal_link_batches_total", []string{"link=capture->decode"}, 4},
		{"snowsignal_link_packets_total", []string{"link=capture->decode"}, 9},
		{"snowsignal_link_dropped_batches_total", []string{"link=capture->decode"}, 1},
		{"snowsignal_link_dropped_packets_total", []string{"link=capture->decode"}, 5},
		{"snowsignal_link_queue_length", []string{"link=capture->decode"}, 3},
		{"snowsignal_link_queue_capacity", []string{"link=capture->decode"}, 16},
		{"snowsignal_dropped_packets_total", []string{"reason=wrong_port"}, 7},
		{"snowsignal_dropped_packets_total", []string{"reason=duplicate"}, 0},
		{"snowsignal_kernel_dropped_packets_total", nil, 11},
		{"snowsignal_mesh_kernel_dropped_packets_total", nil, 25},
		{"snowsignal_peers", nil, 2},
		{"snowsignal_peer_sent_datagrams_total", []string{"peer=10.0.0.2:7124"}, 20},
		{"snowsignal_peer_sent_bytes_total", []string{"peer=10.0.0.2:7124"}, 2000},
		{"snowsignal_peer_send_errors_total", []string{"peer=10.0.0.2:7124"}, 1},
		{"snowsignal_peer_received_datagrams_total", []string{"peer=10.0.0.2:7124"}, 30},
		{"snowsignal_peer_received_bytes_total", []string{"peer=10.0.0.2:7124"}, 3000},
		{"snowsignal_peer_last_heard_timestamp_seconds", []string{"peer=10.0.0.2:7124"}, 1700000000.5},
		{"snowsignal_peer_last_heard_timestamp_seconds", []string{"peer=10.0.0.3:7124"}, 0},
		{"snowsignal_neighbours", nil, 1},
		{"snowsignal_dedup_entries", nil, 12},
		{"snowsignal_dedup_evicted_total", nil, 13},
		{"snowsignal_unknown_source_datagrams_total", []string{"source=10.0.0.66"}, 14},
		{"snowsignal_discovery_resolutions_total", nil, 15},
		{"snowsignal_discovery_failures_total", nil, 16},
		{"snowsignal_coalesce_pauses_total", []string{"stage=capture"}, 26},
		{"snowsignal_coalesce_pauses_total", []string{"stage=listener"}, 27},
		{"snowsignal_epics_searches_total", []string{"protocol=pva", "direction=outbound"}, 17},
		{"snowsignal_epics_searches_total", []string{"protocol=ca", "direction=outbound"}, 18},
		{"snowsignal_epics_beacons_total", []string{"protocol=pva", "direction=outbound"}, 19},
		{"snowsignal_epics_beacons_total", []string{"protocol=ca", "direction=inbound"}, 23},
		{"snowsignal_epics_searched_names_total", []string{"direction=outbound"}, 20},
		{"snowsignal_epics_replies_total", []string{"direction=inbound"}, 24},
		{"snowsignal_epics_undecoded_datagrams_total", []string{"direction=outbound", "reason=malformed"}, 21},
		{"snowsignal_epics_undecoded_datagrams_total", []string{"direction=outbound", "reason=not_epics"}, 22},
	} {
		if got := value(t, fams, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Counters are typed as counters, and named so.
	for name, f := range fams {
		if !strings.HasPrefix(name, "snowsignal_") {
			continue
		}
		if isCounter := f.GetType() == dto.MetricType_COUNTER; isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %v", name, f.GetType())
		}
	}
	// The Go runtime and process collectors are there too.
	for _, n := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[n] == nil {
			t.Errorf("no %s", n)
		}
	}
}

func TestHealthz(t *testing.T) {
	for _, tt := range []struct {
		up   bool
		code int
		body string
	}{{true, 200, "ok\n"}, {false, 503, "unhealthy: capture socket on  is not up"}} {
		s := Snapshot{CaptureUp: tt.up, Stages: []pipeline.StageStats{{Name: "capture", State: "running"}}}
		w := httptest.NewRecorder()
		metricsHandler(func() Snapshot { return s }).ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		resp := w.Result()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.code || !strings.HasPrefix(string(b), tt.body) {
			t.Errorf("capture up %v: %d %q, want %d %q", tt.up, resp.StatusCode, b, tt.code, tt.body)
		}
	}
}

func TestStatsSocketAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "relay.sock")
	r := newTestRelay(t, Observability{StatsSocket: path})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	// The socket is open before Run, so a second relay on the same path
	// fails in New, naming the flag. (Accept is served by Run; the
	// kernel completes connections to a listening socket regardless.)
	_, err := New(Config{Interface: "lo", BroadcastPorts: []uint16{5076}, MeshBind: netip.MustParseAddr("127.0.0.1"),
		Observability: Observability{StatsSocket: path}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "--stats-socket "+path) || !strings.Contains(err.Error(), "another snowsignal is running") {
		t.Errorf("second relay on %s: %v", path, err)
	}
	r.closeObservability()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket not removed on close: %v", err)
	}
}

func TestMetricsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock := filepath.Join(t.TempDir(), "s.sock")
	_, err = New(Config{Interface: "lo", BroadcastPorts: []uint16{5076}, MeshBind: netip.MustParseAddr("127.0.0.1"),
		Observability: Observability{StatsSocket: sock, MetricsAddress: ln.Addr().String()}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "--metrics-address "+ln.Addr().String()) {
		t.Errorf("metrics address in use: %v", err)
	}
	// The stats socket opened before the failure was closed again.
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stats socket left behind: %v", err)
	}
}

func TestStatsAnswer(t *testing.T) {
	r := newTestRelay(t, Observability{})
	v, err := r.answer("snapshot")
	if _, ok := v.(Snapshot); !ok || err != nil {
		t.Errorf("snapshot: %T %v", v, err)
	}
	if _, err := r.answer("bogus"); err == nil {
		t.Error("bogus verb answered")
	}
}

func TestSummaryLine(t *testing.T) {
	var buf bytes.Buffer
	s := Snapshot{CaptureUp: true, Peers: []PeerStats{{TxPackets: 30}}, Neighbours: []string{},
		Stages: []pipeline.StageStats{{Name: "capture", In: 110}, {Name: "fanout", Out: 100}, {Name: "listener", In: 50}, {Name: "inject", Out: 40}},
		Drops:  map[string]uint64{"wrong_port": 10, "duplicate": 2}, KernelDrops: 1, MeshKernelDrops: 9,
		EPICS: insight.Stats{Outbound: insight.Counters{Names: 5}, Inbound: insight.Counters{Names: 7}}}
	cur := totalsOf(&s)
	last := totals{captured: 10, forwarded: 0, sent: 10, received: 50, injected: 40, dropped: 2, meshKernelDrops: 1}
	logSummary(zerolog.New(&buf), &s, cur, last, 4*time.Second)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "info", "message": "summary",
		"captured": 110.0, "captured_per_second": 25.0, "forwarded": 100.0, "forwarded_per_second": 25.0,
		"mesh_sent": 30.0, "mesh_sent_per_second": 5.0, "mesh_received": 50.0, "mesh_received_per_second": 0.0,
		"injected": 40.0, "injected_per_second": 0.0, "dropped": 12.0, "dropped_per_second": 2.5,
		"kernel_drops": 1.0, "kernel_drops_per_second": 0.25, "mesh_kernel_drops": 9.0, "mesh_kernel_drops_per_second": 2.0,
		"pv_names": 12.0, "pv_names_per_second": 3.0,
		"peers": 1.0, "neighbours": 0.0, "capture_up": true, "interval_seconds": 4.0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}
