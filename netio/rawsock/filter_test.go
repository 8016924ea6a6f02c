//go:build linux

package rawsock

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// ipv4Golden is the program CaptureFilter assembled before IPv6 existed, for
// the two configurations below; with IPv6 off it must not change by a byte.
var ipv4Golden = []struct {
	cfg  FilterConfig
	want []bpf.RawInstruction
}{
	{
		cfg: FilterConfig{Ports: []uint16{5076}},
		want: []bpf.RawInstruction{
			{Op: 0x0028, Jt: 0, Jf: 0, K: 0xc},
			{Op: 0x0015, Jt: 0, Jf: 11, K: 0x800},
			{Op: 0x0020, Jt: 0, Jf: 0, K: 0x0},
			{Op: 0x0015, Jt: 0, Jf: 9, K: 0xffffffff},
			{Op: 0x0028, Jt: 0, Jf: 0, K: 0x4},
			{Op: 0x0015, Jt: 0, Jf: 7, K: 0xffff},
			{Op: 0x0030, Jt: 0, Jf: 0, K: 0x17},
			{Op: 0x0015, Jt: 0, Jf: 5, K: 0x11},
			{Op: 0x0028, Jt: 0, Jf: 0, K: 0x14},
			{Op: 0x0045, Jt: 4, Jf: 0, K: 0x1fff},
			{Op: 0x00b1, Jt: 0, Jf: 0, K: 0xe},
			{Op: 0x0048, Jt: 0, Jf: 0, K: 0x10},
			{Op: 0x0015, Jt: 2, Jf: 0, K: 0x13d4},
			{Op: 0x0006, Jt: 0, Jf: 0, K: 0x0},
			{Op: 0x0006, Jt: 0, Jf: 0, K: 0x0},
			{Op: 0x0006, Jt: 0, Jf: 0, K: 0x10000},
		},
	},
	{
		cfg: FilterConfig{Ports: []uint16{5076, 5064}, Mark: 0x534e, Fragments: true},
		want: []bpf.RawInstruction{
			{Op: 0x0020, Jt: 0, Jf: 0, K: 0xfffff014},
			{Op: 0x0015, Jt: 14, Jf: 0, K: 0x534e},
			{Op: 0x0028, Jt: 0, Jf: 0, K: 0xc},
			{Op: 0x0015, Jt: 0, Jf: 12, K: 0x800},
			{Op: 0x0020, Jt: 0, Jf: 0, K: 0x0},
			{Op: 0x0015, Jt: 0, Jf: 10, K: 0xffffffff},
			{Op: 0x0028, Jt: 0, Jf: 0, K: 0x4},
			{Op: 0x0015, Jt: 0, Jf: 8, K: 0xffff},
			{Op: 0x0030, Jt: 0, Jf: 0, K: 0x17},
			{Op: 0x0015, Jt: 0, Jf: 6, K: 0x11},
			{Op: 0x0028, Jt: 0, Jf: 0, K: 0x14},
			{Op: 0x0045, Jt: 5, Jf: 0, K: 0x1fff},
			{Op: 0x00b1, Jt: 0, Jf: 0, K: 0xe},
			{Op: 0x0048, Jt: 0, Jf: 0, K: 0x10},
			{Op: 0x0015, Jt: 3, Jf: 0, K: 0x13d4},
			{Op: 0x0015, Jt: 2, Jf: 0, K: 0x13c8},
			{Op: 0x0006, Jt: 0, Jf: 0, K: 0x0},
			{Op: 0x0006, Jt: 0, Jf: 0, K: 0x10000},
			{Op: 0x0006, Jt: 0, Jf: 0, K: 0x10000},
		},
	},
}

func TestCaptureFilterIPv4Unchanged(t *testing.T) {
	for _, g := range ipv4Golden {
		for _, groups := range [][]netip.Addr{nil, {netip.MustParseAddr("ff02::1:3")}} {
			cfg := g.cfg
			cfg.IPv6Groups = groups // ignored while IPv6 is off
			got, err := CaptureFilter(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(g.want) {
				t.Fatalf("%+v: %d instructions, want %d", cfg, len(got), len(g.want))
			}
			for i := range got {
				if got[i] != g.want[i] {
					t.Errorf("%+v: instruction %d = %+v, want %+v", cfg, i, got[i], g.want[i])
				}
			}
		}
	}
}

// vm returns a VM running the program for cfg on frames that carry mark:
// x/net/bpf's VM has no SKF_AD_MARK, so the load of the mark is replaced by
// a load of the constant.
func vm(t testing.TB, cfg FilterConfig, mark uint32) *bpf.VM {
	t.Helper()
	raw, err := CaptureFilter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	for i, in := range prog {
		if e, ok := in.(bpf.LoadExtension); ok && e.Num == bpf.ExtMark {
			prog[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: mark}
		}
	}
	v, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// eth6 is the Ethernet header of a search to ff02::1.
var eth6 = []byte{
	0x33, 0x33, 0x00, 0x00, 0x00, 0x01, // destination: the MAC of ff02::1
	0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, // source
	0x86, 0xdd, // EtherType IPv6
}

// ip6 is an IPv6 header from fd00:77::11 to dst with payload length plen and
// next header nh.
func ip6(plen uint16, nh byte, dst string) []byte {
	d := netip.MustParseAddr(dst).As16()
	return cat([]byte{
		0x60, 0, 0, 0, // version 6
		byte(plen >> 8), byte(plen), // payload length
		nh, 1, // next header, hop limit 1
		0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, // source fd00:77::11
	}, d[:])
}

// ext8 is an 8-byte options (or routing) header followed by nh.
func ext8(nh byte) []byte { return []byte{nh, 0, 0x01, 0x04, 0, 0, 0, 0} }

// frag8 is a fragment header followed by nh at offset off (8-byte units).
func frag8(nh byte, off uint16, more bool) []byte {
	fo := off << 3
	if more {
		fo |= 1
	}
	return []byte{nh, 0, byte(fo >> 8), byte(fo), 0, 0, 0, 9}
}

// udp is a UDP header to port with 16 bytes of payload.
func udp(port uint16) []byte {
	return cat([]byte{0x97, 0x46, byte(port >> 8), byte(port), 0, 24, 0, 0}, []byte("hello-snowsignal"))
}

func TestCaptureFilterVM(t *testing.T) {
	v4 := frametest.UDP{DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		Src: netip.MustParseAddrPort("10.77.0.11:38726"), Dst: netip.MustParseAddrPort("10.77.0.255:5076"),
		Payload: []byte("x")}.Frame()
	search := cat(eth6, ip6(24, 17, "ff02::1"), udp(5076))
	ports := []uint16{5076, 5064}
	const (
		off  = 0 // dropped in every configuration
		v6   = 1 // accepted with IPv6 on
		v6f  = 2 // accepted with IPv6 and Fragments on
		both = 3 // accepted with and without IPv6
	)
	tests := []struct {
		name   string
		b      []byte
		accept int
	}{
		{"IPv4 broadcast", v4, both},
		{"IPv6 search to ff02::1", search, v6},
		{"IPv6 search to port 5064", cat(eth6, ip6(24, 17, "ff02::1"), udp(5064)), v6},
		{"IPv6 to another port", cat(eth6, ip6(24, 17, "ff02::1"), udp(5075)), off},
		{"IPv6 to ff05::1 (site scope)", cat(eth6, ip6(24, 17, "ff05::1"), udp(5076)), off},
		{"IPv6 unicast", cat(eth6, ip6(24, 17, "fd00:77::2"), udp(5076)), off},
		{"IPv6 to a unicast MAC", cat([]byte{2, 0, 0, 0, 0, 2}, search[6:]), off},
		{"IPv4 header behind 0x86dd", cat(eth6, []byte{0x45}, search[15:]), off},
		{"ICMPv6", cat(eth6, ip6(8, 58, "ff02::1"), make([]byte, 8)), off},
		{"cut before the UDP destination port", search[:56], off},
		{"hop-by-hop", cat(eth6, ip6(32, 0, "ff02::1"), ext8(17), udp(5076)), v6},
		{"hop-by-hop, destination options", cat(eth6, ip6(40, 0, "ff02::1"), ext8(60), ext8(17), udp(5076)), v6},
		{
			name: "16-byte destination options",
			b: cat(eth6, ip6(40, 60, "ff02::1"),
				[]byte{17, 1, 0x01, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // next UDP, length 1: 16 bytes
				udp(5076)),
			accept: v6,
		},
		{"destination options twice", cat(eth6, ip6(40, 60, "ff02::1"), ext8(60), ext8(17), udp(5076)), v6},
		{"three option headers: too deep", cat(eth6, ip6(48, 0, "ff02::1"), ext8(60), ext8(60), ext8(17), udp(5076)), off},
		{"hop-by-hop not first", cat(eth6, ip6(40, 60, "ff02::1"), ext8(0), ext8(17), udp(5076)), off},
		{"routing header", cat(eth6, ip6(32, 43, "ff02::1"), ext8(17), udp(5076)), off},
		{"ESP", cat(eth6, ip6(24, 50, "ff02::1"), make([]byte, 24)), off},
		{"hop-by-hop to a wrong port", cat(eth6, ip6(32, 0, "ff02::1"), ext8(17), udp(53)), off},
		{"first fragment", cat(eth6, ip6(32, 44, "ff02::1"), frag8(17, 0, true), udp(5076)), v6},
		{"first fragment to a wrong port", cat(eth6, ip6(32, 44, "ff02::1"), frag8(17, 0, true), udp(53)), off},
		{"atomic fragment", cat(eth6, ip6(32, 44, "ff02::1"), frag8(17, 0, false), udp(5076)), v6},
		{"hop-by-hop, destination options, first fragment", cat(eth6, ip6(48, 0, "ff02::1"), ext8(60), ext8(44), frag8(17, 0, true), udp(5076)), v6},
		{"later fragment", cat(eth6, ip6(32, 44, "ff02::1"), frag8(17, 3, false), make([]byte, 24)), v6f},
		{"later fragment after hop-by-hop", cat(eth6, ip6(40, 0, "ff02::1"), ext8(44), frag8(17, 3, true), make([]byte, 24)), v6f},
		{"later fragment of a non-UDP datagram", cat(eth6, ip6(32, 44, "ff02::1"), frag8(6, 3, false), make([]byte, 24)), off},
		{"first fragment, options after it", cat(eth6, ip6(40, 44, "ff02::1"), frag8(60, 0, true), ext8(17), udp(5076)), off},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			cfg  FilterConfig
			pass bool
		}{
			{FilterConfig{Ports: ports, Mark: 7, Fragments: true}, tt.accept == both},
			{FilterConfig{Ports: ports, IPv6: true}, tt.accept != off && tt.accept != v6f},
			{FilterConfig{Ports: ports, IPv6: true, Fragments: true, Mark: 7}, tt.accept != off},
			{FilterConfig{Ports: ports, IPv6: true, Fragments: true, IPv6Groups: []netip.Addr{
				netip.MustParseAddr("ff02::1:3"), netip.MustParseAddr("ff02::1")}}, tt.accept != off},
		} {
			n, err := vm(t, c.cfg, 0).Run(tt.b)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if want := c.pass; (n == Snaplen) != want || n != 0 && n != Snaplen {
				t.Errorf("%s with %+v: returned %d for %d bytes, want accepted %v", tt.name, c.cfg, n, len(tt.b), want)
			}
			// Our own injections are dropped, IPv4 or IPv6.
			if n, _ := vm(t, c.cfg, c.cfg.Mark).Run(tt.b); c.cfg.Mark != 0 && n != 0 {
				t.Errorf("%s with %+v: accepted a frame with our mark", tt.name, c.cfg)
			}
		}
	}
}

func TestCaptureFilterGroups(t *testing.T) {
	cfg := FilterConfig{Ports: []uint16{5076}, IPv6: true, IPv6Groups: []netip.Addr{
		netip.MustParseAddr("ff02::1:3"), netip.MustParseAddr("ff02::fb"), netip.MustParseAddr("ff02::1234:5678:9abc:def0")}}
	v := vm(t, cfg, 0)
	for dst, want := range map[string]bool{
		"ff02::1:3":                 true,
		"ff02::fb":                  true,
		"ff02::1234:5678:9abc:def0": true,
		"ff02::1":                   false, // link scope, not configured
		"ff02::1:2":                 false, // differs in the last word only
		"ff02:0:0:1::1:3":           false, // differs in the second word only
		"ff02::1234:5678:9abc:def1": false,
	} {
		a := netip.MustParseAddr(dst).As16()
		b := cat(eth6, ip6(24, 17, dst), udp(5076))
		b[2], b[3], b[4], b[5] = a[12], a[13], a[14], a[15]
		if n, _ := v.Run(b); (n > 0) != want {
			t.Errorf("group %s: accepted %v, want %v", dst, n > 0, want)
		}
	}
}

func TestCaptureFilterErrors(t *testing.T) {
	many := make([]netip.Addr, MaxFilterGroups+1)
	for i := range many {
		many[i] = netip.AddrFrom16([16]byte{0xff, 0x02, 15: byte(i)})
	}
	for name, tc := range map[string]struct {
		cfg  FilterConfig
		want string
	}{
		"no ports":                             {FilterConfig{}, "no ports"},
		"too many groups":                      {FilterConfig{Ports: []uint16{1}, IPv6: true, IPv6Groups: many}, "at most 16"},
		"site-scope group":                     {FilterConfig{Ports: []uint16{1}, IPv6: true, IPv6Groups: []netip.Addr{netip.MustParseAddr("ff05::1:3")}}, "not link-scope"},
		"unicast group":                        {FilterConfig{Ports: []uint16{1}, IPv6: true, IPv6Groups: []netip.Addr{netip.MustParseAddr("fd00::1")}}, "not link-scope"},
		"IPv4 group":                           {FilterConfig{Ports: []uint16{1}, IPv6: true, IPv6Groups: []netip.Addr{netip.MustParseAddr("224.0.0.1")}}, "not link-scope"},
		"group with a zone":                    {FilterConfig{Ports: []uint16{1}, IPv6: true, IPv6Groups: []netip.Addr{netip.MustParseAddr("ff02::1%eth0")}}, "not link-scope"},
		"200 ports, 16 groups: jumps too long": {FilterConfig{Ports: make([]uint16, 200), IPv6: true, IPv6Groups: many[:16]}, ""},
	} {
		_, err := CaptureFilter(tc.cfg)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
		}
	}
}

// FuzzCaptureFilter6 checks the IPv6 program against the decoder: a frame
// the program accepts and frame.Decode6 decodes goes to a link-scope group
// on a relayed port (or is a later fragment, which has no port), with the
// UDP header where the decoder found it; and an IPv4 frame is judged as by
// the IPv4-only program.
func FuzzCaptureFilter6(f *testing.F) {
	for _, b := range [][]byte{
		cat(eth6, ip6(24, 17, "ff02::1"), udp(5076)),
		cat(eth6, ip6(32, 0, "ff02::1"), ext8(17), udp(5076)),
		cat(eth6, ip6(40, 0, "ff02::1"), ext8(60), ext8(17), udp(5076)),
		cat(eth6, ip6(40, 60, "ff02::1"), []byte{17, 1, 0x01, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, udp(5076)),
		cat(eth6, ip6(32, 44, "ff02::1"), frag8(17, 0, true), udp(5076)),
		cat(eth6, ip6(48, 0, "ff02::1"), ext8(60), ext8(44), frag8(17, 0, true), udp(5076)),
		cat(eth6, ip6(32, 44, "ff02::1"), frag8(17, 3, false), make([]byte, 24)),
		cat(eth6, ip6(24, 17, "ff02::1:3"), udp(5064)),
		frametest.UDP{DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			Src: netip.MustParseAddrPort("10.77.0.11:38726"), Dst: netip.MustParseAddrPort("10.77.0.255:5076")}.Frame(),
	} {
		f.Add(b)
	}
	ports := []uint16{5076, 5064}
	v6 := vm(f, FilterConfig{Ports: ports, IPv6: true, Fragments: true}, 0)
	v4 := vm(f, FilterConfig{Ports: ports, Fragments: true}, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := v6.Run(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= 14 && b[12] == 0x08 && b[13] == 0x00 {
			if m, _ := v4.Run(b); m != n {
				t.Fatalf("IPv4 frame: %d with IPv6 on, %d without", n, m)
			}
			return
		}
		if n == 0 {
			return
		}
		var fr frame.Frame
		if fr.Decode6(b) != nil {
			return // the decoder's to drop
		}
		if !frame.IsLinkScopeMulticast(fr.Dst) || b[0] != 0x33 || b[1] != 0x33 {
			t.Fatalf("accepted a frame to %v, MAC % x", fr.Dst, b[:6])
		}
		if fr.HasUDPHeader() && fr.DstPort != 5076 && fr.DstPort != 5064 {
			t.Fatalf("accepted a frame to port %d: %+v", fr.DstPort, fr)
		}
	})
}
