//go:build linux

package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// TestMain lets the test binary be a reference relay's process too, as
// the benchmark's binary is (startRefProc runs os.Executable).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == refChildArg {
		os.Exit(refChild(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestRefRelayCarriesBroadcastsOnce runs the reference relay pair in the
// benchmark's lab, in each of its modes (inside this process; as
// processes of their own, blocking raw or waiting in the poller): every
// broadcast to the port crosses exactly once (its own injected frames do
// not loop, and the server's stack accepts their checksums), and a
// broadcast to another port does not cross.
func TestRefRelayCarriesBroadcastsOnce(t *testing.T) {
	t.Run("process", func(t *testing.T) { testRefRelay(t, refRaw) })
	t.Run("netpoll", func(t *testing.T) { testRefRelay(t, refNetpoll) })
	t.Run("in-process", func(t *testing.T) { testRefRelay(t, refBlocking) })
}

func testRefRelay(t *testing.T, mode refMode) {
	l := netlabtest.NewSwarmT(t, benchSpec())
	clk := clock{base: time.Now()}
	client, server := l.Host("client"), l.Host("server")
	rcv, err := newReceiver(server, searchPort, clk)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.close()
	other, err := newReceiver(server, searchPort+1, clk)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	snd, err := newSender(client, []netip.Addr{client.IP}, netip.AddrPortFrom(client.Broadcast, searchPort), clk, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.close()
	wrong, err := newSender(client, []netip.Addr{client.IP}, netip.AddrPortFrom(client.Broadcast, searchPort+1), clk, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.close()

	pair, err := startRefPair(l, searchPort, mode)
	if err != nil {
		t.Fatal(err)
	}
	defer pair.close()

	// relay-a resolves relay-b's MAC on the first send; the kernel queues
	// a few datagrams meanwhile, so warm up before counting.
	rcv.begin(1, 10, false)
	snd.run(1, 1000, 10, time.Second)
	rcv.settle(10, 200*time.Millisecond, 2*time.Second)
	rcv.end()

	const n = 200
	rcv.begin(2, n, true)
	other.begin(2, n, false)
	if s := snd.run(2, 2000, n, 2*time.Second); s.Sent != n {
		t.Fatalf("sent %d of %d", s.Sent, n)
	}
	wrong.run(2, 2000, n, 2*time.Second)
	rcv.settle(n, 200*time.Millisecond, 2*time.Second)
	time.Sleep(50 * time.Millisecond) // room for duplicates to show
	got, gotOther := rcv.end(), other.end()
	if got.Got != n || got.Dup != 0 || got.Foreign != 0 {
		t.Errorf("port %d: got %d of %d, %d duplicates, %d foreign", searchPort, got.Got, n, got.Dup, got.Foreign)
	}
	if gotOther.Got != 0 {
		t.Errorf("port %d: %d datagrams crossed; the filter should keep them", searchPort+1, gotOther.Got)
	}
	if len(got.Latencies) != got.Got {
		t.Errorf("%d latencies for %d datagrams", len(got.Latencies), got.Got)
	}
	for i := range pair.relays {
		s, err := pair.relays[i].sample()
		if err != nil {
			t.Fatal(err)
		}
		if s.RunNS == 0 {
			t.Errorf("%s: no CPU time on its threads", pair.relays[i].label())
		}
	}
}

// TestSetUDPChecksum compares the reference relay's checksum with
// gopacket's for datagrams of even and odd length, starting from a zero
// field and from a partial sum as a veth leaves it.
func TestSetUDPChecksum(t *testing.T) {
	for _, size := range []int{0, 1, 100, 101, 1472} {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 10, 77, 0, 11}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 77, 0, 11}, DstIP: net.IP{10, 77, 0, 255}}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 5076}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i*7 + 3)
		}
		buf := gopacket.NewSerializeBuffer()
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload))
		if err != nil {
			t.Fatal(err)
		}
		want := buf.Bytes()
		for _, start := range [][2]byte{{0, 0}, {0x1f, 0x2e}} {
			f := append([]byte(nil), want...)
			f[14+20+6], f[14+20+7] = start[0], start[1]
			setUDPChecksum(f)
			if !bytes.Equal(f, want) {
				t.Errorf("%d-byte payload, field %x: checksum %x, want %x", size, start, f[40:42], want[40:42])
			}
		}
	}
	// Not IPv4 UDP: left alone.
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	orig := append([]byte(nil), arp...)
	setUDPChecksum(arp)
	if !bytes.Equal(arp, orig) {
		t.Error("an ARP frame was changed")
	}
}
