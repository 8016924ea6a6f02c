package demo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
)

// introduce describes the lab.
func introduce(w io.Writer, r *rig) {
	fmt.Fprintf(w, `SnowSignal demo: relaying UDP broadcasts between two network segments.

The lab (network namespaces %s-*) is one subnet, %s, on two segments of a
switch that drops IPv4 broadcasts between them but lets unicast cross, like a Docker
Swarm overlay network:
  segment a: client %s, relay-a %s
  segment b: server %s, relay-b %s

`, r.lab.ID(), r.client.Prefix, r.client.IP, r.relayA.IP, r.server.IP, r.relayB.IP)
	if r.client.IP6.IsValid() {
		fmt.Fprintf(w, `With --ipv6 the hosts also have IPv6 (ULA) addresses, and the switch drops UDP
to IPv6 multicast between the segments as a router would:
  segment a: client %s, relay-a %s
  segment b: server %s, relay-b %s

`, r.client.IP6, r.relayA.IP6, r.server.IP6, r.relayB.IP6)
	}
}

func narrateRelaysStarting(w io.Writer) {
	fmt.Fprintln(w, "2. Starting a relay on each segment (the real `snowsignal run`, one process per namespace):")
}

func narrateRelay(w io.Writer, rl *labrelay.Relay, args []string) {
	fmt.Fprintf(w, "     %-8s pid %-7d snowsignal run %s\n", rl.Host.Name, rl.Pid(), strings.Join(args, " "))
}

func narrateSends(w io.Writer, r *rig) {
	fmt.Fprintf(w, "3. The client (%s, port %d) sends broadcasts; what reached the server on segment b:\n\n", r.client.IP, r.clientPort)
}

// reportCounters stops the relays and prints what each counted, from the
// log line a relay writes when it stops; it returns how many did not stop
// cleanly.
func reportCounters(w io.Writer, relays []*labrelay.Relay) (failed int) {
	fmt.Fprintln(w, "\n4. What the relays counted (from the log line each writes when it stops):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range relays {
		if err := r.Stop(); err != nil {
			fmt.Fprintf(tw, "     %s\tdid not stop cleanly: %v\n", r.Host.Name, err)
			failed++
			continue
		}
		c, err := r.FinalCounters()
		if err != nil {
			fmt.Fprintf(tw, "     %s\t%v\n", r.Host.Name, err)
			continue
		}
		fmt.Fprintf(tw, "     %s\tcaptured %d\tsent %d to the mesh\treceived %d from the mesh (hellos included)\tinjected %d\t%s\n",
			r.Host.Name, c.Stages["capture"].Out, c.Stages["fanout"].Out, c.Stages["listener"].Out, c.Stages["inject"].Out, dropSummary(c.Drops))
	}
	tw.Flush()
	return failed
}

func narrateSuccess(w io.Writer, delivered int) {
	fmt.Fprintf(w, "\nSuccess: %d broadcasts crossed to segment b, each exactly once, with the client's address and port kept; the one to port %d did not.\n", delivered, demoOtherPort)
}
