package readout

import (
	"bytes"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

// metricsNamespace prefixes every metric name.
const metricsNamespace = "snowsignal"

// A desc describes one metric family: its name, help, type and label
// names, written once per scrape ahead of its samples.
type desc struct {
	name, help string
	labels     []string
}

// metricDesc describes one metric. A name ending in _total is a counter,
// any other a gauge (TestCollector holds the exporter to that).
func metricDesc(name, help string, labels ...string) *desc {
	return &desc{name: metricsNamespace + "_" + name, help: help, labels: labels}
}

func (d *desc) kind() string {
	if strings.HasSuffix(d.name, "_total") {
		return "counter"
	}
	return "gauge"
}

// The metrics, documented in docs/OBSERVABILITY.md. Counters end in
// _total; every value comes from one Snapshot per scrape, so the exporter
// keeps no counters of its own.
var (
	descBuildInfo = metricDesc("build_info", "Build of the running relay; always 1.", "version", "commit", "goversion")
	descStart     = metricDesc("start_time_seconds", "When the relay started, in seconds since the Unix epoch.")
	descCaptureUp = metricDesc("capture_up", "1 when the capture socket is open on an interface that is up.")

	descStageIn       = metricDesc("stage_packets_in_total", "Packets a stage received from its input.", "stage")
	descStageOut      = metricDesc("stage_packets_out_total", "Packets a stage passed on (or sent, for a last stage).", "stage")
	descStageErrors   = metricDesc("stage_errors_total", "Errors a stage handled without failing.", "stage")
	descStageRestarts = metricDesc("stage_restarts_total", "Times a stage failed and was restarted.", "stage")
	descStageRunning  = metricDesc("stage_running", "1 when a stage is running, 0 when starting, in backoff or stopped.", "stage")

	descLinkBatches        = metricDesc("link_batches_total", "Batches queued on a link.", "link")
	descLinkPackets        = metricDesc("link_packets_total", "Packets queued on a link.", "link")
	descLinkHandedIn       = metricDesc("link_handed_in_batches_total", "Batches on a link that its producer handled itself, its consumer being idle.", "link")
	descLinkDroppedBatches = metricDesc("link_dropped_batches_total", "Batches a link dropped because it was full or abandoned.", "link")
	descLinkDroppedPackets = metricDesc("link_dropped_packets_total", "Packets a link dropped because it was full or abandoned.", "link")
	descLinkLength         = metricDesc("link_queue_length", "Batches waiting on a link now.", "link")
	descLinkCapacity       = metricDesc("link_queue_capacity", "Batches a link holds at most.", "link")

	descDrops            = metricDesc("dropped_packets_total", "Packets dropped, by reason.", "reason")
	descKernelDrops      = metricDesc("kernel_dropped_packets_total", "Frames the kernel dropped because the capture socket's queue was full.")
	descOffloadDatagrams = metricDesc("mesh_offload_datagrams_total", "Mesh datagrams sent in segmented messages (direction sent) or received coalesced (received).", "direction")
	descOffloadMessages  = metricDesc("mesh_offload_messages_total", "Segmented messages the mesh socket sent, each carrying several datagrams to one peer.")
	descMeshDrops        = metricDesc("mesh_kernel_dropped_packets_total", "Datagrams from peers the kernel dropped because the mesh socket's receive buffer was full.")

	descPeers        = metricDesc("peers", "Relays in the current peer set.")
	descPeerTx       = metricDesc("peer_sent_datagrams_total", "Mesh datagrams sent to a peer.", "peer")
	descPeerTxBytes  = metricDesc("peer_sent_bytes_total", "Mesh datagram bytes sent to a peer.", "peer")
	descPeerTxErrors = metricDesc("peer_send_errors_total", "Mesh datagrams to a peer the kernel refused to send.", "peer")
	descPeerRx       = metricDesc("peer_received_datagrams_total", "Mesh datagrams received from a peer.", "peer")
	descPeerRxBytes  = metricDesc("peer_received_bytes_total", "Mesh datagram bytes received from a peer.", "peer")
	descPeerWithheld = metricDesc("peer_withheld_ipv6_frames_total", "IPv6 frames not sent to a peer because it has not announced the ipv6 capability.", "peer")
	descPeerIPv6     = metricDesc("peer_ipv6", "1 if a peer currently announces the ipv6 capability (is sent IPv6 frames), else 0.", "peer")
	descPeerHeard    = metricDesc("peer_last_heard_timestamp_seconds", "When a datagram last came from a peer, in seconds since the Unix epoch (0: never).", "peer")

	descNeighbours   = metricDesc("neighbours", "Other relays heard on this relay's segment.")
	descDedupEntries = metricDesc("dedup_entries", "Datagrams the duplicate-suppression cache remembers now.")
	descDedupEvicted = metricDesc("dedup_evicted_total", "Datagrams forgotten early because the duplicate-suppression cache was full.")
	descUnknown      = metricDesc("unknown_source_datagrams_total", "Mesh datagrams from a source outside the peer set (up to 256 sources).", "source")

	descResolutions = metricDesc("discovery_resolutions_total", "Completed peer name resolution rounds.")
	descResFailures = metricDesc("discovery_failures_total", "Failed peer name lookups.")

	descProbes = metricDesc("probe_replies_total", "Probes of `snowsignal doctor` answered, and refused (rate limit).", "result")

	descCoalescePauses = metricDesc("coalesce_pauses_total", "Times a socket reader, under sustained load, waited the --coalesce window after a batch so that one wake-up reads several.", "stage")

	descEPICSSearches  = metricDesc("epics_searches_total", "EPICS search requests relayed (PVAccess: messages; Channel Access: one per name).", "protocol", "direction")
	descEPICSBeacons   = metricDesc("epics_beacons_total", "EPICS server beacons relayed.", "protocol", "direction")
	descEPICSNames     = metricDesc("epics_searched_names_total", "PV names in the EPICS search requests relayed.", "direction")
	descEPICSReplies   = metricDesc("epics_replies_total", "EPICS search replies seen on a relayed port.", "direction")
	descEPICSUndecoded = metricDesc("epics_undecoded_datagrams_total", "Relayed datagrams the EPICS decoder could not read: malformed, or not EPICS at all.", "direction", "reason")
)

// descs lists every family in the order a scrape writes them.
var descs = []*desc{descBuildInfo, descStart, descCaptureUp,
	descStageIn, descStageOut, descStageErrors, descStageRestarts, descStageRunning,
	descLinkBatches, descLinkPackets, descLinkHandedIn, descLinkDroppedBatches, descLinkDroppedPackets, descLinkLength, descLinkCapacity,
	descDrops, descKernelDrops, descMeshDrops, descOffloadDatagrams, descOffloadMessages, descPeers, descPeerTx, descPeerTxBytes, descPeerTxErrors, descPeerRx, descPeerRxBytes, descPeerHeard,
	descPeerWithheld, descPeerIPv6,
	descNeighbours, descDedupEntries, descDedupEvicted, descUnknown, descResolutions, descResFailures,
	descCoalescePauses, descProbes,
	descEPICSSearches, descEPICSBeacons, descEPICSNames, descEPICSReplies, descEPICSUndecoded}

// A series is one series' value: its label values in the family's order.
type series struct {
	labels []string
	v      float64
}

// writeSnapshot writes s in the Prometheus text exposition format
// (version 0.0.4): each family's HELP and TYPE, then its samples, families
// in descs order. The relay keeps no counters of its own here: every value
// comes from the one snapshot.
func writeSnapshot(b *bytes.Buffer, s Snapshot) {
	samples := make(map[*desc][]series, len(descs))
	add := func(d *desc, v float64, labels ...string) { samples[d] = append(samples[d], series{labels, v}) }
	counter := func(d *desc, v uint64, labels ...string) { add(d, float64(v), labels...) }
	gauge := add
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	gauge(descBuildInfo, 1, s.Version, s.Commit, s.GoVersion)
	gauge(descStart, float64(s.StartTime.UnixNano())/1e9)
	gauge(descCaptureUp, b2f(s.CaptureUp))
	for _, st := range s.Stages {
		counter(descStageIn, st.In, st.Name)
		counter(descStageOut, st.Out, st.Name)
		counter(descStageErrors, st.Errors, st.Name)
		counter(descStageRestarts, st.Restarts, st.Name)
		gauge(descStageRunning, b2f(st.State == "running"), st.Name)
	}
	for _, l := range s.Links {
		counter(descLinkBatches, l.Batches, l.Name)
		counter(descLinkPackets, l.Packets, l.Name)
		counter(descLinkHandedIn, l.HandedIn, l.Name)
		counter(descLinkDroppedBatches, l.DroppedBatches, l.Name)
		counter(descLinkDroppedPackets, l.DroppedPackets, l.Name)
		gauge(descLinkLength, float64(l.Len), l.Name)
		gauge(descLinkCapacity, float64(l.Cap), l.Name)
	}
	for reason, n := range s.Drops {
		counter(descDrops, n, reason)
	}
	counter(descKernelDrops, s.KernelDrops)
	counter(descMeshDrops, s.MeshKernelDrops)
	counter(descOffloadDatagrams, s.MeshOffload.SegmentedDatagrams, "sent")
	counter(descOffloadDatagrams, s.MeshOffload.CoalescedDatagrams, "received")
	counter(descOffloadMessages, s.MeshOffload.SegmentedMessages)
	gauge(descPeers, float64(len(s.Peers)))
	for _, p := range s.Peers {
		counter(descPeerTx, p.TxPackets, p.Addr)
		counter(descPeerTxBytes, p.TxBytes, p.Addr)
		counter(descPeerTxErrors, p.TxErrors, p.Addr)
		counter(descPeerRx, p.RxPackets, p.Addr)
		counter(descPeerRxBytes, p.RxBytes, p.Addr)
		counter(descPeerWithheld, p.WithheldIPv6, p.Addr)
		ipv6 := 0.0
		if strings.Contains(p.Capabilities, "ipv6") {
			ipv6 = 1
		}
		gauge(descPeerIPv6, ipv6, p.Addr)
		heard := 0.0
		if p.LastHeard != nil {
			heard = float64(p.LastHeard.UnixNano()) / 1e9
		}
		gauge(descPeerHeard, heard, p.Addr)
	}
	gauge(descNeighbours, float64(len(s.Neighbours)))
	gauge(descDedupEntries, float64(s.Dedup.Entries))
	counter(descDedupEvicted, s.Dedup.Evicted)
	for _, u := range s.UnknownSources {
		counter(descUnknown, u.Datagrams, u.Addr)
	}
	counter(descResolutions, s.Discovery.Resolutions)
	counter(descResFailures, s.Discovery.Failures)
	counter(descCoalescePauses, s.Coalesce.CapturePauses, "capture")
	counter(descCoalescePauses, s.Coalesce.ListenerPauses, "listener")
	counter(descProbes, s.Probes.Answered, "answered")
	counter(descProbes, s.Probes.Refused, "refused")
	for dir, c := range map[string]insight.Counters{"outbound": s.EPICS.Outbound, "inbound": s.EPICS.Inbound} {
		counter(descEPICSSearches, c.PVASearches, "pva", dir)
		counter(descEPICSSearches, c.CASearches, "ca", dir)
		counter(descEPICSBeacons, c.PVABeacons, "pva", dir)
		counter(descEPICSBeacons, c.CABeacons, "ca", dir)
		counter(descEPICSNames, c.Names, dir)
		counter(descEPICSReplies, c.Replies, dir)
		counter(descEPICSUndecoded, c.Malformed, dir, "malformed")
		counter(descEPICSUndecoded, c.Other, dir, "not_epics")
	}
	for _, d := range descs {
		writeFamily(b, d, samples[d])
	}
}

// writeFamily writes one family. A family without samples (no peers yet)
// still says what it is.
func writeFamily(b *bytes.Buffer, d *desc, ss []series) {
	b.WriteString("# HELP " + d.name + " " + escapeHelp(d.help) + "\n")
	b.WriteString("# TYPE " + d.name + " " + d.kind() + "\n")
	for _, s := range ss {
		b.WriteString(d.name)
		if len(d.labels) > 0 {
			b.WriteByte('{')
			for i, l := range d.labels {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(l + `="` + escapeLabel(s.labels[i]) + `"`)
			}
			b.WriteByte('}')
		}
		b.WriteByte(' ')
		b.WriteString(formatValue(s.v))
		b.WriteByte('\n')
	}
}

// formatValue writes integral values as integers (counters stay exact up
// to 2^53), others in Go's shortest form, which the format accepts.
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Per the text format, a label value escapes backslash, double quote and
// line feed; a HELP text backslash and line feed.
var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

// MetricsHandler serves /metrics (the relay's metrics, then the Go runtime's
// and the process's, github.com/VictoriaMetrics/metrics) and /healthz (200
// "ok" when Health passes, 503 with the problems otherwise) for snapshots
// from snapshot.
func MetricsHandler(snapshot func() Snapshot) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		writeSnapshot(&b, snapshot())
		metrics.WriteProcessMetrics(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(b.Bytes())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		s := snapshot()
		if err := s.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}
