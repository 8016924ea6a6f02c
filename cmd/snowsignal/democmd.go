package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// DemoCmd shows two relays at work in a lab of network namespaces.
type DemoCmd struct {
	Verbose     bool   `short:"v" help:"Also print the relays' log lines as they come."`
	RelayBinary string `hidden:"" type:"path" placeholder:"PATH" help:"snowsignal binary the relays run (default: this program)."`
}

// Demo timing. A relayed datagram crosses the lab in well under a
// millisecond; these bounds only matter when something is wrong.
const (
	demoQuiet   = 300 * time.Millisecond // listening to show nothing arrives
	demoArrival = 2 * time.Second        // waiting for a datagram that must arrive
)

// demoPorts: the relayed PVAccess port and one the relays must ignore.
const (
	demoPort      = 5076
	demoOtherPort = 5077
)

// demoSend is one datagram the client sends.
type demoSend struct {
	what    string
	dst     netip.AddrPort
	payload []byte
	relayed bool // whether it must reach the server
}

// demoResult is what the server saw of one demoSend.
type demoResult struct {
	copies int            // datagrams the server's socket received
	from   netip.AddrPort // their source, as the socket reports it
	frame  netlab.Frame   // the frame on segment b, if sniffed
	sniff  bool
}

// Run builds the lab, relays a few broadcasts and tears the lab down,
// also on Ctrl-C.
func (d DemoCmd) Run(o *stdio) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin := d.RelayBinary
	if bin == "" {
		var err error
		if bin, err = labrelay.BinaryPath(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	err := runDemo(ctx, o.Out, bin, d.Verbose)
	if ctx.Err() != nil {
		return errors.Join(errors.New("demo: interrupted"), err)
	}
	return err
}

// runDemo is the demo, writing to w and running bin for the relays.
func runDemo(ctx context.Context, w io.Writer, bin string, verbose bool) (err error) {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("demo: building the lab of network namespaces needs root (%v); run: sudo go run ./cmd/snowsignal demo", err)
	}
	if !haveIP() {
		return errors.New("demo: needs the ip command (iproute2) to run the relays in namespaces; install it, e.g. apt-get install iproute2")
	}
	l, err := netlab.NewSwarm(netlab.TwoSegmentSwarm())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: removing the lab: %w", cerr))
			return
		}
		fmt.Fprintf(w, "\nRemoved the lab: no namespace of %s is left.\n", l.ID())
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	client, relayA, server, relayB := l.Host("client"), l.Host("relay-a"), l.Host("server"), l.Host("relay-b")

	fmt.Fprintf(w, `SnowSignal demo: relaying UDP broadcasts between two network segments.

The lab (network namespaces %s-*) is one subnet, %s, on two segments of a
switch that drops IPv4 broadcasts between them but lets unicast cross, like a Docker
Swarm overlay network:
  segment a: client %s, relay-a %s
  segment b: server %s, relay-b %s

`, l.ID(), client.Prefix, client.IP, relayA.IP, server.IP, relayB.IP)

	cl, err := client.BroadcastUDP("0.0.0.0:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	srv, err := server.ListenUDP(fmt.Sprintf("0.0.0.0:%d", demoPort))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	srvOther, err := server.ListenUDP(fmt.Sprintf("0.0.0.0:%d", demoOtherPort))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	clientPort := uint16(cl.LocalAddr().(*net.UDPAddr).Port)

	// 1. Without relays nothing crosses.
	dst := netip.AddrPortFrom(client.Broadcast, demoPort)
	fmt.Fprintf(w, "1. Without relays, the client broadcasts to %s ... ", dst)
	probe := []byte("is anyone on segment b listening?")
	if _, err := cl.WriteToUDPAddrPort(probe, dst); err != nil {
		return fmt.Errorf("demo: send: %w", err)
	}
	if n := countCopies(ctx, srv, probe, demoQuiet); n != 0 {
		fmt.Fprintln(w, "the server received it!")
		return errors.New("demo: a broadcast crossed the segments without relays: the lab does not isolate them")
	}
	fmt.Fprintf(w, "nothing reached the server in %s. ✓\n", demoQuiet)

	// 2. Start the relays: this program's run command, as real processes.
	fmt.Fprintln(w, "2. Starting a relay on each segment (the real `snowsignal run`, one process per namespace):")
	opts := labrelay.Options{}
	if verbose {
		opts.Echo = func(line string) { fmt.Fprintln(w, "     | "+line) }
	}
	var relays []*labrelay.Relay
	defer func() {
		for _, r := range relays {
			r.Stop()
		}
	}()
	for _, pair := range [][2]*netlab.Host{{relayA, relayB}, {relayB, relayA}} {
		args := []string{"-t", netlab.IfName, "--other-relays", pair[1].IP.String()}
		r, err := opts.Start(ctx, bin, pair[0], args...)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		relays = append(relays, r)
		// The peer set is filled just after the relay is ready; until then
		// it would drop the other relay's datagrams. Best effort: a relay
		// that never logs it shows up in the table below.
		r.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), demoArrival)
		fmt.Fprintf(w, "     %-8s pid %-7d snowsignal run %s\n", pair[0].Name, r.Pid(), strings.Join(args, " "))
	}

	// 3. Broadcasts from the client.
	limited := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	sends := []demoSend{
		{"PVAccess search EP:TEMP", netip.AddrPortFrom(client.Broadcast, demoPort), pvaSearch(1, clientPort, 0x10203041, "EP:TEMP"), true},
		{"PVAccess search EP:TEMP", netip.AddrPortFrom(limited, demoPort), pvaSearch(2, clientPort, 0x10203042, "EP:TEMP"), true},
		{"1000 bytes", netip.AddrPortFrom(client.Broadcast, demoPort), demoPayload(1000, 3), true},
		{"1472 bytes (a full frame)", netip.AddrPortFrom(limited, demoPort), demoPayload(1472, 4), true},
		{"to port 5077", netip.AddrPortFrom(client.Broadcast, demoOtherPort), demoPayload(10, 5), false},
	}
	fmt.Fprintf(w, "3. The client (%s, port %d) sends broadcasts; what reached the server on segment b:\n\n", client.IP, clientPort)
	sn, err := server.Sniff(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	results := make([]demoResult, len(sends))
	for i, s := range sends {
		if _, err := cl.WriteToUDPAddrPort(s.payload, s.dst); err != nil {
			return fmt.Errorf("demo: send to %s: %w", s.dst, err)
		}
		conn := srv
		if s.dst.Port() == demoOtherPort {
			conn = srvOther
		}
		results[i] = receive(ctx, conn, sn, s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	delivered, failed := printTable(w, sends, results, netip.AddrPortFrom(client.IP, clientPort), relayB)

	// The server answers the first search by unicast, straight to the client.
	var replyOK bool
	if r := results[0]; r.copies > 0 {
		reply := []byte("search response for EP:TEMP")
		if _, err := srv.WriteToUDPAddrPort(reply, r.from); err == nil {
			replyOK = arrives(ctx, cl, reply, demoArrival)
		}
		mark := "✓"
		if !replyOK {
			mark, failed = "✗ (it did not arrive)", failed+1
		}
		fmt.Fprintf(w, "\n   The server replied by unicast to %s; the client received it. %s\n", r.from, mark)
	}

	// 4. What the relays counted: their last log line, written on SIGTERM.
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
	relays = nil

	if failed > 0 {
		return fmt.Errorf("demo: %d of the checks above failed: the relays did not deliver as they should", failed)
	}
	fmt.Fprintf(w, "\nSuccess: %d broadcasts crossed to segment b, each exactly once, with the client's address and port kept; the one to port %d did not.\n", delivered, demoOtherPort)
	return nil
}

// receive collects what the server's socket conn and the sniffer on its
// eth0 saw of s: every copy within demoArrival (or demoQuiet for one that
// must not arrive), plus a short wait for duplicates.
func receive(ctx context.Context, conn *net.UDPConn, sn *netlab.Sniffer, s demoSend) demoResult {
	var r demoResult
	wait := demoArrival
	if !s.relayed {
		wait = demoQuiet
	}
	end := time.Now().Add(wait)
	buf := make([]byte, 65536)
	for ctx.Err() == nil && time.Now().Before(end) {
		conn.SetReadDeadline(readDeadline(end))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue // deadline: look at ctx and the clock again
		}
		if !bytes.Equal(buf[:n], s.payload) {
			continue
		}
		r.copies++
		r.from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if r.copies == 1 && s.relayed {
			end = time.Now().Add(demoQuiet / 3) // any duplicate comes right behind
		}
	}
	frames, _ := sn.Collect(50*time.Millisecond, func(f netlab.Frame) bool {
		_, _, p, ok := f.UDP()
		return ok && !f.Outgoing() && bytes.Equal(p, s.payload)
	})
	if len(frames) > 0 {
		r.frame, r.sniff = frames[0], true
	}
	return r
}

// printTable prints one row per send and returns how many relayed
// broadcasts arrived as they should (once, from the client's address and
// port) and how many sends went wrong.
func printTable(w io.Writer, sends []demoSend, results []demoResult, client netip.AddrPort, relayB *netlab.Host) (delivered, failed int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "     sent\tto\tsize\treceived by the server (segment b)")
	for i, s := range sends {
		r := results[i]
		got := "nothing"
		switch {
		case r.copies > 0 && r.sniff:
			src, dst, p, _ := r.frame.UDP()
			got = fmt.Sprintf("%s → %s, %d B, broadcast by relay-b", src, dst, len(p))
			if !bytes.Equal(r.frame.Src(), relayB.MAC) {
				got = fmt.Sprintf("%s → %s, %d B, from Ethernet address %s", src, dst, len(p), r.frame.Src())
			}
		case r.copies > 0:
			got = fmt.Sprintf("from %s, %d B", r.from, len(s.payload))
		}
		if r.copies > 1 {
			got += fmt.Sprintf(", %d copies!", r.copies)
		}
		ok := r.copies == 0
		if s.relayed {
			ok = r.copies == 1 && r.from == client
			if ok {
				delivered++
			}
		} else {
			got += fmt.Sprintf(" (port %d is not relayed)", s.dst.Port())
		}
		mark := "✓"
		if !ok {
			mark, failed = "✗", failed+1
		}
		fmt.Fprintf(tw, "     %s\t%s\t%d B\t%s\t%s\n", s.what, s.dst, len(s.payload), got, mark)
	}
	tw.Flush()
	return delivered, failed
}

// countCopies counts the datagrams equal to p that conn receives within d.
func countCopies(ctx context.Context, conn *net.UDPConn, p []byte, d time.Duration) int {
	return readMatching(ctx, conn, p, d, false)
}

// arrives reports whether conn receives a datagram equal to p within d.
func arrives(ctx context.Context, conn *net.UDPConn, p []byte, d time.Duration) bool {
	return readMatching(ctx, conn, p, d, true) > 0
}

// readMatching counts datagrams equal to p for up to d, or until the first
// one if first is set. It reads in short slices so Ctrl-C ends it quickly.
func readMatching(ctx context.Context, conn *net.UDPConn, p []byte, d time.Duration, first bool) int {
	n := 0
	end := time.Now().Add(d)
	buf := make([]byte, 65536)
	for ctx.Err() == nil && time.Now().Before(end) {
		conn.SetReadDeadline(readDeadline(end))
		m, _, err := conn.ReadFromUDPAddrPort(buf)
		if err == nil && bytes.Equal(buf[:m], p) {
			n++
			if first {
				break
			}
		}
	}
	return n
}

// readDeadline returns the deadline of one read: 100 ms from now, or end if
// sooner. Reads are short so Ctrl-C ends the demo quickly.
func readDeadline(end time.Time) time.Time {
	if t := time.Now().Add(100 * time.Millisecond); t.Before(end) {
		return t
	}
	return end
}

// dropSummary lists the non-zero drop counters.
func dropSummary(drops map[string]uint64) string {
	var parts []string
	for reason, n := range drops {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", reason, n))
		}
	}
	if len(parts) == 0 {
		return "dropped nothing"
	}
	slices.Sort(parts)
	return "dropped: " + strings.Join(parts, ", ")
}

// demoPayload returns n bytes starting with a tag unique to the send.
func demoPayload(n int, tag byte) []byte {
	p := bytes.Repeat([]byte{'.'}, n)
	copy(p, fmt.Sprintf("snowsignal demo %d, %d bytes ", tag, n))
	return p
}

// haveIP reports whether the ip command (iproute2) is installed, where
// netlab.Host.Command looks for it.
func haveIP() bool {
	if _, err := exec.LookPath("ip"); err == nil {
		return true
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
