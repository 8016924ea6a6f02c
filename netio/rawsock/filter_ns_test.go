//go:build linux

package rawsock

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/internal/nstest"
)

// TestCaptureFilterIPv6Kernel attaches the IPv6 program to a real AF_PACKET
// socket (so the kernel's checker accepts it) on one end of a veth pair and
// sends UDP from the other end: exactly the datagrams to a configured group
// and port arrive, neighbour discovery and MLD do not, and each decodes and
// gets a valid checksum from FixChecksums.
func TestCaptureFilterIPv6Kernel(t *testing.T) {
	ns := nstest.New(t)
	prog, err := CaptureFilter(FilterConfig{Ports: []uint16{5076}, Mark: 0x534e, IPv6: true,
		IPv6Groups: []netip.Addr{netip.MustParseAddr("ff02::1"), netip.MustParseAddr("ff02::1:3")}})
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var client *net.UDPConn
	err = ns.Do(func() error {
		ifi, err := net.InterfaceByName(nstest.IfB)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		filter := make([]unix.SockFilter, len(prog))
		for i, in := range prog {
			filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
		}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 300000}); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(nstest.AddrA, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	defer client.Close()

	sends := []struct {
		dst     string
		payload string
		want    bool
	}{
		{"[ff02::1%v6a]:5076", "to all nodes", true},
		{"[ff02::1%v6a]:5075", "another port", false},
		{"[ff02::2%v6a]:5076", "group not configured", false},
		{"[ff02::1:3%v6a]:5076", "to ff02::1:3", true},
		{"[fd00:6::2]:5076", "unicast", false},
	}
	for _, s := range sends {
		if _, err := client.WriteToUDPAddrPort([]byte(s.payload), netip.MustParseAddrPort(s.dst)); err != nil {
			t.Fatalf("send to %s: %v", s.dst, err)
		}
	}
	src := client.LocalAddr().(*net.UDPAddr).AddrPort()
	var got []string
	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b := buf[:n]
		var f frame.Frame
		if err := f.Decode6(b); err != nil {
			t.Fatalf("captured frame does not decode: %v\n% x", err, b)
		}
		if f.Src != src.Addr() || f.SrcPort != src.Port() || f.DstPort != 5076 {
			t.Errorf("captured %+v, want from %v to port 5076", f, src)
		}
		f.FixChecksums(b)
		u := b[frame.EthLen+f.IHL : f.Len()]
		pseudo := frame.Checksum(b[22:54], frame.ProtoUDP+uint32(len(u)))
		if frame.Fold(frame.Checksum(u, pseudo)) != 0 {
			t.Errorf("UDP checksum does not verify after FixChecksums: % x", u)
		}
		got = append(got, string(f.Payload(b)))
	}
	var want []string
	for _, s := range sends {
		if s.want {
			want = append(want, s.payload)
		}
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("captured %q, want %q", got, want)
	}
}
