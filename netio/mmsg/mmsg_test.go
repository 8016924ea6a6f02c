//go:build linux

package mmsg

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketpair returns two connected datagram sockets, closed when the test
// ends.
func socketpair(t *testing.T) [2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds
}

// TestRecvCollectSkipsTruncated reads three datagrams in one recvmmsg, the
// middle one too large for its buffer, and checks that Collect keeps the
// other two in order with no gap and no copy: the buffer of the one skipped
// moves behind them.
func TestRecvCollectSkipsTruncated(t *testing.T) {
	fds := socketpair(t)
	msgs := [][]byte{bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 100), bytes.Repeat([]byte{3}, 20)}
	for _, m := range msgs {
		if _, err := unix.Write(fds[1], m); err != nil {
			t.Fatal(err)
		}
	}
	const offset = 8
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, offset+64)
	}
	orig := append([][]byte(nil), bufs...)
	sizes := make([]int, len(bufs))
	mm := NewBatch(4)
	if got := mm.PrepareRecv(bufs, offset, false, false); got != 4 {
		t.Fatalf("PrepareRecv described %d buffers, want 4", got)
	}
	n, err := mm.Recv(uintptr(fds[0]), unix.MSG_TRUNC)
	if err != nil || n != 3 {
		t.Fatalf("Recv = %d, %v; want 3 datagrams", n, err)
	}
	got, trunc := mm.Collect(bufs, sizes, nil, nil, nil, n)
	if got != 2 || trunc != 1 {
		t.Fatalf("Collect = %d, %d truncated; want 2, 1", got, trunc)
	}
	for i, want := range [][]byte{msgs[0], msgs[2]} {
		if b := bufs[i][offset : offset+sizes[i]]; !bytes.Equal(b, want) {
			t.Errorf("datagram %d = %x, want %x", i, b, want)
		}
	}
	if &bufs[1][0] != &orig[2][0] || &bufs[2][0] != &orig[1][0] || &bufs[3][0] != &orig[3][0] {
		t.Error("Collect did not move the skipped datagram's buffer behind the ones kept")
	}
	if _, err := mm.Recv(uintptr(fds[0]), 0); err != unix.EAGAIN {
		t.Errorf("Recv on an empty socket = %v, want EAGAIN", err)
	}
}

func TestSendAllocatesNothing(t *testing.T) {
	fds := socketpair(t)
	mm := NewBatch(8)
	buf := make([]byte, 32)
	rbuf := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		mm.Reset()
		mm.Add(buf, netip.AddrPort{})
		mm.Send(uintptr(fds[1]), 0)
		unix.Read(fds[0], rbuf)
	}); n != 0 {
		t.Errorf("%v allocations per send", n)
	}
}

// TestSockaddrRoundTrip: IPv4 (also given IPv4-mapped) and IPv6 addresses
// survive the trip through a socket address, with the lengths the kernel
// expects for each family.
func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		len      uint32
	}{
		{"10.77.0.1:7124", "10.77.0.1:7124", unix.SizeofSockaddrInet4},
		{"[::ffff:10.77.0.1]:7124", "10.77.0.1:7124", unix.SizeofSockaddrInet4},
		{"[fd00:77::1]:7124", "[fd00:77::1]:7124", unix.SizeofSockaddrInet6},
	} {
		var sa unix.RawSockaddrInet6
		if l := PutSockaddr(&sa, netip.MustParseAddrPort(tc.in)); l != tc.len {
			t.Errorf("%s: length %d, want %d", tc.in, l, tc.len)
		}
		if got := SockaddrAddrPort(&sa); got != netip.MustParseAddrPort(tc.want) {
			t.Errorf("%s: back as %s, want %s", tc.in, got, tc.want)
		}
	}
	mapped := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("::ffff:10.77.0.1").As16()}
	putPort(&mapped.Port, 7124)
	if got := SockaddrAddrPort(&mapped); got != netip.MustParseAddrPort("10.77.0.1:7124") {
		t.Errorf("an IPv4-mapped sender decoded as %s, want 10.77.0.1:7124", got)
	}
	if got := SockaddrAddrPort(&unix.RawSockaddrInet6{Family: unix.AF_UNIX}); got.IsValid() {
		t.Errorf("an AF_UNIX address decoded as %s", got)
	}
}

// TestReaderOverUDP: datagrams sent over IPv4 and IPv6 loopback arrive in
// one Read, each with its sender; one too big for its buffer is counted,
// not delivered; a Read round allocates nothing; a deadline ends a Read
// that waits.
func TestReaderOverUDP(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			lo := "127.0.0.1:0"
			if network == "udp6" {
				lo = "[::1]:0"
			}
			rx, err := net.ListenPacket(network, lo)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer rx.Close()
			tx, err := net.ListenPacket(network, lo)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			rc, err := rx.(*net.UDPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader(8)
			r.From = true
			bufs := make([][]byte, 4)
			for i := range bufs {
				bufs[i] = make([]byte, 4+32)
			}
			sizes, addrs := make([]int, 4), make([]netip.AddrPort, 4)
			for _, m := range [][]byte{[]byte("one"), bytes.Repeat([]byte{'x'}, 40), []byte("three")} {
				if _, err := tx.WriteTo(m, rx.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			want := tx.LocalAddr().(*net.UDPAddr).AddrPort()
			var all []string
			tooBig := 0
			for len(all) < 2 {
				n, tb, err := r.Read(rc, bufs, 4, sizes, addrs, nil)
				if err != nil {
					t.Fatal(err)
				}
				tooBig += tb
				for k := range n {
					if addrs[k] != want {
						t.Errorf("datagram %d from %s, want %s", k, addrs[k], want)
					}
					all = append(all, string(bufs[k][4:4+sizes[k]]))
				}
			}
			if tooBig != 1 || len(all) != 2 || all[0] != "one" || all[1] != "three" {
				t.Errorf("read %q with %d too big; want [one three] and 1", all, tooBig)
			}

			dst, ping := rx.LocalAddr().(*net.UDPAddr).AddrPort(), []byte("ping")
			round := func() {
				tx.(*net.UDPConn).WriteToUDPAddrPort(ping, dst)
				if n, _, err := r.Read(rc, bufs, 4, sizes, addrs, nil); err != nil || n != 1 {
					t.Fatalf("Read = %d, %v", n, err)
				}
			}
			round()
			if n := testing.AllocsPerRun(100, round); n != 0 {
				t.Errorf("a Read round allocates %v times", n)
			}

			rx.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			if _, _, err := r.Read(rc, bufs, 4, sizes, addrs, nil); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read past its deadline: %v", err)
			}
		})
	}
}
