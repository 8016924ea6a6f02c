package readout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

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

func sample() Snapshot {
	heard := time.Unix(1700000000, 500_000_000)
	return Snapshot{
		Version: "1.2.3", Commit: "abc", GoVersion: "go1.26", StartTime: time.Unix(1700000000, 0), CaptureUp: true,
		Stages: []pipeline.StageStats{{Name: "capture", State: "running", In: 10, Out: 9, Errors: 1, Restarts: 2},
			{Name: "inject", State: "backoff"}},
		Links: []pipeline.LinkStats{{Name: "capture->decode", Policy: "drop", Len: 3, Cap: 16, Batches: 4, Packets: 9, HandedIn: 2, DroppedBatches: 1, DroppedPackets: 5}},
		Drops: map[string]uint64{"wrong_port": 7, "duplicate": 0}, KernelDrops: 11, MeshKernelDrops: 25,
		Peers: []PeerStats{{Addr: "10.0.0.2:7124", TxPackets: 20, TxBytes: 2000, TxErrors: 1, RxPackets: 30, RxBytes: 3000, LastHeard: &heard},
			{Addr: "10.0.0.3:7124"}},
		Neighbours: []string{"10.0.0.9"}, Dedup: DedupStats{Entries: 12, Evicted: 13},
		UnknownSources: []SourceCount{{Addr: "10.0.0.66", Datagrams: 14}},
		Discovery:      DiscoveryStats{Resolutions: 15, Failures: 16},
		Coalesce:       CoalesceStats{CapturePauses: 26, ListenerPauses: 27},
		Probes:         ProbeStats{Answered: 28, Refused: 29},
		EPICS: insight.Stats{Outbound: insight.Counters{PVASearches: 17, CASearches: 18, PVABeacons: 19, Names: 20, Malformed: 21, Other: 22},
			Inbound: insight.Counters{CABeacons: 23, Replies: 24}},
	}
}

func scrape(t *testing.T, s Snapshot) map[string]*dto.MetricFamily {
	t.Helper()
	// Served in memory: no socket, no traffic.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	w := httptest.NewRecorder()
	MetricsHandler(func() Snapshot { return s }).ServeHTTP(w, req)
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
		{"snowsignal_link_handed_in_batches_total", []string{"link=capture->decode"}, 2},
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
		{"snowsignal_probe_replies_total", []string{"result=answered"}, 28},
		{"snowsignal_probe_replies_total", []string{"result=refused"}, 29},
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
		MetricsHandler(func() Snapshot { return s }).ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		resp := w.Result()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.code || !strings.HasPrefix(string(b), tt.body) {
			t.Errorf("capture up %v: %d %q, want %d %q", tt.up, resp.StatusCode, b, tt.code, tt.body)
		}
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

// TestExpositionEscapesAndFormats: label values with a backslash, a double
// quote or a line feed, and help with a line feed, come back intact through
// a Prometheus parser; integral values are written as integers, others in
// full.
func TestExpositionEscapesAndFormats(t *testing.T) {
	d := &desc{name: "snowsignal_test_total", help: "line one\nline \\ two", labels: []string{"peer"}}
	g := &desc{name: "snowsignal_test_ratio", help: "a gauge"}
	var b bytes.Buffer
	weird := "a\\b\"c\nd"
	writeFamily(&b, d, []series{{[]string{weird}, 12345678901234}})
	writeFamily(&b, g, []series{{nil, 0.25}})
	if !strings.Contains(b.String(), " 12345678901234\n") || !strings.Contains(b.String(), " 0.25\n") {
		t.Errorf("values not written exactly:\n%s", b.String())
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("not the text format: %v", err)
	}
	f := fams["snowsignal_test_total"]
	if f.GetType() != dto.MetricType_COUNTER || f.GetHelp() != d.help {
		t.Errorf("family %v %q", f.GetType(), f.GetHelp())
	}
	if got := f.Metric[0].Label[0].GetValue(); got != weird {
		t.Errorf("label value %q, want %q", got, weird)
	}
	if fams["snowsignal_test_ratio"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("ratio is not a gauge")
	}
}
