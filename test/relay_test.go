package test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// Ports of the lab's traffic.
const (
	pvaPort   = 5076 // relayed (the default --broadcast-port)
	otherPort = 5077 // not relayed
	meshPort  = 7124 // the default --mesh-port; hellos go to it too
)

// TestRelayDeliversBroadcasts: directed and limited broadcasts from the
// client, of 16, 1000 and 1472 bytes (a full 1500-byte IP packet, whose
// 1516-byte mesh datagram the kernel fragments between the relays), reach
// a socket on the server with the client's source address and port and the
// payload unchanged, and the server's unicast reply reaches the client.
func TestRelayDeliversBroadcasts(t *testing.T) {
	s := startSwarm(t)
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	cl := broadcaster(t, s.client)
	clientAddr := localAddr(s.client, cl)
	for _, dst := range []netip.Addr{s.client.Broadcast, netip.AddrFrom4([4]byte{255, 255, 255, 255})} {
		for _, size := range []int{16, 1000, 1472} {
			t.Run(fmt.Sprintf("%s/%d", dst, size), func(t *testing.T) {
				p := payload(t, size)
				send(t, cl, p, netip.AddrPortFrom(dst, pvaPort))
				got, err := recvMatching(t, srv, p)
				if err != nil {
					t.Fatal(err)
				}
				if got.from != clientAddr {
					t.Errorf("server saw source %s, want the client's %s", got.from, clientAddr)
				}

				reply := append([]byte("reply:"), p[:8]...)
				if _, err := srv.WriteToUDPAddrPort(reply, got.from); err != nil {
					t.Fatalf("reply: %v", err)
				}
				back, err := recvMatching(t, cl, reply)
				if err != nil {
					t.Fatalf("server's reply: %v", err)
				}
				if want := netip.AddrPortFrom(s.server.IP, pvaPort); back.from != want {
					t.Errorf("client saw the reply from %s, want %s", back.from, want)
				}
			})
		}
	}
}

// TestRelayIgnoresOtherTraffic: a unicast datagram to relay-a's own address
// on the broadcast port, and broadcasts to another port, are not relayed:
// nothing arrives on the server, relay-a sends no mesh datagram and relay-b
// broadcasts nothing. A relayed broadcast sent afterwards arrives, so the
// silence is not a broken lab.
func TestRelayIgnoresOtherTraffic(t *testing.T) {
	s := startSwarm(t)
	srvPVA := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	srvOther := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", otherPort))
	cl := broadcaster(t, s.client)
	mesh := sniff(t, s.relayA)
	segB := sniff(t, s.server)

	send(t, cl, payload(t, 16), netip.AddrPortFrom(s.relayA.IP, pvaPort))
	send(t, cl, payload(t, 16), netip.AddrPortFrom(s.client.Broadcast, otherPort))
	send(t, cl, payload(t, 16), netip.AddrPortFrom(netip.MustParseAddr("255.255.255.255"), otherPort))

	if got := recvFor(t, srvPVA, quietWait); len(got) != 0 {
		t.Errorf("server received %d datagrams on port %d, want none", len(got), pvaPort)
	}
	if got := recvFor(t, srvOther, 0); len(got) != 0 {
		t.Errorf("server received %d datagrams on port %d, want none", len(got), otherPort)
	}
	meshOut, err := mesh.Collect(drainWait, func(f netlab.Frame) bool { return isMeshTo(f, s.relayB.IP) })
	if err != nil {
		t.Fatal(err)
	}
	if len(meshOut) != 0 {
		t.Errorf("relay-a sent %d mesh datagrams to relay-b, want none", len(meshOut))
	}
	injected, err := segB.Collect(drainWait, func(f netlab.Frame) bool {
		_, _, _, ok := f.UDP()
		return ok && f.IsIPv4Broadcast() && bytes.Equal(f.Src(), s.relayB.MAC) && !toPort(f, meshPort)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(injected) != 0 {
		t.Errorf("relay-b broadcast %d frames on segment b, want none", len(injected))
	}

	// The same observers see a relayed broadcast: the checks above can fail.
	p := payload(t, 16)
	send(t, cl, p, netip.AddrPortFrom(s.client.Broadcast, pvaPort))
	if _, err := recvMatching(t, srvPVA, p); err != nil {
		t.Fatalf("a relayed broadcast after the ignored ones: %v", err)
	}
	if meshOut, err := mesh.Collect(drainWait, func(f netlab.Frame) bool { return isMeshTo(f, s.relayB.IP) }); err != nil || len(meshOut) != 1 {
		t.Errorf("relay-a sent %d mesh datagrams for one relayed broadcast (%v), want 1", len(meshOut), err)
	}
	if injected, err := segB.Collect(drainWait, fromMAC(s.relayB.MAC, pvaPort)); err != nil || len(injected) != 1 {
		t.Errorf("relay-b broadcast %d frames for one relayed broadcast (%v), want 1", len(injected), err)
	}
	// The relays' own counters agree: one datagram forwarded, one injected.
	checkCounters(t, s.a, map[string]uint64{"capture": 1, "fanout": 1, "inject": 0})
	checkCounters(t, s.b, map[string]uint64{"capture": 0, "fanout": 0, "inject": 1})
}

// checkCounters stops r and compares the Out counters of its stages, from
// its final log line, with want.
func checkCounters(t *testing.T, r *labrelay.Relay, want map[string]uint64) {
	t.Helper()
	if err := r.Stop(); err != nil {
		t.Errorf("%s: exit: %v", r.Host.Name, err)
	}
	c, err := r.FinalCounters()
	if err != nil {
		t.Fatal(err)
	}
	for stage, n := range want {
		if got := c.Stages[stage].Out; got != n {
			t.Errorf("%s: stage %s passed on %d packets, want %d", r.Host.Name, stage, got, n)
		}
	}
}

// TestRelayDeliversExactlyOnce: N broadcasts reach the server exactly N
// times, relay-b broadcasts each once on segment b, and none comes back
// to segment a as a re-broadcast from relay-a.
func TestRelayDeliversExactlyOnce(t *testing.T) {
	const n = 20
	s := startSwarm(t)
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	cl := broadcaster(t, s.client)
	segA := sniff(t, s.client)
	segB := sniff(t, s.server)

	sent := map[string]bool{}
	for i := range n {
		p := payload(t, 100)
		sent[string(p)] = true
		dst := s.client.Broadcast
		if i%2 == 1 {
			dst = netip.MustParseAddr("255.255.255.255")
		}
		send(t, cl, p, netip.AddrPortFrom(dst, pvaPort))
	}
	var got []datagram
	for end := time.Now().Add(deliveryTimeout); len(got) < n && time.Now().Before(end); {
		got = append(got, recvFor(t, srv, 50*time.Millisecond)...)
	}
	got = append(got, recvFor(t, srv, quietWait)...) // any duplicate comes now
	seen := map[string]int{}
	for _, d := range got {
		if !sent[string(d.payload)] {
			t.Errorf("server received a datagram nobody sent (%d bytes from %s)", len(d.payload), d.from)
		}
		seen[string(d.payload)]++
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("server received %d datagrams (%d distinct) for %d broadcasts", len(got), len(seen), n)
	}

	back, err := segA.Collect(drainWait, fromMAC(s.relayA.MAC, pvaPort))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 0 {
		t.Errorf("relay-a re-broadcast %d frames to port %d on segment a, want none", len(back), pvaPort)
	}
	injected, err := segB.Collect(drainWait, fromMAC(s.relayB.MAC, pvaPort))
	if err != nil {
		t.Fatal(err)
	}
	if len(injected) != n {
		t.Errorf("relay-b broadcast %d frames on segment b for %d broadcasts", len(injected), n)
	}
	checkCounters(t, s.a, map[string]uint64{"capture": n, "fanout": n, "inject": 0})
	checkCounters(t, s.b, map[string]uint64{"capture": 0, "fanout": 0, "inject": n})
}

// TestRelayStopsOnSIGTERM: a relay that has relayed traffic exits with
// status 0 within a second of SIGTERM.
func TestRelayStopsOnSIGTERM(t *testing.T) {
	s := startSwarm(t)
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	cl := broadcaster(t, s.client)
	p := payload(t, 64)
	send(t, cl, p, netip.AddrPortFrom(s.client.Broadcast, pvaPort))
	if _, err := recvMatching(t, srv, p); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*labrelay.Relay{s.b, s.a} {
		start := time.Now()
		err := r.Stop()
		took := time.Since(start)
		if err != nil {
			t.Errorf("%s: exit: %v, want status 0", r.Host.Name, err)
		}
		if took > time.Second {
			t.Errorf("%s took %s to exit after SIGTERM, want at most 1s", r.Host.Name, took.Round(time.Millisecond))
		}
	}
}

// isMeshTo reports an IPv4 UDP frame (or fragment) addressed to dst: what
// a relay sends its peer.
func isMeshTo(f netlab.Frame, dst netip.Addr) bool {
	d := f.Data
	return f.EtherType() == 0x0800 && len(d) >= 34 && d[14+9] == 17 && netip.AddrFrom4([4]byte(d[30:34])) == dst
}

// toPort reports an unfragmented UDP frame to port.
func toPort(f netlab.Frame, port uint16) bool {
	_, dst, _, ok := f.UDP()
	return ok && dst.Port() == port
}
