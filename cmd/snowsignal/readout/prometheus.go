package readout

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

// metricsNamespace prefixes every metric name.
const metricsNamespace = "snowsignal"

// metricDesc describes one metric.
func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, labels, nil)
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

	descDrops       = metricDesc("dropped_packets_total", "Packets dropped, by reason.", "reason")
	descKernelDrops = metricDesc("kernel_dropped_packets_total", "Frames the kernel dropped because the capture socket's queue was full.")
	descMeshDrops   = metricDesc("mesh_kernel_dropped_packets_total", "Datagrams from peers the kernel dropped because the mesh socket's receive buffer was full.")

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

// snapshotCollector exports one Snapshot per scrape.
type snapshotCollector struct {
	snapshot func() Snapshot
}

// Describe sends every metric's description.
func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuildInfo, descStart, descCaptureUp,
		descStageIn, descStageOut, descStageErrors, descStageRestarts, descStageRunning,
		descLinkBatches, descLinkPackets, descLinkHandedIn, descLinkDroppedBatches, descLinkDroppedPackets, descLinkLength, descLinkCapacity,
		descDrops, descKernelDrops, descMeshDrops, descPeers, descPeerTx, descPeerTxBytes, descPeerTxErrors, descPeerRx, descPeerRxBytes, descPeerHeard,
		descPeerWithheld, descPeerIPv6,
		descNeighbours, descDedupEntries, descDedupEvicted, descUnknown, descResolutions, descResFailures,
		descCoalescePauses, descProbes,
		descEPICSSearches, descEPICSBeacons, descEPICSNames, descEPICSReplies, descEPICSUndecoded} {
		ch <- d
	}
}

// Collect sends the metrics of a fresh snapshot.
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
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
}

// MetricsHandler serves /metrics (the relay's collector plus the Go runtime
// and process collectors) and /healthz (200 "ok" when Health passes, 503
// with the problems otherwise) for snapshots from snapshot.
func MetricsHandler(snapshot func() Snapshot) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(snapshotCollector{snapshot: snapshot},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 5 * time.Second}))
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
