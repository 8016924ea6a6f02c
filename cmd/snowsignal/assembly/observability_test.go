//go:build linux

package assembly

import (
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
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
		Coalesce: 150 * time.Microsecond, MaxDelay: 4 * time.Millisecond, QueueTarget: time.Millisecond, QueueInterval: 20 * time.Millisecond, Peers: []string{"10.99.0.2"}, Observability: obs}, zerolog.Nop())
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
		config.rate_limit config.peer_rate_limit config.coalesce_seconds config.max_delay_seconds config.queue_target_seconds config.queue_interval_seconds config.mesh_offload
		capture_up
		stages stages[].name stages[].state stages[].in stages[].out stages[].errors stages[].restarts
		links links[].name links[].policy links[].len links[].cap links[].batches links[].packets
		links[].handed_in links[].dropped_batches links[].dropped_packets
		drops kernel_drops mesh_kernel_drops self_mode
		mesh_offload mesh_offload.sending mesh_offload.receiving mesh_offload.segmented_messages
		mesh_offload.segmented_datagrams mesh_offload.coalesced_datagrams
		peers peers[].addr peers[].sources peers[].tx_packets peers[].tx_bytes peers[].tx_errors
		peers[].rx_packets peers[].rx_bytes peers[].capabilities peers[].withheld_ipv6 peers[].first_seen peers[].last_heard
		neighbours dedup dedup.enabled dedup.window_seconds dedup.entries dedup.evicted
		unknown_sources discovery discovery.resolutions discovery.failures
		rate_limited rate_limited.clients rate_limited.peers
		local_listeners coalesce coalesce.capture_pauses coalesce.listener_pauses probes probes.answered probes.refused
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
		r.captureCoalescer.Pause(false)
	}

	s := r.Snapshot()
	if s.Format != readout.SnapshotFormat || s.Version != "1.2.3" || s.Commit != "abc" || !strings.HasPrefix(s.GoVersion, "go") {
		t.Errorf("build: %d %q %q %q", s.Format, s.Version, s.Commit, s.GoVersion)
	}
	if s.Drops["wrong_port"] != 2 || s.Drops["duplicate"] != 0 {
		t.Errorf("drops %v", s.Drops)
	}
	wantPeer := readout.PeerStats{Addr: "10.99.0.2:7124", Sources: "static", TxPackets: 3, TxBytes: 300, Capabilities: "unknown", FirstSeen: now}
	if len(s.Peers) != 1 || s.Peers[0] != wantPeer {
		t.Errorf("peers %+v, want [%+v]", s.Peers, wantPeer)
	}
	if c := s.Config; c.Interface != "lo" || !slices.Equal(c.BroadcastPorts, []uint16{5076, 5064}) || c.MeshBind != "127.0.0.1" ||
		c.DedupWindowSeconds != 0.25 || c.CoalesceSeconds != 150e-6 || c.MaxDelaySeconds != 4e-3 || c.QueueTargetSeconds != 1e-3 || c.QueueIntervalSeconds != 20e-3 || c.StatsSocket == "" || c.Authenticated {
		t.Errorf("config %+v", c)
	}
	if !s.Dedup.Enabled || s.Dedup.WindowSeconds != 0.25 {
		t.Errorf("dedup %+v", s.Dedup)
	}
	if want := (readout.CoalesceStats{CapturePauses: r.captureCoalescer.Pauses()}); s.Coalesce != want || want.CapturePauses == 0 {
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

// sample is a snapshot with every kind of metric non-zero.

// scrape fetches /metrics for snapshot s and parses it as the Prometheus

// text format.

// value returns the value of the series of family name whose labels are

// exactly labels ("k=v" pairs), or fails the test.

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
	if _, ok := v.(readout.Snapshot); !ok || err != nil {
		t.Errorf("snapshot: %T %v", v, err)
	}
	if _, err := r.answer("bogus"); err == nil {
		t.Error("bogus verb answered")
	}
}
