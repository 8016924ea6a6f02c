//go:build linux

package meshconn

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/internal/nstest"
)

// readOne reads one datagram from c within a second.
func readOne(t *testing.T, c *Conn) (string, netip.AddrPort) {
	t.Helper()
	bufs := [][]byte{make([]byte, 256)}
	sizes, addrs := make([]int, 1), make([]netip.AddrPort, 1)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := c.ReadBatch(bufs, 0, sizes, addrs, nil)
	if err != nil || n != 1 {
		t.Fatalf("read on %s: n=%d, %v", c.LocalAddr(), n, err)
	}
	return string(bufs[0][:sizes[0]]), addrs[0]
}

// TestDualStack: a socket bound to [::] sends to an IPv6 and an IPv4 peer
// in one batch and hears both back, the IPv4 one as a plain IPv4 address
// (not ::ffff:…); an ICMPv6 port unreachable for an IPv6 peer is reported
// with the peer's address (IPV6_RECVERR), and one for an IPv4 peer too
// (IP_RECVERR on the dual-stack socket).
func TestDualStack(t *testing.T) {
	ns := nstest.New(t)
	if err := ns.Do(func() error {
		dual, err := Listen(netip.MustParseAddrPort("[::]:0"))
		if err != nil {
			return err
		}
		defer dual.Close()
		v6, err := Listen(netip.AddrPortFrom(nstest.AddrB, 0))
		if err != nil {
			return err
		}
		defer v6.Close()
		v4, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
		if err != nil {
			return err
		}
		defer v4.Close()
		dualPort := dual.LocalAddr().Port()
		to6 := v6.LocalAddr()
		to4 := v4.LocalAddr()
		if failed, err := dual.WriteBatch([][]byte{[]byte("to-v6"), []byte("to-v4")}, []netip.AddrPort{to6, to4}, nil); failed != 0 || err != nil {
			t.Fatalf("WriteBatch: %d failed, %v", failed, err)
		}
		if got, from := readOne(t, v6); got != "to-v6" || from.Addr() != nstest.AddrB || from.Port() != dualPort {
			t.Errorf("IPv6 peer got %q from %s, want to-v6 from [%s]:%d", got, from, nstest.AddrB, dualPort)
		}
		if got, from := readOne(t, v4); got != "to-v4" || from != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dualPort) {
			t.Errorf("IPv4 peer got %q from %s", got, from)
		}
		if err := v4.WriteTo([]byte("back"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dualPort)); err != nil {
			t.Fatal(err)
		}
		if got, from := readOne(t, dual); got != "back" || from != to4 {
			t.Errorf("dual-stack socket got %q from %s, want back from %s (unmapped)", got, from, to4)
		}

		errs := make(chan PeerError, 8)
		dual.OnPeerError(func(e PeerError) { errs <- e })
		for _, closed := range []netip.AddrPort{netip.AddrPortFrom(nstest.AddrB, 9), netip.MustParseAddrPort("127.0.0.1:9")} {
			if err := dual.WriteTo([]byte("x"), closed); err != nil {
				t.Fatal(err)
			}
			// The error is queued; the next send or read on the socket finds it.
			deadline := time.Now().Add(time.Second)
			var got PeerError
			for got.Dst != closed && time.Now().Before(deadline) {
				_ = dual.WriteTo([]byte("y"), to6)
				select {
				case got = <-errs:
				case <-time.After(20 * time.Millisecond):
				}
			}
			if got.Dst != closed || !errors.Is(got.Err, unix.ECONNREFUSED) {
				t.Errorf("peer error for %s: %+v, want ECONNREFUSED for it", closed, got)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestWriteFrom: a hello sent to ff02::1 on an interface with WriteFrom
// comes from the given unicast address, not the interface's link-local
// one, and reaches a [::] socket on the mesh port.
func TestWriteFrom(t *testing.T) {
	ns := nstest.New(t)
	if err := ns.Do(func() error {
		rx, err := Listen(netip.MustParseAddrPort("[::]:0"))
		if err != nil {
			return err
		}
		defer rx.Close()
		tx, err := Listen(netip.MustParseAddrPort("[::]:0"))
		if err != nil {
			return err
		}
		defer tx.Close()
		ifa, err := ifIndex(nstest.IfA)
		if err != nil {
			return err
		}
		dst := netip.AddrPortFrom(netip.MustParseAddr("ff02::1").WithZone(nstest.IfA), rx.LocalAddr().Port())
		if err := tx.WriteFrom([]byte("hello"), nstest.AddrA, ifa, dst); err != nil {
			return err
		}
		got, from := readOne(t, rx)
		if got != "hello" || from.Addr() != nstest.AddrA {
			t.Errorf("got %q from %s, want hello from %s", got, from, nstest.AddrA)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func ifIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
