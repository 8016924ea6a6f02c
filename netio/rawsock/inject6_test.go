//go:build linux

package rawsock

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/internal/nstest"
)

// TestInjectIPv6Protocol injects an IPv6 and an IPv4 frame in one batch on
// one end of a veth pair: a capture of the sending side sees each leave
// with its own protocol (skb->protocol ETH_P_IPV6 and ETH_P_IP, not the
// socket's bound ETH_P_IP for both), and a UDP socket on the other end
// receives the IPv6 datagram, source address and port kept.
func TestInjectIPv6Protocol(t *testing.T) {
	ns := nstest.New(t)
	src := netip.AddrPortFrom(netip.MustParseAddr("fd00:77::11"), 38726)
	fr6 := frametest.UDP6{DstMAC: frame.MulticastMAC(netip.MustParseAddr("ff02::1")), SrcMAC: [6]byte{2, 0, 0, 0, 0, 1},
		Src: src, Dst: netip.MustParseAddrPort("[ff02::1]:5076"), Payload: []byte("ipv6 search")}.Frame()
	fr4 := frametest.UDP{DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: [6]byte{2, 0, 0, 0, 0, 1},
		Src: netip.MustParseAddrPort("10.77.0.11:38726"), Dst: netip.MustParseAddrPort("10.77.0.255:5076"), Payload: []byte("ipv4 search")}.Frame()
	var in *Injector
	var tap int
	var server *net.UDPConn
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(nstest.IfA)
		if err != nil {
			return err
		}
		if tap, err = listenFiltered(nstest.IfA, []bpf.RawInstruction{{Op: 0x06, K: 0xffff}}); err != nil {
			return err
		}
		if server, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: 5076}); err != nil {
			return err
		}
		in, err = ListenInject(ifi, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(tap)
	defer server.Close()
	defer in.Close()
	if n, err := in.WriteBatch([][]byte{fr6, fr4}); n != 2 || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want 2 sent", n, err)
	}
	protos := map[string]uint16{}
	buf := make([]byte, 2048)
	for range 20 {
		n, from, err := unix.Recvfrom(tap, buf, 0)
		if err != nil {
			break
		}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
			switch {
			case bytes.Equal(buf[:n], fr6):
				protos["ipv6"] = htons(sll.Protocol)
			case bytes.Equal(buf[:n], fr4):
				protos["ipv4"] = htons(sll.Protocol)
			}
		}
		if len(protos) == 2 {
			break
		}
	}
	if protos["ipv6"] != unix.ETH_P_IPV6 || protos["ipv4"] != unix.ETH_P_IP {
		t.Errorf("frames left with protocols %#04x", protos)
	}
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := server.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("the IPv6 datagram did not arrive: %v", err)
	}
	if from.Addr().WithZone("") != src.Addr() || from.Port() != src.Port() || string(buf[:n]) != "ipv6 search" {
		t.Errorf("received %q from %v, want %q from %v", buf[:n], from, "ipv6 search", src)
	}
}
