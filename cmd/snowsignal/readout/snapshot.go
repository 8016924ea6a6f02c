// Package readout is what a relay shows of itself besides its logs: the
// Snapshot of its counters (`snowsignal stats`, the stats socket), its
// Health, the Prometheus collector and the periodic summary line. It reads
// snapshots through a function and knows nothing of how a relay is built
// (cmd/snowsignal/assembly imports it, never the other way round).
package readout

import (
	"time"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

// SnapshotFormat is the version of the Snapshot JSON layout. It changes when
// a field is removed or changes meaning, not when one is added; `snowsignal
// stats` refuses a snapshot of another format.
const SnapshotFormat = 1

// A Snapshot is everything a relay counts, at one instant. Its JSON field
// names are stable and documented in docs/OBSERVABILITY.md; `snowsignal
// stats --json` prints it, and the Prometheus exporter reads it.
type Snapshot struct {
	// Format is SnapshotFormat.
	Format int `json:"format"`
	// Version, Commit and GoVersion identify the build.
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	// Time is when the snapshot was taken; StartTime when the relay started.
	Time          time.Time `json:"time"`
	StartTime     time.Time `json:"start_time"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// Config sums up the relay's configuration (never its keys).
	Config ConfigSummary `json:"config"`
	// CaptureUp reports whether the capture socket is open on an
	// interface that is up.
	CaptureUp bool `json:"capture_up"`
	// Stages are the pipeline's stages, in the order they were built.
	Stages []pipeline.StageStats `json:"stages"`
	// Links are the queues between stages.
	Links []pipeline.LinkStats `json:"links"`
	// Drops counts dropped packets by reason; every reason is present,
	// zero or not.
	Drops map[string]uint64 `json:"drops"`
	// RecentDrops is how much each drop counter moved over about the last
	// minute; present while the stats socket is on (snowsignal doctor reads
	// it).
	RecentDrops *RecentDrops `json:"recent_drops,omitempty"`
	// KernelDrops counts frames the kernel dropped because the capture
	// socket's queue was full (PACKET_STATISTICS).
	KernelDrops uint64 `json:"kernel_drops"`
	// MeshKernelDrops counts datagrams the kernel dropped because the mesh
	// socket's receive buffer was full (the socket's sk_drops, as in the
	// drops column of /proc/net/udp).
	MeshKernelDrops uint64 `json:"mesh_kernel_drops"`
	// MeshOffload is what the mesh socket's segmentation offload did.
	MeshOffload MeshOffloadStats `json:"mesh_offload"`
	// SelfMode reports that no peer is configured and the relay sends to
	// its own address, for testing.
	SelfMode bool `json:"self_mode"`
	// Peers are the relays of the current peer set, in address order.
	Peers []PeerStats `json:"peers"`
	// Neighbours are the relays heard on this relay's own segment.
	Neighbours []string `json:"neighbours"`
	// Dedup is the duplicate-suppression cache.
	Dedup DedupStats `json:"dedup"`
	// UnknownSources counts mesh datagrams from sources outside the peer
	// set, by source (up to 256 sources).
	UnknownSources []SourceCount `json:"unknown_sources"`
	// Discovery counts peer name resolutions.
	Discovery DiscoveryStats `json:"discovery"`
	// RateLimited lists, per side, the sources whose packets a token bucket
	// dropped, most drops first (empty when the limits are off).
	RateLimited RateLimitedStats `json:"rate_limited"`
	// LocalListeners reports whether a UDP socket on this host is bound to
	// a relayed port, or that is not known (the relay looks every second
	// while it injects): local delivery copies relayed frames to lo while
	// it is true. False without local delivery.
	LocalListeners bool `json:"local_listeners"`
	// Coalesce counts the socket readers' pauses (--coalesce).
	Coalesce CoalesceStats `json:"coalesce"`
	// Probes counts the answers to `snowsignal doctor`'s probes.
	Probes ProbeStats `json:"probes"`
	// EPICS is what the relay saw of the EPICS searches and beacons it
	// carried.
	EPICS insight.Stats `json:"epics"`
}

// ConfigSummary is the configuration a snapshot shows.
type ConfigSummary struct {
	Interface                string   `json:"interface"`
	BroadcastPorts           []uint16 `json:"broadcast_ports"`
	MeshPort                 uint16   `json:"mesh_port"`
	MeshBind                 string   `json:"mesh_bind"`
	OtherRelays              []string `json:"other_relays"`
	Discover                 []string `json:"discover"`
	DiscoveryIntervalSeconds float64  `json:"discovery_interval_seconds"`
	RebroadcastDestination   string   `json:"rebroadcast_destination"`
	DedupWindowSeconds       float64  `json:"dedup_window_seconds"`
	HelloIntervalSeconds     float64  `json:"hello_interval_seconds"`
	AcceptAnyPeer            bool     `json:"accept_any_peer"`
	// Authenticated reports that the mesh uses the authenticated format.
	Authenticated          bool    `json:"authenticated"`
	LocalDelivery          bool    `json:"local_delivery"`
	StatsSocket            string  `json:"stats_socket"`
	MetricsAddress         string  `json:"metrics_address"`
	SummaryIntervalSeconds float64 `json:"summary_interval_seconds"`
	// RateLimit and PeerRateLimit are the token bucket rates in packets
	// per second per client and per peer; zero is off.
	RateLimit     int `json:"rate_limit"`
	PeerRateLimit int `json:"peer_rate_limit"`
	// CoalesceSeconds is the socket readers' coalescing window
	// (--coalesce); zero is off.
	CoalesceSeconds float64 `json:"coalesce_seconds"`
	// MaxDelaySeconds is how long a frame may wait in the relay before it
	// is shed as stale (--max-delay); zero is off.
	MaxDelaySeconds float64 `json:"max_delay_seconds"`
	// QueueTargetSeconds and QueueIntervalSeconds bound a standing queue
	// (--queue-target, --queue-interval): frames over the target are shed
	// as overload once the queue stood over it for an interval; a zero
	// target is off.
	QueueTargetSeconds   float64 `json:"queue_target_seconds"`
	QueueIntervalSeconds float64 `json:"queue_interval_seconds"`
	// MeshOffload reports that the mesh socket may segment and coalesce
	// (--mesh-offload).
	MeshOffload bool `json:"mesh_offload"`
}

// CoalesceStats count the pauses of the two socket readers
// (pipeline.Coalescer). A pause is one wait of the coalescing window a
// reader makes after passing a batch on, so that datagrams arriving
// meanwhile are read in one wake-up; a reader pauses only while batches
// keep coming more often than one every two windows. A count that grows
// means the relay is under sustained load and trades up to one window of
// latency for fewer wake-ups; a count that stays put means it is not (or
// coalescing is off).
type CoalesceStats struct {
	// CapturePauses counts the capture stage's pauses (broadcasts read
	// from the target interface).
	CapturePauses uint64 `json:"capture_pauses"`
	// ListenerPauses counts the listener stage's pauses (datagrams read
	// from the mesh socket).
	ListenerPauses uint64 `json:"listener_pauses"`
}

// MeshOffloadStats count the mesh socket's segmentation offload
// (netio/meshconn, offload.go): runs of datagrams to one peer sent as one
// message that the kernel segments (UDP_SEGMENT), and datagrams that
// arrived coalesced (UDP_GRO). The datagrams on the wire are the same
// either way.
type MeshOffloadStats struct {
	// Sending is false once the kernel refused to segment (a route whose
	// device cannot complete checksums); the relay then sends one datagram
	// per message.
	Sending bool `json:"sending"`
	// Receiving is false if the kernel has no UDP_GRO (before Linux 5.0).
	Receiving bool `json:"receiving"`
	// SegmentedMessages and SegmentedDatagrams count the messages of the
	// send calls that segmented some, and the datagrams they held.
	SegmentedMessages  uint64 `json:"segmented_messages"`
	SegmentedDatagrams uint64 `json:"segmented_datagrams"`
	// CoalescedDatagrams counts datagrams that arrived coalesced with
	// others.
	CoalescedDatagrams uint64 `json:"coalesced_datagrams"`
}

// ProbeStats count the probes (docs/MESH-PROTOCOL.md) this relay answered,
// and those it refused: over its rate limit, or the answer not sent.
type ProbeStats struct {
	Answered uint64 `json:"answered"`
	Refused  uint64 `json:"refused"`
}

// RateLimitedStats are the sources a token bucket dropped packets from.
type RateLimitedStats struct {
	// Clients are IP sources of captured broadcasts.
	Clients []SourceCount `json:"clients"`
	// Peers are mesh sources.
	Peers []SourceCount `json:"peers"`
}

// PeerStats are one peer's counters.
type PeerStats struct {
	// Addr is the peer's mesh address, IP:port.
	Addr string `json:"addr"`
	// Sources says where the peer came from: "static", "self" or a DNS
	// name, comma-separated when several.
	Sources string `json:"sources"`
	// TxPackets and TxBytes count mesh datagrams sent to the peer;
	// TxErrors the sends the kernel refused.
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxErrors  uint64 `json:"tx_errors"`
	// RxPackets and RxBytes count mesh datagrams received from the peer.
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	// Capabilities are what the peer announced and still holds
	// (docs/MESH-PROTOCOL.md): "ipv6", "none", or "unknown" for a peer that
	// never announced (an older or the Python relay) or whose announcement
	// expired. Only an "ipv6" peer is sent IPv6 frames.
	Capabilities string `json:"capabilities"`
	// WithheldIPv6 counts IPv6 frames not sent to the peer because it has
	// not announced ipv6 (not drops: other peers got them).
	WithheldIPv6 uint64 `json:"withheld_ipv6"`
	// FirstSeen is when the peer joined the set; LastHeard when a
	// datagram last came from it (null: never).
	FirstSeen time.Time  `json:"first_seen"`
	LastHeard *time.Time `json:"last_heard"`
}

// DedupStats describe the duplicate-suppression cache.
type DedupStats struct {
	Enabled       bool    `json:"enabled"`
	WindowSeconds float64 `json:"window_seconds"`
	// Entries is how many datagrams are remembered now.
	Entries int `json:"entries"`
	// Evicted counts entries dropped before their window ended because
	// the cache was full.
	Evicted uint64 `json:"evicted"`
}

// SourceCount is a count of datagrams from one source.
type SourceCount struct {
	Addr      string `json:"addr"`
	Datagrams uint64 `json:"datagrams"`
}

// DiscoveryStats count peer name resolutions.
type DiscoveryStats struct {
	// Resolutions counts completed resolution rounds.
	Resolutions uint64 `json:"resolutions"`
	// Failures counts failed lookups.
	Failures uint64 `json:"failures"`
}

// Stage returns the named stage's counters, and whether there is one.
func (s *Snapshot) Stage(name string) (pipeline.StageStats, bool) {
	for _, st := range s.Stages {
		if st.Name == name {
			return st, true
		}
	}
	return pipeline.StageStats{}, false
}
