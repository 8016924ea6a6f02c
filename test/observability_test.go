package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/test/harness"
)

// obsMetricsAddr is where relays serve /metrics in this test, inside their
// own namespace.
const obsMetricsAddr = "127.0.0.1:9124"

// obsStats runs `snowsignal stats --json` against r's stats socket and
// decodes its output.
func obsStats(t *testing.T, bin string, r *labrelay.Relay) readout.Snapshot {
	t.Helper()
	out, err := exec.Command(bin, "stats", "--socket", r.StatsSocket, "--json").Output()
	if err != nil {
		t.Fatalf("%s: snowsignal stats --json: %v", r.Host.Name, obsExitErr(err))
	}
	var s readout.Snapshot
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("%s: snowsignal stats --json printed %q: %v", r.Host.Name, out, err)
	}
	return s
}

// obsExitErr adds a failed command's stderr to its error.
func obsExitErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}

// obsWait polls cond every 20ms for at most 3s.
func obsWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within 3s", what)
		}
	}
}

// obsStageWant is what a stage must have counted.
type obsStageWant struct{ in, out uint64 }

// obsCheck checks that the snapshot's stages counted exactly want (stages
// not named: nothing), that no packet was dropped, and that every stage runs.
func obsCheck(t *testing.T, who string, s readout.Snapshot, want map[string]obsStageWant) {
	t.Helper()
	for _, st := range s.Stages {
		if st.Name == "discovery" {
			// Its out counts resolution rounds: one at start, then one
			// per --discovery-interval.
			if st.In != 0 || st.Out == 0 || st.Errors != 0 || st.State != "running" {
				t.Errorf("%s: stage discovery: %+v, want rounds, no errors, running", who, st)
			}
			continue
		}
		w := want[st.Name]
		if st.In != w.in || st.Out != w.out || st.Errors != 0 || st.Restarts != 0 || st.State != "running" {
			t.Errorf("%s: stage %s: %+v, want in %d out %d, no errors, running", who, st.Name, st, w.in, w.out)
		}
	}
	for name := range want {
		if _, ok := s.Stage(name); !ok {
			t.Errorf("%s: no stage %s", who, name)
		}
	}
	for reason, n := range s.Drops {
		if n != 0 {
			t.Errorf("%s: %d packets dropped as %s, want none", who, n, reason)
		}
	}
	if len(s.Drops) != int(pipeline.NumReasons) || s.KernelDrops != 0 || !s.CaptureUp {
		t.Errorf("%s: %d drop reasons, kernel drops %d, capture up %v", who, len(s.Drops), s.KernelDrops, s.CaptureUp)
	}
	for _, l := range s.Links {
		if l.DroppedPackets != 0 || l.Len != 0 {
			t.Errorf("%s: link %+v", who, l)
		}
	}
}

// obsScrape fetches /metrics from inside host's namespace and parses it as
// the Prometheus text format.
func obsScrape(t *testing.T, h *netlab.Host) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := h.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+obsMetricsAddr+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: GET /metrics: %v", h.Name, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: /metrics is not the Prometheus text format: %v", h.Name, err)
	}
	return fams
}

// obsSeries returns the metric family's series as "name{k=v,...}" -> value.
func obsSeries(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(labels)
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			out[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// TestObservability relays the real EPICS searches of the vectors (pvget,
// pvxget, caget) through two relays, then checks what each relay reports:
// `snowsignal stats --json` shows the counters that must have moved and
// no others, the EPICS top lists name the PVs and the client, /metrics
// matches the snapshot, `snowsignal health` passes, and fails once relay-a's
// capture is broken (its eth0 down). A relay refuses another's live stats
// socket, and removes its own on exit.
func TestObservability(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	// No hellos: they would move listener/rewrite counters with traffic of
	// their own. Debug level on relay-a: it logs the PV searches.
	common := []string{"-t", "eth0", "-b", "5076,5064", "--hello-interval", "0",
		"--metrics-address", obsMetricsAddr, "--summary-interval", "1s"}
	a := harness.StartT(t, bin, l.Host("relay-a"), append(common, "--other-relays", "10.77.0.2", "-ll", "debug")...)
	b := harness.StartT(t, bin, l.Host("relay-b"), append(common, "--other-relays", "10.77.0.1")...)
	if a.StatsSocket == "" || a.StatsSocket == b.StatsSocket {
		t.Fatalf("stats sockets %q and %q", a.StatsSocket, b.StatsSocket)
	}

	// The three client searches, sent again from the lab's client.
	type search struct {
		payload []byte
		port    uint16
	}
	var searches []search
	v := frametest.Vector(t, "epics-search-segA-capture-and-mesh.pcap")
	for _, fr := range [][]byte{v[0], v[2], v[4]} {
		var f frame.Frame
		if err := f.Decode(fr); err != nil {
			t.Fatal(err)
		}
		searches = append(searches, search{f.Payload(fr), f.DstPort})
	}
	srv := map[uint16]*net.UDPConn{}
	for _, port := range []uint16{5076, 5064} {
		c, err := l.Host("server").ListenUDP(fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		srv[port] = c
	}
	cl, err := l.Host("client").BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	client := netip.AddrPortFrom(netip.MustParseAddr("10.77.0.11"), cl.LocalAddr().(*net.UDPAddr).AddrPort().Port()).String()
	for _, s := range searches {
		if _, err := cl.WriteToUDPAddrPort(s.payload, netip.MustParseAddrPort(fmt.Sprintf("10.77.0.255:%d", s.port))); err != nil {
			t.Fatal(err)
		}
		srv[s.port].SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 2048)
		n, from, err := srv[s.port].ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("search to port %d did not cross: %v", s.port, err)
		}
		if from.Addr() != netip.MustParseAddr("10.77.0.11") || string(buf[:n]) != string(s.payload) {
			t.Fatalf("server got %d bytes from %s", n, from)
		}
	}

	// The counters reach the stages that handled the packets.
	three := obsStageWant{3, 3}
	var sa, sb readout.Snapshot
	obsWait(t, "relay-a's fan-out and relay-b's inject counted 3", func() bool {
		sa, sb = obsStats(t, bin, a), obsStats(t, bin, b)
		fa, _ := sa.Stage("fanout")
		ib, _ := sb.Stage("inject")
		return fa.Out == 3 && ib.Out == 3
	})
	obsCheck(t, "relay-a", sa, map[string]obsStageWant{"capture": three, "decode": three, "filter": three, "fanout": three,
		"discovery": {}, "listener": {}, "rewrite": {}, "inject": {}, "stats": {}, "metrics": {}, "summary": {}})
	obsCheck(t, "relay-b", sb, map[string]obsStageWant{"listener": three, "rewrite": three, "inject": three})
	if len(sa.Peers) != 1 || sa.Peers[0].Addr != "10.77.0.2:7124" || sa.Peers[0].TxPackets != 3 || sa.Peers[0].RxPackets != 0 ||
		sa.Peers[0].TxErrors != 0 || sa.Peers[0].LastHeard != nil {
		t.Errorf("relay-a peers %+v, want 10.77.0.2:7124 sent 3, heard never", sa.Peers)
	}
	if len(sb.Peers) != 1 || sb.Peers[0].Addr != "10.77.0.1:7124" || sb.Peers[0].RxPackets != 3 || sb.Peers[0].TxPackets != 0 ||
		sb.Peers[0].LastHeard == nil {
		t.Errorf("relay-b peers %+v, want 10.77.0.1:7124 heard 3, sent none", sb.Peers)
	}
	if sa.Peers[0].TxBytes != sb.Peers[0].RxBytes || sa.Peers[0].TxBytes == 0 {
		t.Errorf("relay-a sent %d bytes, relay-b received %d", sa.Peers[0].TxBytes, sb.Peers[0].RxBytes)
	}
	for who, s := range map[string]readout.Snapshot{"relay-a": sa, "relay-b": sb} {
		e := s.EPICS
		c, other := e.Outbound, e.Inbound
		if who == "relay-b" {
			c, other = e.Inbound, e.Outbound
		}
		if c.PVASearches != 2 || c.CASearches != 1 || c.Names != 4 || c.Malformed+c.Other+other.Names+other.PVASearches != 0 {
			t.Errorf("%s: EPICS counters %+v / %+v", who, e.Outbound, e.Inbound)
		}
		if fmt.Sprint(e.TopNames) != "[{EP:TEMP 3} {EP:COUNT 1}]" || fmt.Sprint(e.TopClients) != "[{10.77.0.11 4}]" {
			t.Errorf("%s: top names %v, top clients %v", who, e.TopNames, e.TopClients)
		}
	}
	if _, err := a.WaitLog(func(e map[string]any) bool {
		return e["message"] == "pv search" && e["client"] == client && fmt.Sprint(e["pvs"]) == "[EP:TEMP EP:COUNT]" && e["proto"] == "pva" && e["dir"] == "outbound"
	}, time.Second); err != nil {
		t.Errorf("relay-a: no debug line for pvxget's search: %v", err)
	}
	if _, err := a.WaitLog(func(e map[string]any) bool {
		return e["message"] == "summary" && e["captured"] == 3.0 && e["forwarded"] == 3.0
	}, 3*time.Second); err != nil {
		t.Errorf("relay-a: no summary line with the totals: %v", err)
	}

	// /metrics agrees with the snapshot.
	m := obsSeries(obsScrape(t, l.Host("relay-a")))
	sa = obsStats(t, bin, a)
	for _, st := range sa.Stages {
		if got := m["snowsignal_stage_packets_in_total{stage="+st.Name+"}"]; got != float64(st.In) {
			t.Errorf("metrics: stage %s in %v, snapshot %d", st.Name, got, st.In)
		}
		if got := m["snowsignal_stage_packets_out_total{stage="+st.Name+"}"]; got != float64(st.Out) {
			t.Errorf("metrics: stage %s out %v, snapshot %d", st.Name, got, st.Out)
		}
	}
	for reason, n := range sa.Drops {
		if got, ok := m["snowsignal_dropped_packets_total{reason="+reason+"}"]; !ok || got != float64(n) {
			t.Errorf("metrics: drops %s = %v (present %v), snapshot %d", reason, got, ok, n)
		}
	}
	for key, want := range map[string]float64{
		"snowsignal_peer_sent_datagrams_total{peer=10.77.0.2:7124}": float64(sa.Peers[0].TxPackets),
		"snowsignal_peer_sent_bytes_total{peer=10.77.0.2:7124}":     float64(sa.Peers[0].TxBytes),
		"snowsignal_peers{}":      1,
		"snowsignal_capture_up{}": 1,
		"snowsignal_epics_searches_total{direction=outbound,protocol=pva}":                                          2,
		"snowsignal_epics_searches_total{direction=outbound,protocol=ca}":                                           1,
		"snowsignal_epics_searched_names_total{direction=outbound}":                                                 4,
		"snowsignal_link_queue_capacity{link=capture->decode}":                                                      pipeline.QueueReaderSize,
		"snowsignal_build_info{commit=" + sa.Commit + ",goversion=" + sa.GoVersion + ",version=" + sa.Version + "}": 1,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("metrics: %s = %v (present %v), want %v", key, got, ok, want)
		}
	}

	// Healthy; then relay-a's eth0 goes down and its capture is not up.
	health := func(r *labrelay.Relay) (string, error) {
		out, err := exec.Command(bin, "health", "--socket", r.StatsSocket).CombinedOutput()
		return string(out), err
	}
	if out, err := health(a); err != nil || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("health of relay-a: %v: %s", err, out)
	}
	if err := l.Host("relay-a").SetLink(false); err != nil {
		t.Fatal(err)
	}
	var out string
	obsWait(t, "health fails after eth0 went down", func() bool {
		out, err = health(a)
		return err != nil
	})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "capture socket on eth0 is not up") {
		t.Errorf("health with eth0 down: %v: %s", err, out)
	}
	if out, err := health(b); err != nil {
		t.Errorf("health of relay-b: %v: %s", err, out)
	}

	// A third relay on relay-a's host may not take its stats socket.
	_, err = labrelay.Options{ReadyTimeout: 3 * time.Second}.Start(context.Background(), bin, l.Host("relay-a"),
		"-t", "eth0", "--mesh-port", "7199", "--stats-socket", a.StatsSocket)
	if err == nil || !strings.Contains(err.Error(), "--stats-socket "+a.StatsSocket) || !strings.Contains(err.Error(), "another snowsignal is running") {
		t.Errorf("third relay on a live socket: %v", err)
	}

	// A clean exit removes the socket.
	if err := a.Stop(); err != nil {
		t.Errorf("relay-a exit: %v", err)
	}
	if _, err := os.Lstat(a.StatsSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("relay-a's stats socket is still there after exit: %v", err)
	}
	out, err = health(a)
	if want := "snowsignal: error: is snowsignal running? socket " + a.StatsSocket + ": no such file or directory\n"; err == nil || out != want {
		t.Errorf("health after exit: %v: %q, want %q", err, out, want)
	}
}
