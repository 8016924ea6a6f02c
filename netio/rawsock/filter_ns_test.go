//go:build linux

package rawsock

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/internal/nstest"
)

// listenFiltered opens an AF_PACKET socket on ifname with prog attached
// before it is bound, as ListenCapture does, and a 300 ms read timeout.
// Call it in the namespace.
func listenFiltered(ifname string, prog []bpf.RawInstruction) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
	if err == nil {
		err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 300000})
	}
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// TestCaptureFilterIPv6Kernel attaches the IPv6 program to real AF_PACKET
// sockets (so the kernel's checker accepts it) on both ends of a veth pair
// and sends UDP from one end: on each, exactly the datagrams to a configured
// group and port are captured, neighbour discovery and MLD are not. Each
// decodes, and FixChecksums leaves a valid checksum; on the sending side the
// local stack's frames carry a partial one (checksum offload, what
// TP_STATUS_CSUMNOTREADY flags), which FixChecksums completes.
func TestCaptureFilterIPv6Kernel(t *testing.T) {
	ns := nstest.New(t)
	prog, err := CaptureFilter(FilterConfig{Ports: []uint16{5076}, Mark: 0x534e, IPv6: true,
		IPv6Groups: []netip.Addr{netip.MustParseAddr("ff02::1"), netip.MustParseAddr("ff02::1:3")}})
	if err != nil {
		t.Fatal(err)
	}
	var in, out int // capture on the receiving and on the sending interface
	var client *net.UDPConn
	err = ns.Do(func() error {
		var err error
		if in, err = listenFiltered(nstest.IfB, prog); err != nil {
			return err
		}
		if out, err = listenFiltered(nstest.IfA, prog); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(nstest.AddrA, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	defer unix.Close(out)
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
	// In the namespace: the zone (%v6a) names an interface of it.
	err = ns.Do(func() error {
		for _, s := range sends {
			if _, err := client.WriteToUDPAddrPort([]byte(s.payload), netip.MustParseAddrPort(s.dst)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range sends {
		if s.want {
			want = append(want, s.payload)
		}
	}
	src := client.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, side := range []struct {
		name string
		fd   int
	}{{"receiving side", in}, {"sending side", out}} {
		var got []string
		partial := 0
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(side.fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b := buf[:n]
			var f frame.Frame
			if err := f.Decode6(b); err != nil {
				t.Fatalf("%s: captured frame does not decode: %v\n% x", side.name, err, b)
			}
			if f.Src != src.Addr() || f.SrcPort != src.Port() || f.DstPort != 5076 || f.HopLimit(b) != 1 {
				t.Errorf("%s: captured %+v, hop limit %d; want from %v to port 5076, hop limit 1", side.name, f, f.HopLimit(b), src)
			}
			u := b[frame.EthLen+f.IHL : f.Len()]
			pseudo := frame.Checksum(b[22:54], frame.ProtoUDP+uint32(len(u)))
			if ^frame.Fold(pseudo) == binary.BigEndian.Uint16(u[6:]) {
				partial++ // the field holds the folded pseudo-header sum
			}
			f.FixChecksums(b)
			if frame.Fold(frame.Checksum(u, pseudo)) != 0 {
				t.Errorf("%s: UDP checksum does not verify after FixChecksums: % x", side.name, u)
			}
			got = append(got, string(f.Payload(b)))
		}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: captured %q, want %q", side.name, got, want)
		}
		t.Logf("%s: %d of %d captured frames carried a partial checksum", side.name, partial, len(got))
		if side.fd == out && partial == 0 {
			t.Errorf("sending side: no partial checksum; the test no longer shows FixChecksums completing one")
		}
	}
}
