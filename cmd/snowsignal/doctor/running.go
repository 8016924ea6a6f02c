package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// checkRelayRunning says whether a relay answers on the stats socket.
func checkRelayRunning(path string, s *snapshot, err error) Result {
	if err != nil {
		return ok("relay", "none answers on the stats socket %q (%v): checking the configuration only", path, err)
	}
	return ok("relay", "snowsignal %s running for %s on %s (stats socket %s)", s.Version,
		time.Duration(s.UptimeSeconds*float64(time.Second)).Round(time.Second), s.Config.Interface, path)
}

// dropAdvice explains one drop reason, and its fix. Reasons that are part of
// normal operation (several relays per segment, loops suppressed) are ok.
var dropAdvice = map[string]struct {
	status   Status
	why, fix string
}{
	"unknown_peer":        {Fail, "mesh datagrams from a host not in the peer set", "add it to --other-relays, or check SERVICENAME / --discover (or --accept-any-peer)"},
	"bad_auth":            {Fail, "mesh datagrams that do not verify: a peer with another key, or without one", "give every relay the same --mesh-key-file"},
	"replay":              {Warn, "authenticated datagrams replayed or reordered by more than 1984", "look for a device duplicating traffic between the relays"},
	"malformed_mesh":      {Warn, "datagrams on the mesh port that are no mesh datagram", "find the sender: something else sends to the mesh port"},
	"too_big":             {Fail, "frames larger than this interface's MTU", "use the same MTU on every segment (ip link set DEV mtu N)"},
	"send_error":          {Fail, "the kernel refused to send, or a peer's host bounced datagrams (ICMP port unreachable)", "check the peers below: a relay that does not run, or a firewall"},
	"rate_limited":        {Warn, "a client or peer over --rate-limit / --peer-rate-limit", "raise --rate-limit / --peer-rate-limit, or find the noisy client in `snowsignal stats`"},
	"truncated_frame":     {Warn, "frames cut short by a peer (the Python relay cuts frames after 1024 bytes)", "replace the Python relay, or keep broadcasts under 1024 bytes"},
	"not_broadcast":       {Warn, "frames whose IP destination is not a broadcast address", "check the peer's --broadcast-port and what sends to it"},
	"wrong_port":          {Warn, "frames for a port this relay does not relay", "use the same --broadcast-port on every relay"},
	"bad_source":          {Warn, "frames with an IP source no client can have", "find the sender: a misconfigured client"},
	"unmatched_fragment":  {Warn, "IP fragments whose first fragment was not relayed", "keep broadcasts under the MTU"},
	"not_ipv4":            {Warn, "frames that are not IPv4", "find the sender: a peer that is no SnowSignal relay"},
	"not_udp":             {Warn, "frames that are not UDP", "find the sender: a peer that is no SnowSignal relay"},
	"bad_ip_header":       {Warn, "frames with a broken IPv4 header", "find the sender"},
	"bad_udp_length":      {Warn, "frames with a wrong UDP length", "find the sender"},
	"malformed_frame":     {Warn, "frames that did not decode", "find the sender"},
	"duplicate":           {OK, "datagrams seen twice within --dedup-window (loops and redundant paths, suppressed)", ""},
	"same_segment":        {OK, "datagrams from a relay on this segment (their frames are already here)", ""},
	"other_injector":      {OK, "frames another relay on this segment injects", ""},
	"own_injection":       {OK, "this relay's own injections, seen again by its capture", ""},
	"neighbour_injection": {OK, "frames a neighbour relay injected, not forwarded again", ""},
	"stale":               {Warn, "frames that waited in this relay longer than --max-delay (it fell behind: a search storm, or too little CPU)", "give the relay more CPU, or raise --max-delay if late searches are still worth relaying"},
	"overload":            {Warn, "frames shed because the relay's queue stood over --queue-target for --queue-interval (it receives more than it can send: a search storm, or too little CPU)", "give the relay more CPU; or raise --queue-target, or set it to 0, to queue a storm (late, up to --max-delay) instead of shedding it"},
	"link_local_source":   {Warn, "IPv6 searches from a link-local source (fe80::/10), which no server on another segment can answer", "client uses a link-local source; give it a global or ULA address"},
}

// checkRunning compares two snapshots of the running relay: drop reasons
// whose counters moved, peers not heard from, neighbours, kernel drops and
// stages not running.
func checkRunning(a, b *snapshot) []Result {
	var out []Result
	dt := b.Time.Sub(a.Time).Round(100 * time.Millisecond)
	if !b.CaptureUp {
		out = append(out, fail("relay", "ip link set "+b.Config.Interface+" up; see the relay's log", "capture is down on %s", b.Config.Interface))
	}
	for _, st := range b.Stages {
		if st.State != "running" {
			out = append(out, fail("stage "+st.Name, "see the relay's log", "%s (restarts %d): %s", st.State, st.Restarts, st.LastError))
		}
	}
	reasons := make([]string, 0, len(b.Drops))
	for r := range b.Drops {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	// The relay's own window covers about the last minute; the two reads
	// only --sample. Take whichever is longer.
	delta := func(r string) uint64 {
		if b.Drops[r] < a.Drops[r] {
			return 0
		}
		return b.Drops[r] - a.Drops[r]
	}
	drops := dt
	if rd := b.RecentDrops; rd != nil && time.Duration(rd.Seconds*float64(time.Second)) > dt {
		drops = time.Duration(rd.Seconds * float64(time.Second)).Round(time.Second)
		delta = func(r string) uint64 { return rd.Drops[r] }
	}
	moved := 0
	for _, r := range reasons {
		d := delta(r)
		if d == 0 {
			continue
		}
		moved++
		adv, known := dropAdvice[r]
		if !known {
			adv.status, adv.why = Warn, "see docs/OBSERVABILITY.md"
		}
		subject := fmt.Sprintf("%s %d", r, d)
		if r == "unknown_peer" {
			from := unknownDelta(a, b)
			if from == "" && drops != dt {
				from = unknownSources(b) // moved before the sample: the relay's list
			}
			if from != "" {
				subject += " from " + from
			}
		}
		out = append(out, Result{Check: "drops", Status: adv.status, Message: fmt.Sprintf("%s in %s: %s", subject, drops, adv.why), Fix: adv.fix})
	}
	if moved == 0 {
		if drops < 100*time.Millisecond {
			out = append(out, ok("drops", "no drop counter moved between two reads (watch longer with --sample)"))
		} else {
			out = append(out, ok("drops", "no drop counter moved in %s", drops))
		}
	}
	if d := b.KernelDrops - a.KernelDrops; d > 0 && b.KernelDrops >= a.KernelDrops {
		out = append(out, warn("kernel drops", "the relay needs more CPU (GOMAXPROCS, a less loaded host), or fewer broadcasts",
			"%d frames dropped by the kernel on the capture socket in %s (its queue was full)", d, dt))
	}
	if d := b.MeshKernelDrops - a.MeshKernelDrops; d > 0 && b.MeshKernelDrops >= a.MeshKernelDrops {
		out = append(out, warn("kernel drops", "raise net.core.rmem_max (sysctl -w net.core.rmem_max=8388608), or give the relay more CPU",
			"%d mesh datagrams dropped by the kernel in %s (the mesh socket's receive buffer was full)", d, dt))
	}
	if o := b.MeshOffload; o != nil && b.Config.MeshOffload && !o.Sending {
		out = append(out, warn("mesh offload", "a route's device cannot complete UDP checksums (ethtool -k DEV: tx-checksumming off); turn it on, or run with --no-mesh-offload to silence this",
			"the kernel refused to segment mesh datagrams (EIO), so the relay sends each alone: it works, at more CPU per datagram under load"))
	}
	if len(b.Neighbours) > 0 {
		out = append(out, ok("neighbours", "relays heard on this segment: %s (they share the injections)", strings.Join(b.Neighbours, ", ")))
	} else {
		out = append(out, ok("neighbours", "no other relay heard on this segment"))
	}
	for _, p := range b.Peers {
		switch {
		// Silence alone is no fault: a peer sends only what its segment
		// broadcasts. The probe above says whether it would accept ours.
		case p.LastHeard == nil:
			out = append(out, ok("peer "+p.Addr, "not heard from since it joined the peer set: its segment relayed nothing here (if broadcasts are sent there, run `snowsignal doctor` on it)"))
		case b.Time.Sub(*p.LastHeard) > time.Minute:
			out = append(out, ok("peer "+p.Addr, "not heard from for %s: its segment relayed nothing here since (if broadcasts are sent there, run `snowsignal doctor` on it)",
				b.Time.Sub(*p.LastHeard).Round(time.Second)))
		}
	}
	return out
}

// unknownSources lists the sources outside the peer set the relay counted.
func unknownSources(b *snapshot) string {
	parts := make([]string, 0, len(b.UnknownSources))
	for _, s := range b.UnknownSources {
		parts = append(parts, s.Addr)
	}
	return strings.Join(parts, ", ")
}

// unknownDelta lists the sources outside the peer set whose counts moved.
func unknownDelta(a, b *snapshot) string {
	before := map[string]uint64{}
	for _, s := range a.UnknownSources {
		before[s.Addr] = s.Datagrams
	}
	var parts []string
	for _, s := range b.UnknownSources {
		if d := s.Datagrams - before[s.Addr]; s.Datagrams > before[s.Addr] {
			parts = append(parts, fmt.Sprintf("%s (%d)", s.Addr, d))
		}
	}
	if len(parts) == 1 {
		return strings.TrimSuffix(parts[0][:strings.Index(parts[0], " (")], " ")
	}
	return strings.Join(parts, ", ")
}
