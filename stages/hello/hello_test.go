//go:build linux

package hello

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn/meshconntest"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

var mac = [6]byte{2, 0, 10, 77, 0, 1}

// TestHelloDestinations: a relay with IPv4 broadcasts its hello to the
// subnet's broadcast address; one whose interface has only IPv6 (ULA)
// sends it to ff02::1 on the interface, from its ULA address, which becomes
// its own address in the segment table. Both carry the capabilities in the
// flags byte.
func TestHelloDestinations(t *testing.T) {
	for _, tc := range []struct {
		name string
		info *iface.Info
		dst  netip.AddrPort
		src  netip.Addr
	}{
		{"ipv4", &iface.Info{Name: "eth0", Index: 2, MAC: mac, Addr: netip.MustParseAddr("10.77.0.1"),
			Prefix: netip.MustParsePrefix("10.77.0.0/24"), Broadcast: netip.MustParseAddr("10.77.0.255"),
			Addrs6: []netip.Prefix{netip.MustParsePrefix("fd00:77::1/64")}},
			netip.MustParseAddrPort("10.77.0.255:7124"), netip.Addr{}},
		{"ipv6 only", &iface.Info{Name: "eth0", Index: 2, MAC: mac,
			Addrs6: []netip.Prefix{netip.MustParsePrefix("fd00:77::1/64")}, LinkLocal6: netip.MustParseAddr("fe80::1")},
			netip.AddrPortFrom(netip.MustParseAddr("ff02::1%eth0"), 7124), netip.MustParseAddr("fd00:77::1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := meshconntest.New(1)
			cur := &iface.Current{}
			cur.Store(tc.info)
			tb := segment.NewTable(0x0a0b0c0d, time.Second)
			h := New(tb, conn, nil, cur, 7124, time.Second, mesh.CapIPv6, zerolog.Nop())
			h.Send()
			sent := conn.Sent()
			if len(sent) != 1 {
				t.Fatalf("sent %d hellos, want 1", len(sent))
			}
			d := sent[0]
			if d.Addr != tc.dst || d.Src != tc.src || (tc.src.IsValid() && d.Ifindex != 2) {
				t.Errorf("hello to %s from %s (if %d), want to %s from %s", d.Addr, d.Src, d.Ifindex, tc.dst, tc.src)
			}
			if id, m, ok := segment.ParseHello(d.Data); !ok || id != 0x0a0b0c0d || m != mac || mesh.HelloCaps(d.Data) != mesh.CapIPv6 {
				t.Errorf("hello %x: id %#x mac %x caps %v", d.Data, id, m, mesh.HelloCaps(d.Data))
			}
		})
	}
}

// TestNoAddressNoHello: an interface without any usable address (only a
// link-local IPv6 one) sends no hello.
func TestNoAddressNoHello(t *testing.T) {
	conn := meshconntest.New(1)
	cur := &iface.Current{}
	cur.Store(&iface.Info{Name: "eth0", Index: 2, MAC: mac, LinkLocal6: netip.MustParseAddr("fe80::1")})
	New(segment.NewTable(1, time.Second), conn, nil, cur, 7124, time.Second, 0, zerolog.Nop()).Send()
	if n := len(conn.Sent()); n != 0 {
		t.Errorf("sent %d hellos, want none", n)
	}
}
