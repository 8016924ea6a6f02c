package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// showIsolation sends a broadcast before any relay runs and checks that it
// does not reach the server: the lab isolates the segments.
func (r *rig) showIsolation(ctx context.Context, w io.Writer) error {
	dst := netip.AddrPortFrom(r.client.Broadcast, demoPort)
	fmt.Fprintf(w, "1. Without relays, the client broadcasts to %s ... ", dst)
	probe := []byte("is anyone on segment b listening?")
	if _, err := r.cl.WriteToUDPAddrPort(probe, dst); err != nil {
		return fmt.Errorf("demo: send: %w", err)
	}
	if n := countCopies(ctx, r.srv, probe, demoQuiet); n != 0 {
		fmt.Fprintln(w, "the server received it!")
		return errors.New("demo: a broadcast crossed the segments without relays: the lab does not isolate them")
	}
	fmt.Fprintf(w, "nothing reached the server in %s. ✓\n", demoQuiet)
	return nil
}

// sends are the client's broadcasts: to the subnet and the limited
// broadcast address, small and full-size, and one to a port not relayed.
func (r *rig) sends() []demoSend {
	limited := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	subnet := r.client.Broadcast
	return []demoSend{
		{"PVAccess search EP:TEMP", netip.AddrPortFrom(subnet, demoPort), pvaSearch(1, r.clientPort, 0x10203041, "EP:TEMP"), true},
		{"PVAccess search EP:TEMP", netip.AddrPortFrom(limited, demoPort), pvaSearch(2, r.clientPort, 0x10203042, "EP:TEMP"), true},
		{"1000 bytes", netip.AddrPortFrom(subnet, demoPort), demoPayload(1000, 3), true},
		{"1472 bytes (a full frame)", netip.AddrPortFrom(limited, demoPort), demoPayload(1472, 4), true},
		{"to port 5077", netip.AddrPortFrom(subnet, demoOtherPort), demoPayload(10, 5), false},
	}
}

// sendAll sends each broadcast and collects what the server saw of it.
func (r *rig) sendAll(ctx context.Context, sends []demoSend) ([]demoResult, error) {
	sn, err := r.server.Sniff(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	results := make([]demoResult, len(sends))
	for i, s := range sends {
		if _, err := r.cl.WriteToUDPAddrPort(s.payload, s.dst); err != nil {
			return nil, fmt.Errorf("demo: send to %s: %w", s.dst, err)
		}
		conn := r.srv
		if s.dst.Port() == demoOtherPort {
			conn = r.srvOther
		}
		results[i] = receive(ctx, conn, sn, s)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return results, nil
}

// checkReply has the server answer the first search by unicast, straight
// to the client, and reports whether the client received it (true when
// the search never arrived: the table has counted that failure).
func (r *rig) checkReply(ctx context.Context, w io.Writer, first demoResult) bool {
	if first.copies == 0 {
		return true
	}
	reply := []byte("search response for EP:TEMP")
	var ok bool
	if _, err := r.srv.WriteToUDPAddrPort(reply, first.from); err == nil {
		ok = arrives(ctx, r.cl, reply, demoArrival)
	}
	mark := "✓"
	if !ok {
		mark = "✗ (it did not arrive)"
	}
	fmt.Fprintf(w, "\n   The server replied by unicast to %s; the client received it. %s\n", first.from, mark)
	return ok
}

// receive collects what the server's socket conn and the sniffer on its
// eth0 (if sn is not nil) saw of s: every copy within demoArrival (or demoQuiet for one that
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
	if sn == nil {
		return r
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
