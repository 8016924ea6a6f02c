package test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// mesh6ULA are the relays' unique-local addresses in the IPv6 mesh tests.
var mesh6ULA = map[string]netip.Addr{
	"relay-a":  netip.MustParseAddr("fd00:77::1"),
	"relay-b":  netip.MustParseAddr("fd00:77::2"),
	"relay-a2": netip.MustParseAddr("fd00:77::3"),
}

// addULA turns IPv6 on for h's eth0 (the lab turns it off everywhere) and
// gives it a, usable at once (no duplicate address detection); with
// dropIPv4 the interface loses its IPv4 address, so the host has only
// IPv6 to mesh with. The lab's switch forwards IPv6 between segments
// (its filter drops IPv4 broadcast and multicast only).
func addULA(t *testing.T, h *netlab.Host, a netip.Addr, dropIPv4 bool) {
	t.Helper()
	if err := h.Do(func() error {
		for _, p := range []string{"/proc/sys/net/ipv6/conf/eth0/accept_dad", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"} {
			if err := os.WriteFile(p, []byte("0"), 0); err != nil {
				return err
			}
		}
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		addr, err := netlink.ParseAddr(a.String() + "/64")
		if err != nil {
			return err
		}
		addr.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("add %s: %w", a, err)
		}
		if dropIPv4 {
			v4, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, x := range v4 {
				if err := netlink.AddrDel(l, &x); err != nil {
					return fmt.Errorf("remove %s: %w", x.IPNet, err)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: IPv6 address: %v", h.Name, err)
	}
}

// mesh6Relays starts relay-a and relay-b of the Swarm lab l, each with the
// other's ULA as its only peer, with extra flags, and waits for their peer
// sets.
func mesh6Relays(t *testing.T, l *netlab.Lab, extra ...string) (a, b *labrelay.Relay) {
	t.Helper()
	bin := harness.Binary(t)
	a = harness.StartT(t, bin, l.Host("relay-a"), append([]string{"--other-relays", mesh6ULA["relay-b"].String()}, extra...)...)
	b = harness.StartT(t, bin, l.Host("relay-b"), append([]string{"--other-relays", mesh6ULA["relay-a"].String()}, extra...)...)
	for _, r := range []*labrelay.Relay{a, b} {
		if _, err := r.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), deliveryTimeout); err != nil {
			t.Fatalf("%s: %v", r.Host.Name, err)
		}
	}
	return a, b
}

// mesh6Deliver sends a directed broadcast from the client and checks that
// the server receives it once, from the client's address and port, and
// that the server's unicast reply gets back.
func mesh6Deliver(t *testing.T, l *netlab.Lab, tag string) {
	t.Helper()
	client, server := l.Host("client"), l.Host("server")
	srv := listen(t, server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	defer srv.Close()
	cl := broadcaster(t, client)
	defer cl.Close()
	p := append([]byte(tag+"/"), payload(t, 32)...)
	send(t, cl, p, netip.AddrPortFrom(client.Broadcast, pvaPort))
	got, err := recvMatching(t, srv, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := localAddr(client, cl); got.from != want {
		t.Errorf("server saw source %s, want the client's %s", got.from, want)
	}
	if more := recvFor(t, srv, quietWait); len(more) != 0 {
		t.Errorf("server received %d more datagrams, want the broadcast once", len(more))
	}
	reply := append([]byte("reply:"), p[:8]...)
	if _, err := srv.WriteToUDPAddrPort(reply, got.from); err != nil {
		t.Fatal(err)
	}
	if _, err := recvMatching(t, cl, reply); err != nil {
		t.Fatalf("server's reply: %v", err)
	}
}

// mesh6CheckPeer checks, in r's stats, that its only peer is the other
// relay's ULA at the mesh port, that the mesh socket is dual-stack, and
// that datagrams went the expected way.
func mesh6CheckPeer(t *testing.T, r *labrelay.Relay, peer string, sent, received bool) {
	t.Helper()
	s := obsStats(t, harness.Binary(t), r)
	if s.Config.MeshBind != "::" {
		t.Errorf("%s: mesh socket bound to %s, want the dual-stack ::", r.Host.Name, s.Config.MeshBind)
	}
	want := netip.AddrPortFrom(mesh6ULA[peer], meshPort).String()
	if len(s.Peers) != 1 || s.Peers[0].Addr != want {
		t.Fatalf("%s: peers %+v, want only %s", r.Host.Name, s.Peers, want)
	}
	p := s.Peers[0]
	if sent && (p.TxPackets == 0 || p.TxErrors != 0) {
		t.Errorf("%s: sent %d datagrams to %s (%d errors), want some and no errors", r.Host.Name, p.TxPackets, want, p.TxErrors)
	}
	if received && p.RxPackets == 0 {
		t.Errorf("%s: received nothing from %s", r.Host.Name, want)
	}
	// Neither relay announces ipv6 frames here (no --ipv6): the peer is
	// asked nothing and stays unknown, and no IPv6 frame was withheld.
	if p.Capabilities != "unknown" || p.WithheldIPv6 != 0 {
		t.Errorf("%s: peer capabilities %q, withheld %d; want unknown, 0", r.Host.Name, p.Capabilities, p.WithheldIPv6)
	}
}

// TestMesh6Peers: relays on two segments of the Swarm lab mesh over IPv6
// (ULA --other-relays), in the legacy and the authenticated format; an IPv4
// broadcast from the client reaches the server once, with its source
// kept, and the reply gets back. No mesh datagram goes over IPv4.
func TestMesh6Peers(t *testing.T) {
	_, keyFile := secKey(t)
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"legacy", nil},
		{"authenticated", []string{"--mesh-key-file", keyFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
			for _, n := range []string{"relay-a", "relay-b"} {
				addULA(t, l.Host(n), mesh6ULA[n], false)
			}
			v4mesh := sniff(t, l.Host("relay-a"))
			a, b := mesh6Relays(t, l, append([]string{"--hello-interval", "0"}, tc.extra...)...)
			mesh6Deliver(t, l, "mesh6-"+tc.name)
			mesh6CheckPeer(t, a, "relay-b", true, false)
			mesh6CheckPeer(t, b, "relay-a", false, true)
			ipv4, err := v4mesh.Collect(drainWait, func(f netlab.Frame) bool { return isMeshTo(f, l.Host("relay-b").IP) })
			if err != nil {
				t.Fatal(err)
			}
			if len(ipv4) != 0 {
				t.Errorf("relay-a sent %d IPv4 datagrams to relay-b, want none: the mesh is IPv6", len(ipv4))
			}
			checkCounters(t, a, map[string]uint64{"fanout": 1})
			checkCounters(t, b, map[string]uint64{"inject": 1})
		})
	}
}

// TestMesh6OnlyRelays: relays whose interfaces have no IPv4 address at all,
// only a ULA, still capture the client's IPv4 broadcast and inject it on
// the other segment, meshing over IPv6 (the dual-stack socket is chosen by
// itself). Hellos are off: the lab's switch forwards IPv6 multicast between
// segments, so ff02::1 hellos would make the two relays neighbours
// (TestMesh6Hellos covers them on one segment).
func TestMesh6OnlyRelays(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	for _, n := range []string{"relay-a", "relay-b"} {
		addULA(t, l.Host(n), mesh6ULA[n], true)
	}
	a, b := mesh6Relays(t, l, "--hello-interval", "0")
	mesh6Deliver(t, l, "mesh6-only")
	mesh6CheckPeer(t, a, "relay-b", true, false)
	mesh6CheckPeer(t, b, "relay-a", false, true)
}

// TestMesh6Hellos: two relays without IPv4 on one segment hear each other's
// hellos, sent to ff02::1 from their ULA (not their link-local address), and
// list each other as neighbours by the address they mesh from.
func TestMesh6Hellos(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.Spec{Subnet: netip.MustParsePrefix("10.77.0.0/24"), Segments: []netlab.SegmentSpec{
		{Name: "a", Hosts: netlab.HostNames("relay-a", "relay-a2")}}})
	for _, n := range []string{"relay-a", "relay-a2"} {
		addULA(t, l.Host(n), mesh6ULA[n], true)
	}
	bin := harness.Binary(t)
	a := harness.StartT(t, bin, l.Host("relay-a"), "--other-relays", mesh6ULA["relay-a2"].String(), "--hello-interval", "100ms")
	a2 := harness.StartT(t, bin, l.Host("relay-a2"), "--other-relays", mesh6ULA["relay-a"].String(), "--hello-interval", "100ms")
	for _, tc := range []struct {
		r         *labrelay.Relay
		neighbour string
	}{{a, "relay-a2"}, {a2, "relay-a"}} {
		if _, err := tc.r.WaitLog(labrelay.Msg("another relay shares this segment; sharing injections with it",
			"peer", mesh6ULA[tc.neighbour].String()), deliveryTimeout); err != nil {
			t.Fatalf("%s: %v", tc.r.Host.Name, err)
		}
		s := obsStats(t, bin, tc.r)
		if !slices.Contains(s.Neighbours, mesh6ULA[tc.neighbour].String()) {
			t.Errorf("%s: neighbours %q, want %s", tc.r.Host.Name, s.Neighbours, mesh6ULA[tc.neighbour])
		}
		if s.Drops["unknown_peer"] != 0 {
			t.Errorf("%s: %d unknown_peer drops: its own looped-back hellos?", tc.r.Host.Name, s.Drops["unknown_peer"])
		}
	}
}

// TestMesh6CapsReply: a relay answers a peer's capabilities request over
// IPv6 with its own (none: no --ipv6), at once, one reply per second
// however many requests come, each the request's size; the request counts
// as the peer's announcement (stats: capabilities ipv6) and as no drop. A
// truncated one is malformed_mesh; one from outside the peer set is
// unknown_peer and not answered.
func TestMesh6CapsReply(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	for _, n := range []string{"relay-a", "relay-b"} {
		addULA(t, l.Host(n), mesh6ULA[n], false)
	}
	stranger := netip.MustParseAddr("fd00:77::99")
	addULA(t, l.Host("server"), stranger, false)
	bin := harness.Binary(t)
	b := harness.StartT(t, bin, l.Host("relay-b"), "--other-relays", mesh6ULA["relay-a"].String(), "--hello-interval", "0")
	if _, err := b.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), deliveryTimeout); err != nil {
		t.Fatal(err)
	}
	// relay-a's mesh port, played by a test socket: a relay that asks.
	udp6 := func(h *netlab.Host, a netip.Addr) *net.UDPConn {
		var c *net.UDPConn
		if err := h.Do(func() (err error) {
			c, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, meshPort)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	peer := udp6(l.Host("relay-a"), mesh6ULA["relay-a"])
	other := udp6(l.Host("server"), stranger)
	relayB := netip.AddrPortFrom(mesh6ULA["relay-b"], meshPort)
	req := mesh.PutCaps(make([]byte, mesh.CapsLen), mesh.Announce{ID: 0x0a0b0c0d, Caps: mesh.CapIPv6, WantReply: true})
	for range 5 {
		send(t, peer, req, relayB)
	}
	send(t, other, req, relayB)
	send(t, peer, req[:mesh.CapsLen-1], relayB)

	got := recvFor(t, peer, quietWait)
	if len(got) != 1 {
		t.Fatalf("peer got %d replies to 5 requests within %s, want 1", len(got), quietWait)
	}
	if got[0].from != relayB || len(got[0].payload) != len(req) {
		t.Errorf("reply of %d bytes from %s, want %d bytes from %s", len(got[0].payload), got[0].from, len(req), relayB)
	}
	if a, err := mesh.ParseCaps(got[0].payload); err != nil || a.Caps != 0 || a.WantReply || a.ID == 0 {
		t.Errorf("reply %+v (%v), want caps none, no reply wanted, a relay id", a, err)
	}
	if more := recvFor(t, other, 0); len(more) != 0 {
		t.Errorf("a source outside the peer set got %d replies", len(more))
	}
	s := obsStats(t, bin, b)
	if len(s.Peers) != 1 || s.Peers[0].Capabilities != "ipv6" {
		t.Errorf("peers %+v, want the asking peer with capabilities ipv6", s.Peers)
	}
	for reason, n := range s.Drops {
		want := map[string]uint64{"malformed_mesh": 1, "unknown_peer": 1}[reason]
		if n != want {
			t.Errorf("drops[%s] = %d, want %d", reason, n, want)
		}
	}
	// A second later the peer is answered again.
	time.Sleep(time.Second)
	send(t, peer, req, relayB)
	if got := recvFor(t, peer, quietWait); len(got) != 1 {
		t.Errorf("%d replies to a request a second later, want 1", len(got))
	}
}
