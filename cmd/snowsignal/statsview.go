package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/insight"
)

// renderStats writes the compact human view of snapshot s: a header, then
// stages, links, drops, peers, neighbours, coalescing and EPICS top lists.
// With prev, the snapshot before it, counters get per-second rates.
func renderStats(w io.Writer, s, prev *readout.Snapshot) error {
	var dt float64
	if prev != nil {
		dt = s.Time.Sub(prev.Time).Seconds()
	}
	rate := func(cur, before uint64) string {
		if dt <= 0 || cur < before {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(cur-before)/dt)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	capture := "up"
	if !s.CaptureUp {
		capture = "DOWN"
	}
	fmt.Fprintf(w, "snowsignal %s (%s)  up %s  iface %s  ports %s  mesh :%d  capture %s\n",
		s.Version, s.Commit, fmtDuration(time.Duration(s.UptimeSeconds*float64(time.Second))), s.Config.Interface,
		joinPorts(s.Config.BroadcastPorts), s.Config.MeshPort, capture)
	if s.SelfMode {
		fmt.Fprintln(w, "self mode: no peers configured, relaying to this relay's own address")
	}

	prevStage := map[string][2]uint64{}
	if prev != nil {
		for _, st := range prev.Stages {
			prevStage[st.Name] = [2]uint64{st.In, st.Out}
		}
	}
	p("\nSTAGE\tSTATE\tIN\tOUT\tERRORS\tRESTARTS")
	if prev != nil {
		p("\tIN/s\tOUT/s")
	}
	p("\n")
	for _, st := range s.Stages {
		p("%s\t%s\t%d\t%d\t%d\t%d", st.Name, st.State, st.In, st.Out, st.Errors, st.Restarts)
		if prev != nil {
			b := prevStage[st.Name]
			p("\t%s\t%s", rate(st.In, b[0]), rate(st.Out, b[1]))
		}
		if st.LastError != "" && st.State != "running" {
			p("\t%s", st.LastError)
		}
		p("\n")
	}

	p("\nLINK\tQUEUE\tPACKETS\tDROPPED\n")
	for _, l := range s.Links {
		p("%s\t%d/%d\t%d\t%d\n", l.Name, l.Len, l.Cap, l.Packets, l.DroppedPackets)
	}

	reasons := make([]string, 0, len(s.Drops))
	for r, n := range s.Drops {
		if n > 0 {
			reasons = append(reasons, r)
		}
	}
	slices.Sort(reasons)
	// The kernel's drops, after the relay's own reasons.
	const kernelCapture, kernelMesh = "kernel (capture queue full)", "kernel (mesh socket buffer full)"
	kernel := func(snap *readout.Snapshot, r string) (uint64, bool) {
		switch r {
		case kernelCapture:
			return snap.KernelDrops, true
		case kernelMesh:
			return snap.MeshKernelDrops, true
		}
		return 0, false
	}
	for _, r := range []string{kernelCapture, kernelMesh} {
		if n, _ := kernel(s, r); n > 0 {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) == 0 {
		p("\nDROPS\tnone\n")
	} else {
		p("\nDROP REASON\tPACKETS")
		if prev != nil {
			p("\t/s")
		}
		p("\n")
		for _, r := range reasons {
			n, b := s.Drops[r], uint64(0)
			if prev != nil {
				b = prev.Drops[r]
			}
			if k, ok := kernel(s, r); ok {
				n = k
				if prev != nil {
					b, _ = kernel(prev, r)
				}
			}
			p("%s\t%d", r, n)
			if prev != nil {
				p("\t%s", rate(n, b))
			}
			p("\n")
		}
	}
	// What to do about the drops that a client's setting causes, below
	// the table so its columns stay aligned.
	for _, r := range reasons {
		if why, ok := pipeline.ReasonNamed(r); ok && why.Hint() != "" {
			p("%s: %s\n", r, why.Hint())
		}
	}

	if len(s.Peers) == 0 {
		p("\nPEERS\tnone\n")
	} else {
		prevPeer := map[string][2]uint64{}
		if prev != nil {
			for _, pe := range prev.Peers {
				prevPeer[pe.Addr] = [2]uint64{pe.TxPackets, pe.RxPackets}
			}
		}
		p("\nPEER\tSOURCES\tCAPS\tTX\tTX BYTES\tTX ERRORS\tRX\tRX BYTES\tLAST HEARD")
		if prev != nil {
			p("\tTX/s\tRX/s")
		}
		p("\n")
		for _, pe := range s.Peers {
			heard := "never"
			if pe.LastHeard != nil {
				heard = fmtDuration(s.Time.Sub(*pe.LastHeard)) + " ago"
			}
			caps := pe.Capabilities
			if pe.WithheldIPv6 > 0 {
				caps += fmt.Sprintf(" (%d IPv6 withheld)", pe.WithheldIPv6)
			}
			p("%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s", pe.Addr, pe.Sources, caps, pe.TxPackets, pe.TxBytes, pe.TxErrors, pe.RxPackets, pe.RxBytes, heard)
			if prev != nil {
				b := prevPeer[pe.Addr]
				p("\t%s\t%s", rate(pe.TxPackets, b[0]), rate(pe.RxPackets, b[1]))
			}
			p("\n")
		}
	}
	neighbours := "none"
	if len(s.Neighbours) > 0 {
		neighbours = strings.Join(s.Neighbours, ", ")
	}
	p("\nNEIGHBOURS\t%s\n", neighbours)
	if len(s.UnknownSources) > 0 {
		var u []string
		for _, src := range s.UnknownSources {
			u = append(u, fmt.Sprintf("%s (%d)", src.Addr, src.Datagrams))
		}
		p("UNKNOWN SOURCES\t%s\n", strings.Join(u, ", "))
	}
	// The socket readers' coalescing: one line, pauses with their rates.
	if s.Config.CoalesceSeconds <= 0 {
		p("COALESCE\toff\n")
	} else {
		window := time.Duration(math.Round(s.Config.CoalesceSeconds * float64(time.Second)))
		p("COALESCE\t%s window, pauses capture %d", window, s.Coalesce.CapturePauses)
		if prev != nil {
			p(" (%s/s)", rate(s.Coalesce.CapturePauses, prev.Coalesce.CapturePauses))
		}
		p(" listener %d", s.Coalesce.ListenerPauses)
		if prev != nil {
			p(" (%s/s)", rate(s.Coalesce.ListenerPauses, prev.Coalesce.ListenerPauses))
		}
		p("\n")
	}
	// Shedding by age: what each rule is set to, beside what it shed.
	seconds := func(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Second))) }
	var shed []string
	count := func(reason string) string {
		c := fmt.Sprint(s.Drops[reason])
		if prev != nil {
			c += fmt.Sprintf(" (%s/s)", rate(s.Drops[reason], prev.Drops[reason]))
		}
		return c
	}
	if s.Config.MaxDelaySeconds > 0 {
		shed = append(shed, fmt.Sprintf("stale past %s %s", seconds(s.Config.MaxDelaySeconds), count("stale")))
	}
	if s.Config.QueueTargetSeconds > 0 {
		shed = append(shed, fmt.Sprintf("overload (a queue over %s for %s) %s",
			seconds(s.Config.QueueTargetSeconds), seconds(s.Config.QueueIntervalSeconds), count("overload")))
	}
	if len(shed) == 0 {
		shed = append(shed, "off")
	}
	p("SHEDDING\t%s\n", strings.Join(shed, ", "))

	e := &s.EPICS
	p("\nEPICS\tPVA SEARCHES\tCA SEARCHES\tPV NAMES\tBEACONS\tUNDECODED\n")
	for _, d := range []struct {
		name string
		c    insight.Counters
	}{{"outbound", e.Outbound}, {"inbound", e.Inbound}} {
		c := d.c
		p("%s\t%d\t%d\t%d\t%d\t%d\n", d.name, c.PVASearches, c.CASearches, c.Names, c.PVABeacons+c.CABeacons, c.Malformed+c.Other)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	window := fmtDuration(time.Duration(e.WindowSeconds * float64(time.Second)))
	top := func(title string, list []insight.Top) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(tw, "\n%s (last %s)\tCOUNT\n", title, window)
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%d\n", t.Name, t.Count)
		}
	}
	top("TOP PV NAMES", e.TopNames)
	top("TOP CLIENTS", e.TopClients)
	top("TOP SERVERS (beacons)", e.TopServers)
	return tw.Flush()
}

// fmtDuration renders d compactly, to the second: "45s", "3m07s", "2h05m".
func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// joinPorts renders ports as "5076,5064".
func joinPorts(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}
