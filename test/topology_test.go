package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/stages/locals"
	"github.com/snowsignal/snowsignal/test/harness"
)

// Issue 3: every real topology. Several relays per segment in a full mesh
// must deliver each broadcast exactly once on every other segment and never
// back onto its own; the relay host's own clients and servers take part;
// routed subnets get the destination they accept; several ports; datagrams
// larger than the MTU.

// topoCount reads datagrams from c until nothing has arrived for quiet, and
// returns how many times each payload arrived and from where.
func topoCount(t *testing.T, c *net.UDPConn, quiet time.Duration) (map[string]int, map[netip.AddrPort]int) {
	t.Helper()
	got := map[string]int{}
	from := map[netip.AddrPort]int{}
	buf := make([]byte, 65536)
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return got, from
		}
		got[string(buf[:n])]++
		from[src]++
	}
}

// topoPayload is datagram i of a burst: distinct, so that none is a
// duplicate of another.
func topoPayload(tag string, i int) []byte {
	b := make([]byte, 48)
	copy(b, tag)
	binary.BigEndian.PutUint32(b[40:], uint32(i))
	return b
}

// meshSpec builds a Swarm spec: segment i holds relays[i] relays named
// r<seg><n> and one listener named l<seg>; segment a also holds the client.
func meshSpec(relays []int) netlab.Spec {
	spec := netlab.Spec{Subnet: netip.MustParsePrefix("10.78.0.0/24")}
	for i, n := range relays {
		seg := string(rune('a' + i))
		var hosts []netlab.HostSpec
		if i == 0 {
			hosts = append(hosts, netlab.HostSpec{Name: "client"})
		}
		hosts = append(hosts, netlab.HostSpec{Name: "l" + seg})
		for j := 0; j < n; j++ {
			hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("r%s%d", seg, j)})
		}
		spec.Segments = append(spec.Segments, netlab.SegmentSpec{Name: seg, Hosts: hosts})
	}
	return spec
}

// startMesh starts a relay on every host whose name starts with "r", each
// peered with all the others, and waits until relays sharing a segment have
// heard each other's hellos.
func startMesh(t *testing.T, l *netlab.Lab, extra ...string) []*labrelay.Relay {
	t.Helper()
	bin := harness.Binary(t)
	var hosts []*netlab.Host
	for _, h := range l.Hosts() {
		if strings.HasPrefix(h.Name, "r") {
			hosts = append(hosts, h)
		}
	}
	var relays []*labrelay.Relay
	for _, h := range hosts {
		var others []string
		for _, o := range hosts {
			if o != h {
				others = append(others, o.IP.String())
			}
		}
		args := append([]string{"--other-relays", strings.Join(others, ",")}, extra...)
		relays = append(relays, harness.StartT(t, bin, h, args...))
	}
	for i, h := range hosts {
		for _, o := range hosts {
			if o != h && o.Segment == h.Segment {
				if _, err := relays[i].WaitLog(labrelay.Msg("another relay shares this segment; sharing injections with it", "peer", o.IP.String()), 3*time.Second); err != nil {
					t.Fatalf("%s never heard %s on its segment: %v", h.Name, o.Name, err)
				}
			}
		}
	}
	return relays
}

func TestTopologiesDeliverExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		relays []int // relays per segment
	}{
		{"2a+1b", []int{2, 1}},
		{"2a+2b", []int{2, 2}},
		{"1a+1b+1c", []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := netlabtest.NewSwarmT(t, meshSpec(tc.relays))
			listeners := map[string]*net.UDPConn{}
			for i := range tc.relays {
				seg := string(rune('a' + i))
				listeners[seg] = listen(t, l.Host("l"+seg), "0.0.0.0:5076")
			}
			startMesh(t, l)
			client := broadcaster(t, l.Host("client"))
			const n = 100
			for i := 0; i < n; i++ {
				dst := netip.AddrPortFrom(l.Host("client").Broadcast, 5076)
				if i%2 == 1 {
					dst = netip.MustParseAddrPort("255.255.255.255:5076")
				}
				send(t, client, topoPayload(tc.name, i), dst)
				if i%10 == 9 {
					time.Sleep(time.Millisecond) // stay under any socket buffer
				}
			}
			for seg, c := range listeners {
				got, _ := topoCount(t, c, quietWait)
				total := 0
				for p, k := range got {
					total += k
					if k != 1 {
						t.Errorf("segment %s: datagram %x arrived %d times", seg, p[40:44], k)
					}
				}
				// Segment a is the origin: its listener hears the client's
				// own broadcasts, and must hear nothing more.
				if total != n || len(got) != n {
					t.Errorf("segment %s: %d datagrams (%d distinct), want exactly %d", seg, total, len(got), n)
				}
			}
			// Nothing circulates: after the burst, no relay sends data on the
			// mesh (hellos are the only mesh traffic left).
			for _, h := range l.Hosts() {
				if !strings.HasPrefix(h.Name, "r") {
					continue
				}
				sn, err := h.Sniff(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				frames, _ := sn.Collect(300*time.Millisecond, func(f netlab.Frame) bool {
					_, dst, payload, ok := f.UDP()
					return ok && dst.Port() == 7124 && bytes.HasPrefix(payload, []byte("SS"))
				})
				sn.Close()
				if len(frames) != 0 {
					t.Errorf("%s: %d mesh data datagrams after the burst ended", h.Name, len(frames))
				}
			}
		})
	}
}

// A client and a server on a relay's own host (host networking) take part
// like any other host: the relay captures the client's outgoing broadcast,
// and delivers relayed broadcasts to its host's own sockets. While relaying
// it copies them to lo only if such a socket exists, and sees one within
// about a second of its opening.
func TestClientsAndServersOnTheRelayHost(t *testing.T) {
	s := startSwarm(t)
	onServer := listen(t, s.server, "0.0.0.0:5076")
	cl := broadcaster(t, s.client)
	// Relay until relay-b reports local_listeners as wanted.
	relayUntil := func(want bool) time.Duration {
		t.Helper()
		start := time.Now()
		for i := 0; snapshot(t, s.b).LocalListeners != want; i++ {
			if time.Since(start) > 3*locals.Every {
				t.Fatalf("relay-b: local_listeners is not %v after %s of traffic", want, 3*locals.Every)
			}
			send(t, cl, topoPayload("warm", i), netip.MustParseAddrPort("10.77.0.255:5076"))
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	relayUntil(false)
	onRelayB := listen(t, s.relayB, "0.0.0.0:5076")
	t.Logf("relay-b saw the socket on its host after %s", relayUntil(true).Round(time.Millisecond))
	recvFor(t, onRelayB, quietWait) // the warm-up broadcasts
	recvFor(t, onServer, quietWait)

	clientOnRelayA := broadcaster(t, s.relayA)
	for i, dst := range []string{"10.77.0.255:5076", "255.255.255.255:5076"} {
		send(t, clientOnRelayA, topoPayload("local", i), netip.MustParseAddrPort(dst))
	}
	for name, c := range map[string]*net.UDPConn{"relay-b's host": onRelayB, "server": onServer} {
		got, from := topoCount(t, c, quietWait)
		if len(got) != 2 {
			t.Errorf("%s received %d distinct datagrams, want 2", name, len(got))
		}
		for p, k := range got {
			if k != 1 {
				t.Errorf("%s received datagram %x %d times, want once", name, p[40:44], k)
			}
		}
		for src := range from {
			if src.Addr() != s.relayA.IP {
				t.Errorf("%s: source %s, want relay-a's host %s", name, src, s.relayA.IP)
			}
		}
	}
}

func TestRoutedSubnets(t *testing.T) {
	for _, tc := range []struct {
		mode        string
		directedIn  bool // does a directed broadcast from 10.1.0.0/24 reach the server on 10.2.0.0/24?
		wantDst     string
		limitedGets bool
	}{
		{mode: "auto", directedIn: true, limitedGets: true},
		{mode: "keep", directedIn: false, limitedGets: true},
		{mode: "limited", directedIn: true, limitedGets: true},
		{mode: "subnet", directedIn: true, limitedGets: true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			bin := harness.Binary(t)
			l := netlabtest.NewRoutedT(t, netlab.TwoSubnetRouted())
			client, server := l.Host("client"), l.Host("server")
			ra, rb := l.Host("relay-a"), l.Host("relay-b")
			harness.StartT(t, bin, ra, "--other-relays", rb.IP.String(), "--rebroadcast-destination", tc.mode)
			harness.StartT(t, bin, rb, "--other-relays", ra.IP.String(), "--rebroadcast-destination", tc.mode)
			srv := listen(t, server, "0.0.0.0:5076")
			cl := broadcaster(t, client)

			send(t, cl, []byte("directed"), netip.AddrPortFrom(client.Broadcast, 5076))
			got, from := topoCount(t, srv, quietWait)
			if (got["directed"] == 1) != tc.directedIn || got["directed"] > 1 {
				t.Fatalf("directed broadcast to %s arrived %d times with %s", client.Broadcast, got["directed"], tc.mode)
			}
			if tc.directedIn {
				// The source is never changed: the reply goes to the client
				// through the router.
				for src := range from {
					if src.Addr() != client.IP {
						t.Fatalf("source %s, want the client %s", src, client.IP)
					}
					send(t, srv, []byte("reply"), src)
				}
				cl.SetReadDeadline(time.Now().Add(deliveryTimeout))
				buf := make([]byte, 100)
				n, rfrom, err := cl.ReadFromUDPAddrPort(buf)
				if err != nil || string(buf[:n]) != "reply" || rfrom.Addr() != server.IP {
					t.Fatalf("reply: %q from %s, %v", buf[:n], rfrom, err)
				}
			}
			send(t, cl, []byte("limited"), netip.MustParseAddrPort("255.255.255.255:5076"))
			got, _ = topoCount(t, srv, quietWait)
			if got["limited"] != 1 {
				t.Errorf("limited broadcast arrived %d times with %s, want once", got["limited"], tc.mode)
			}
		})
	}
}

func TestSeveralPorts(t *testing.T) {
	s := startSwarm(t, "-b", "5076,5064")
	ports := map[uint16]*net.UDPConn{}
	for _, p := range []uint16{5076, 5064, 5065} {
		ports[p] = listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", p))
	}
	cl := broadcaster(t, s.client)
	for p := range ports {
		send(t, cl, []byte(fmt.Sprint("to ", p)), netip.AddrPortFrom(s.client.Broadcast, p))
	}
	for p, c := range ports {
		got, _ := topoCount(t, c, quietWait)
		want := 1
		if p == 5065 {
			want = 0
		}
		if got[fmt.Sprint("to ", p)] != want || len(got) > 1 {
			t.Errorf("port %d: got %v, want %d datagram to it", p, got, want)
		}
	}
}

// Datagrams larger than the MTU travel as IP fragments: every fragment is
// relayed and the server's kernel reassembles the whole datagram. A
// full-MTU frame makes a mesh datagram larger than the MTU, which the kernel
// fragments between the relays.
func TestLargeDatagrams(t *testing.T) {
	s := startSwarm(t)
	srv := listen(t, s.server, "0.0.0.0:5076")
	cl := broadcaster(t, s.client)
	for _, size := range []int{1472, 3000, 8000} {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		send(t, cl, payload, netip.AddrPortFrom(s.client.Broadcast, 5076))
		srv.SetReadDeadline(time.Now().Add(deliveryTimeout))
		buf := make([]byte, 65536)
		n, src, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(buf[:n], payload) || src.Addr() != s.client.IP {
			t.Errorf("%d bytes: got %d bytes from %s, not the client's datagram", size, n, src)
		}
		if got, _ := topoCount(t, srv, quietWait); len(got) != 0 {
			t.Errorf("%d bytes: %d more datagrams after the first", size, len(got))
		}
	}
}

// A client that sends the same datagram again after the dedup window is
// relayed every time, with several relays per segment; a repeat inside the
// window is a duplicate.
func TestRepeatAfterWindowIsRelayed(t *testing.T) {
	l := netlabtest.NewSwarmT(t, meshSpec([]int{2, 2}))
	lb := listen(t, l.Host("lb"), "0.0.0.0:5076")
	startMesh(t, l, "--dedup-window", "100ms")
	client := broadcaster(t, l.Host("client"))
	dst := netip.AddrPortFrom(l.Host("client").Broadcast, 5076)
	same := topoPayload("again", 1)
	for i := 0; i < 3; i++ {
		send(t, client, same, dst)
		time.Sleep(250 * time.Millisecond)
	}
	got, _ := topoCount(t, lb, quietWait)
	if got[string(same)] != 3 {
		t.Errorf("the same datagram sent 3 times, 250ms apart, arrived %d times; want 3", got[string(same)])
	}
}

// TestSeveralIPv4Addresses: with a second subnet on every host's interface,
// a relay relays broadcasts of that subnet's clients too, says at start
// that it relays for both subnets, and with --rebroadcast-destination
// subnet sends each broadcast to its client's own subnet.
func TestSeveralIPv4Addresses(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	client, server, ra, rb := l.Host("client"), l.Host("server"), l.Host("relay-a"), l.Host("relay-b")
	second := map[*netlab.Host]string{client: "192.168.77.11/24", server: "192.168.77.21/24", ra: "192.168.77.1/24", rb: "192.168.77.2/24"}
	for h, a := range second {
		err := h.Do(func() error {
			link, err := netlink.LinkByName(netlab.IfName)
			if err != nil {
				return err
			}
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			addr.Broadcast = net.IPv4(192, 168, 77, 255)
			return netlink.AddrAdd(link, addr)
		})
		if err != nil {
			t.Fatalf("%s: add %s: %v", h.Name, a, err)
		}
	}
	relays := []*labrelay.Relay{
		harness.StartT(t, bin, ra, "--other-relays", rb.IP.String()),
		harness.StartT(t, bin, rb, "--other-relays", ra.IP.String(), "--rebroadcast-destination", "subnet"),
	}
	for _, r := range relays {
		if _, err := r.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), deliveryTimeout); err != nil {
			t.Fatalf("%s: %v", r.Host.Name, err)
		}
		if _, err := r.WaitLog(labrelay.Msg("interface has several IPv4 addresses; relaying and rewriting for every subnet", "stage", "capture"), deliveryTimeout); err != nil {
			t.Errorf("%s: %v", r.Host.Name, err)
		}
	}
	srv := listen(t, server, "0.0.0.0:5076")
	sn, err := server.Sniff(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, payload, dst, want string }{
		{"192.168.77.11", "secondary to its subnet", "192.168.77.255", "192.168.77.255"},
		{"192.168.77.11", "secondary to all", "255.255.255.255", "192.168.77.255"},
		{"10.77.0.11", "primary to all", "255.255.255.255", "10.77.0.255"},
	} {
		cl, err := client.BroadcastUDP(tc.from + ":0")
		if err != nil {
			t.Fatal(err)
		}
		send(t, cl, []byte(tc.payload), netip.AddrPortFrom(netip.MustParseAddr(tc.dst), 5076))
		cl.Close()
		got, from := topoCount(t, srv, quietWait)
		if got[tc.payload] != 1 || len(got) != 1 {
			t.Fatalf("%s: server got %v, want it once", tc.payload, got)
		}
		for src := range from {
			if src.Addr() != netip.MustParseAddr(tc.from) {
				t.Errorf("%s: source %s, want the client's %s kept", tc.payload, src, tc.from)
			}
		}
		frames, _ := sn.Collect(50*time.Millisecond, func(f netlab.Frame) bool {
			return f.PktType != unix.PACKET_OUTGOING && bytes.HasSuffix(f.Data, []byte(tc.payload))
		})
		if len(frames) != 1 {
			t.Fatalf("%s: sniffed %d frames on the server, want 1", tc.payload, len(frames))
		}
		if dst := netip.AddrFrom4([4]byte(frames[0].Data[30:34])); dst.String() != tc.want {
			t.Errorf("%s: relayed to IP destination %s, want %s", tc.payload, dst, tc.want)
		}
	}
}
