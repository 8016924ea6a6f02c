//go:build linux

package assembly

import (
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
)

// Snapshot returns the relay's counters now. It is safe to call at any time,
// from any goroutine, and takes no lock the hot path takes per packet.
func (r *Relay) Snapshot() readout.Snapshot {
	now := time.Now()
	cfg := r.cfg
	o := cfg.Observability
	s := readout.Snapshot{
		Format:        readout.SnapshotFormat,
		Version:       orUnknown(o.Version),
		Commit:        orUnknown(o.Commit),
		GoVersion:     runtime.Version(),
		Time:          now,
		StartTime:     r.Metrics.Start,
		UptimeSeconds: now.Sub(r.Metrics.Start).Seconds(),
		Config: readout.ConfigSummary{
			Interface:                cfg.Interface,
			BroadcastPorts:           nonNil(cfg.BroadcastPorts),
			MeshPort:                 cfg.MeshPort,
			MeshBind:                 meshBind(cfg.MeshBind),
			OtherRelays:              nonNil(cfg.Peers),
			Discover:                 nonNil(cfg.Discover),
			DiscoveryIntervalSeconds: cfg.DiscoveryInterval.Seconds(),
			RebroadcastDestination:   cfg.RebroadcastDestination.String(),
			DedupWindowSeconds:       cfg.DedupWindow.Seconds(),
			HelloIntervalSeconds:     cfg.HelloInterval.Seconds(),
			AcceptAnyPeer:            cfg.AcceptAnyPeer,
			Authenticated:            len(cfg.MeshKeys) > 0,
			LocalDelivery:            cfg.LocalDelivery,
			StatsSocket:              o.StatsSocket,
			MetricsAddress:           o.MetricsAddress,
			SummaryIntervalSeconds:   o.SummaryInterval.Seconds(),
			RateLimit:                cfg.RateLimit,
			PeerRateLimit:            cfg.PeerRateLimit,
			CoalesceSeconds:          cfg.Coalesce.Seconds(),
			MaxDelaySeconds:          cfg.MaxDelay.Seconds(),
			QueueTargetSeconds:       cfg.QueueTarget.Seconds(),
			QueueIntervalSeconds:     cfg.QueueInterval.Seconds(),
			MeshOffload:              cfg.MeshOffload,
		},
		CaptureUp:       r.CaptureUp(),
		Stages:          r.Metrics.Stages(),
		Links:           r.Metrics.Links(),
		Drops:           r.Metrics.DropCounts(),
		KernelDrops:     r.KernelDrops(),
		MeshKernelDrops: r.MeshKernelDrops(),
		MeshOffload:     r.meshOffload(),
		Peers:           []readout.PeerStats{},
		Neighbours:      []string{},
		UnknownSources:  []readout.SourceCount{},
		Discovery: readout.DiscoveryStats{
			Resolutions: r.discovery.Resolutions.Load(),
			Failures:    r.discovery.Failures.Load(),
		},
		LocalListeners: r.locals != nil && r.locals.Present(),
		Coalesce: readout.CoalesceStats{
			CapturePauses:  r.captureCoalescer.Pauses(),
			ListenerPauses: r.listenerCoalescer.Pauses(),
		},
		EPICS:  r.obs.insight.Stats(),
		Probes: readout.ProbeStats{Answered: r.probes.Answered.Load(), Refused: r.probes.Limited.Load()},
	}
	if r.obs.window != nil {
		s.RecentDrops = r.obs.window.Recent(now, s.Drops)
	}
	set := r.Peers.Load()
	s.SelfMode = set.Self
	for _, p := range set.Peers {
		ps := readout.PeerStats{
			Addr: p.Addr.String(), Sources: p.Sources(),
			TxPackets: p.TxPackets.Load(), TxBytes: p.TxBytes.Load(), TxErrors: p.TxErrors.Load(),
			RxPackets: p.RxPackets.Load(), RxBytes: p.RxBytes.Load(),
			Capabilities: "unknown", WithheldIPv6: p.Withheld6.Load(),
			FirstSeen: p.FirstSeen,
		}
		if c, known := p.CapsKnown(now.UnixNano()); known {
			ps.Capabilities = c.String()
		}
		if t := p.LastHeard(); !t.IsZero() {
			ps.LastHeard = &t
		}
		s.Peers = append(s.Peers, ps)
	}
	if r.Segment != nil {
		for _, a := range r.Segment.Neighbours() {
			s.Neighbours = append(s.Neighbours, a.String())
		}
	}
	if r.Dedup != nil {
		s.Dedup = readout.DedupStats{Enabled: true, WindowSeconds: r.Dedup.Window().Seconds(),
			Entries: r.Dedup.Len(), Evicted: r.Dedup.Evicted.Load()}
	}
	unknown := r.UnknownSources()
	addrs := make([]netip.Addr, 0, len(unknown))
	for a := range unknown {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		s.UnknownSources = append(s.UnknownSources, readout.SourceCount{Addr: a.String(), Datagrams: unknown[a]})
	}
	clients, peerSources := r.RateLimited()
	s.RateLimited = readout.RateLimitedStats{Clients: sourceCounts(clients), Peers: sourceCounts(peerSources)}
	return s
}

func sourceCounts(src []ratelimit.Source) []readout.SourceCount {
	out := make([]readout.SourceCount, 0, len(src))
	for _, x := range src {
		out = append(out, readout.SourceCount{Addr: x.Addr.String(), Datagrams: x.Dropped})
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func meshBind(a netip.Addr) string {
	if !a.IsValid() {
		return netip.IPv4Unspecified().String()
	}
	return a.String()
}

// meshOffload reads the mesh socket's segmentation offload counters.
func (r *Relay) meshOffload() readout.MeshOffloadStats {
	o := r.conn.Offload()
	return readout.MeshOffloadStats{Sending: !o.Off, Receiving: o.Receiving, SegmentedMessages: o.Messages,
		SegmentedDatagrams: o.Datagrams, CoalescedDatagrams: o.Coalesced}
}
