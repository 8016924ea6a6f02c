package frame_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
)

// eth6 is an Ethernet II header as a client sends an IPv6 search to ff02::1.
var eth6 = []byte{
	0x33, 0x33, 0x00, 0x00, 0x00, 0x01, // destination: 33:33 + low 32 bits of ff02::1
	0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, // source: the client
	0x86, 0xdd, // EtherType: IPv6
}

// ip6 returns a 40-byte IPv6 header from fd00:77::11 (a ULA client) to
// ff02::1 with the given payload length and next header, hop limit 1.
func ip6(payloadLen uint16, next byte) []byte {
	return []byte{
		0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
		byte(payloadLen >> 8), byte(payloadLen), // payload length
		next,                                                          // next header
		0x01,                                                          // hop limit 1
		0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, // source fd00:77::11
		0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // destination ff02::1
	}
}

// ext8 returns an 8-byte extension header (hop-by-hop, destination options
// or routing, by what announces it) followed by next: PadN filling it.
func ext8(next byte) []byte {
	return []byte{
		next,       // next header
		0x00,       // header extension length 0: 8 bytes
		0x01, 0x04, // option PadN, 4 bytes of padding
		0, 0, 0, 0,
	}
}

// frag8 returns a fragment header followed by next, with the fragment
// offset in 8-byte units, the M flag and identification 0x01020304.
func frag8(next byte, offset uint16, more bool) []byte {
	fo := offset << 3
	if more {
		fo |= 1
	}
	return []byte{
		next,                    // next header
		0x00,                    // reserved
		byte(fo >> 8), byte(fo), // fragment offset (13 bits), reserved (2), M
		0x01, 0x02, 0x03, 0x04, // identification
	}
}

// rep returns n copies of b concatenated.
func rep(b []byte, n int) []byte { return bytes.Repeat(b, n) }

var (
	client6  = netip.MustParseAddr("fd00:77::11")
	allNodes = netip.MustParseAddr("ff02::1")
	search6  = frame.Frame{IPv6: true, IHL: 40, IPLen: 64, Proto: 17, Src: client6, Dst: allNodes,
		SrcPort: 38726, DstPort: 5076, UDPLen: 24}
)

// decode6Tests are the table for TestDecode6; the frames are byte literals
// with a comment per field, built from the helpers above.
var decode6Tests = []struct {
	name string
	b    []byte
	want frame.Frame // compared when err is nil
	err  error
}{
	{
		name: "PVAccess search to ff02::1",
		b: []byte{
			0x33, 0x33, 0x00, 0x00, 0x00, 0x01, // Ethernet destination: 33:33:00:00:00:01
			0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, // Ethernet source
			0x86, 0xdd, // EtherType IPv6
			0x60, 0x00, 0x00, 0x00, // version 6, traffic class, flow label
			0x00, 0x18, // payload length 24
			0x11,                                                          // next header UDP
			0x01,                                                          // hop limit 1
			0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, // source fd00:77::11
			0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // destination ff02::1
			0x97, 0x46, // UDP source port 38726
			0x13, 0xd4, // UDP destination port 5076
			0x00, 0x18, // UDP length 24
			0x12, 0x34, // UDP checksum (not checked by Decode6)
			'h', 'e', 'l', 'l', 'o', '-', 's', 'n', 'o', 'w', 's', 'i', 'g', 'n', 'a', 'l', // payload
		},
		want: search6,
	},
	{
		name: "hop-by-hop options (router alert)",
		b: cat(eth6, ip6(32, 0), []byte{
			0x11,                   // next header UDP
			0x00,                   // length 0: 8 bytes
			0x05, 0x02, 0x00, 0x00, // router alert (RFC 2711), value 0
			0x01, 0x00, // PadN, 0 bytes
		}, udp8(24), payload16),
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 72, Proto: 17, Src: client6, Dst: allNodes,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},
	{
		name: "hop-by-hop then 16-byte destination options",
		b: cat(eth6, ip6(48, 0), ext8(60), []byte{
			0x11,                   // next header UDP
			0x01,                   // length 1: 16 bytes
			0x01, 0x0c, 0, 0, 0, 0, // PadN, 12 bytes of padding
			0, 0, 0, 0, 0, 0, 0, 0,
		}, udp8(24), payload16),
		want: frame.Frame{IPv6: true, IHL: 64, IPLen: 88, Proto: 17, Src: client6, Dst: allNodes,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},
	{
		name: "routing header, segments left 0",
		b: cat(eth6, ip6(32, 43), []byte{
			0x11,       // next header UDP
			0x00,       // length 0: 8 bytes
			0x04,       // routing type 4 (segment routing)
			0x00,       // segments left 0: the route is done
			0, 0, 0, 0, // type-specific data
		}, udp8(24), payload16),
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 72, Proto: 17, Src: client6, Dst: allNodes,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},
	{
		name: "atomic fragment (offset 0, M clear) is no fragment",
		b:    cat(eth6, ip6(32, 44), frag8(17, 0, false), udp8(24), payload16),
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 72, Proto: 17, ID6: 0x01020304, Src: client6, Dst: allNodes,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},
	{
		name: "first fragment, UDP length beyond the bytes present",
		b:    cat(eth6, ip6(1448, 44), frag8(17, 0, true), udp8(3000), make([]byte, 1432)),
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 1488, Proto: 17, ID6: 0x01020304, MoreFrags: true,
			Src: client6, Dst: allNodes, SrcPort: 38726, DstPort: 5076, UDPLen: 3000},
	},
	{
		name: "middle fragment",
		b:    cat(eth6, ip6(1448, 44), frag8(17, 180, true), make([]byte, 1440)), // offset 1440
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 1488, Proto: 17, ID6: 0x01020304, FragOff: 180, MoreFrags: true,
			Src: client6, Dst: allNodes},
	},
	{
		name: "last fragment, any length",
		b:    cat(eth6, ip6(13, 44), frag8(17, 360, false), []byte{1, 2, 3, 4, 5}),
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 53, Proto: 17, ID6: 0x01020304, FragOff: 360,
			Src: client6, Dst: allNodes},
	},
	{
		name: "hop-by-hop before the fragment header of a middle fragment",
		b:    cat(eth6, ip6(32, 0), ext8(44), frag8(17, 3, true), make([]byte, 16)),
		want: frame.Frame{IPv6: true, IHL: 56, IPLen: 72, Proto: 17, ID6: 0x01020304, FragOff: 3, MoreFrags: true,
			Src: client6, Dst: allNodes},
	},
	{
		name: "trailing bytes after the payload",
		b:    cat(eth6, ip6(24, 17), udp8(24), payload16, make([]byte, 10)),
		want: search6,
	},
	{
		name: "empty UDP payload",
		b:    cat(eth6, ip6(8, 17), udp8(8)),
		want: frame.Frame{IPv6: true, IHL: 40, IPLen: 48, Proto: 17, Src: client6, Dst: allNodes,
			SrcPort: 38726, DstPort: 5076, UDPLen: 8},
	},
	{
		name: "six extension headers, the most walked",
		b:    cat(eth6, ip6(72, 0), rep(ext8(60), 5), ext8(17), udp8(24), payload16),
		want: frame.Frame{IPv6: true, IHL: 88, IPLen: 112, Proto: 17, Src: client6, Dst: allNodes,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},

	{name: "empty", b: nil, err: frame.ErrTruncated},
	{name: "Ethernet header cut", b: eth6[:13], err: frame.ErrTruncated},
	{name: "IPv6 header missing", b: eth6, err: frame.ErrTruncated},
	{name: "IPv6 header cut", b: cat(eth6, ip6(24, 17)[:39]), err: frame.ErrTruncated},
	{name: "IPv4 EtherType", b: cat(eth, ip20(44, 0, 17), udp8(24), payload16), err: frame.ErrNotIPv6},
	{name: "ARP", b: cat(ethType(0x08, 0x06), make([]byte, 48)), err: frame.ErrNotIPv6},
	{
		name: "IPv4 header behind the IPv6 EtherType",
		b:    cat(eth6, []byte{0x45}, ip6(24, 17)[1:], udp8(24), payload16), // version 4
		err:  frame.ErrBadIPVersion,
	},
	{
		name: "jumbogram: payload length 0, jumbo payload option",
		b: cat(eth6, ip6(0, 0), []byte{
			0x11, 0x00, // next header UDP, length 0
			0xc2, 0x04, 0x00, 0x00, 0x00, 0x20, // jumbo payload option (RFC 2675): 32 bytes
		}, udp8(0), payload16),
		err: frame.ErrZeroPayloadLength,
	},
	{name: "payload length 0, nothing after", b: cat(eth6, ip6(0, 59)), err: frame.ErrZeroPayloadLength},
	{name: "payload length beyond the buffer", b: cat(eth6, ip6(25, 17), udp8(25), payload16), err: frame.ErrTruncated},
	{name: "payload length beyond a cut extension header", b: cat(eth6, ip6(32, 0), ext8(17)[:4]), err: frame.ErrTruncated},
	{name: "UDP header cut", b: cat(eth6, ip6(4, 17), udp8(8)[:4]), err: frame.ErrTruncated},
	{name: "first fragment without a UDP header", b: cat(eth6, ip6(8, 44), frag8(17, 0, true)), err: frame.ErrTruncated},
	{name: "last first fragment splits the UDP header", b: cat(eth6, ip6(12, 44), frag8(17, 0, false), udp8(100)[:4]), err: frame.ErrTruncated},

	{name: "hop-by-hop after destination options", b: cat(eth6, ip6(40, 60), ext8(0), ext8(17), udp8(24), payload16), err: frame.ErrBadExtHeader},
	{name: "extension header shorter than 8 bytes of payload", b: cat(eth6, ip6(4, 60), ext8(17)[:4]), err: frame.ErrBadExtHeader},
	{
		name: "extension header length past the payload",
		b: cat(eth6, ip6(32, 60), []byte{
			0x11, 0x04, // next header UDP, length 4: 40 bytes, past the 32-byte payload
			0x01, 0x04, 0, 0, 0, 0,
		}, udp8(24), payload16),
		err: frame.ErrBadExtHeader,
	},
	{name: "seven extension headers", b: cat(eth6, ip6(80, 60), rep(ext8(60), 6), ext8(17), udp8(24), payload16), err: frame.ErrExtChainTooLong},
	{
		name: "routing header with segments left",
		b: cat(eth6, ip6(32, 43), []byte{
			0x11, 0x00, // next header UDP, length 0
			0x04, // routing type 4
			0x01, // segments left 1: ff02::1 is not the final destination
			0, 0, 0, 0,
		}, udp8(24), payload16),
		err: frame.ErrRoutingHeader,
	},
	{name: "ESP", b: cat(eth6, ip6(24, 50), make([]byte, 24)), err: frame.ErrIPsec},
	{name: "AH after hop-by-hop", b: cat(eth6, ip6(32, 0), ext8(51), make([]byte, 24)), err: frame.ErrIPsec},
	{name: "mobility header", b: cat(eth6, ip6(24, 135), make([]byte, 24)), err: frame.ErrUnknownExtHeader},
	{name: "experimental 253", b: cat(eth6, ip6(24, 253), make([]byte, 24)), err: frame.ErrUnknownExtHeader},
	{name: "TCP", b: cat(eth6, ip6(20, 6), make([]byte, 20)), err: frame.ErrNotUDP},
	{name: "ICMPv6", b: cat(eth6, ip6(8, 58), make([]byte, 8)), err: frame.ErrNotUDP},
	{name: "no next header", b: cat(eth6, ip6(8, 59), make([]byte, 8)), err: frame.ErrNotUDP},
	{name: "ICMPv6 after destination options", b: cat(eth6, ip6(16, 60), ext8(58), make([]byte, 8)), err: frame.ErrNotUDP},

	{name: "two fragment headers", b: cat(eth6, ip6(40, 44), frag8(44, 0, false), frag8(17, 0, false), udp8(24), payload16), err: frame.ErrBadFragment},
	{name: "fragment header cut", b: cat(eth6, ip6(4, 44), frag8(17, 0, true)[:4]), err: frame.ErrBadFragment},
	{name: "non-last fragment not a multiple of 8", b: cat(eth6, ip6(20, 44), frag8(17, 1, true), make([]byte, 12)), err: frame.ErrBadFragment},
	{
		name: "fragment ending past 65535 (ping of death)",
		b:    cat(eth6, ip6(24, 44), frag8(17, 8190, false), make([]byte, 16)), // offset 65520, 16 bytes
		err:  frame.ErrBadFragment,
	},
	{name: "destination options after the fragment header", b: cat(eth6, ip6(40, 44), frag8(60, 0, true), ext8(17), udp8(24), payload16), err: frame.ErrNotUDP},

	{name: "UDP length 0 (jumbogram)", b: cat(eth6, ip6(24, 17), udp8(0), payload16), err: frame.ErrBadUDPLength},
	{name: "UDP length 7", b: cat(eth6, ip6(24, 17), udp8(7), payload16), err: frame.ErrBadUDPLength},
	{name: "UDP length beyond the payload", b: cat(eth6, ip6(24, 17), udp8(25), payload16, []byte{0}), err: frame.ErrBadUDPLength},
	{name: "UDP length short of the payload", b: cat(eth6, ip6(24, 17), udp8(23), payload16), err: frame.ErrBadUDPLength},
	{name: "first fragment announcing less than it carries", b: cat(eth6, ip6(40, 44), frag8(17, 0, true), udp8(24), payload16, make([]byte, 8)), err: frame.ErrBadUDPLength},
	{name: "first fragment UDP length 65535, no other header", b: cat(eth6, ip6(32, 44), frag8(17, 0, true), udp8(65535), payload16),
		want: frame.Frame{IPv6: true, IHL: 48, IPLen: 72, Proto: 17, ID6: 0x01020304, MoreFrags: true,
			Src: client6, Dst: allNodes, SrcPort: 38726, DstPort: 5076, UDPLen: 65535}},
	{
		name: "first fragment UDP length past 65535 with hop-by-hop",
		b:    cat(eth6, ip6(40, 0), ext8(44), frag8(17, 0, true), udp8(65528), payload16), // 8 + 65528 > 65535
		err:  frame.ErrBadUDPLength,
	},
	{name: "non-last fragment shorter than 8 bytes", b: cat(eth6, ip6(12, 44), frag8(17, 0, true), udp8(100)[:4]), err: frame.ErrBadFragment},
}

func TestDecode6(t *testing.T) {
	for _, tt := range decode6Tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, decode := range []struct {
				name string
				fn   func(*frame.Frame, []byte) error
			}{{"Decode6", (*frame.Frame).Decode6}, {"DecodeIP", (*frame.Frame).DecodeIP}} {
				// A frame left over from an earlier decode must not leak into this one.
				f := frame.Frame{ID: 7, FragOff: 9, MoreFrags: true, ID6: 5, SrcPort: 1}
				err := decode.fn(&f, tt.b)
				want := tt.err
				if decode.name == "DecodeIP" && want == frame.ErrNotIPv6 {
					continue // DecodeIP decodes those as IPv4; see TestDecodeIP
				}
				if err != want {
					t.Fatalf("%s: err = %v, want %v", decode.name, err, want)
				}
				if err != nil {
					continue
				}
				if f != tt.want {
					t.Errorf("%s:\n got %+v\nwant %+v", decode.name, f, tt.want)
				}
				if f.Len() > len(tt.b) {
					t.Errorf("Len() = %d > len(b) = %d", f.Len(), len(tt.b))
				}
			}
		})
	}
}

// TestDecodeIP: DecodeIP is Decode for everything but the IPv6 EtherType,
// and resets the IPv6 fields an earlier IPv6 decode left.
func TestDecodeIP(t *testing.T) {
	for _, tt := range decodeTests {
		var a, b frame.Frame
		errA := a.Decode(tt.b)
		b.IPv6, b.ID6 = true, 5
		errB := b.DecodeIP(tt.b)
		if tt.name == "IPv6" {
			// 48 zero bytes behind the IPv6 EtherType: version 0.
			if errB != frame.ErrBadIPVersion {
				t.Errorf("%s: DecodeIP err = %v, want bad_ip_version", tt.name, errB)
			}
			continue
		}
		if errA != errB || errA == nil && a != b {
			t.Errorf("%s: DecodeIP = %+v, %v; Decode = %+v, %v", tt.name, b, errB, a, errA)
		}
	}
	var f frame.Frame
	if err := f.DecodeIP(cat(ethType(0x08, 0x06), make([]byte, 48))); err != frame.ErrNotIPv4 {
		t.Errorf("DecodeIP(ARP) = %v, want not_ipv4", err)
	}
}

// TestFrame6Helpers: the helpers TestFrameHelpers does not cover.
func TestFrame6Helpers(t *testing.T) {
	for _, tt := range decode6Tests[:10] {
		var f frame.Frame
		if err := f.Decode6(tt.b); err != nil {
			t.Fatal(err)
		}
		if f.HopLimit(tt.b) != 1 {
			t.Errorf("%s: HopLimit = %d, want 1", tt.name, f.HopLimit(tt.b))
		}
	}
	var f frame.Frame
	f.Decode6(decode6Tests[6].b)
	if f.FragmentID() != 0x01020304 {
		t.Errorf("IPv6 FragmentID = %#x", f.FragmentID())
	}
	f.Decode(decodeTests[5].b)
	if f.FragmentID() != 11687 || f.HopLimit(decodeTests[5].b) != 64 {
		t.Errorf("IPv4 FragmentID, HopLimit = %d, %d; want 11687, 64", f.FragmentID(), f.HopLimit(decodeTests[5].b))
	}
}

func TestCheckSource6(t *testing.T) {
	for a, want := range map[string]error{
		"fd00:77::11":          nil, // ULA
		"2001:db8::1":          nil, // global
		"fe80::1":              frame.ErrLinkLocalSource,
		"febf:ffff::1":         frame.ErrLinkLocalSource, // top of fe80::/10
		"fec0::1":              nil,                      // just above fe80::/10 (deprecated site-local, routable)
		"::":                   frame.ErrBadSource,
		"::1":                  frame.ErrBadSource,
		"ff02::1":              frame.ErrBadSource,
		"::ffff:10.77.0.11":    frame.ErrBadSource,
		"10.77.0.11":           frame.ErrBadSource, // not IPv6 at all
		"fe80::1%eth0":         frame.ErrLinkLocalSource,
		"2001:db8::1:0:0:1234": nil,
	} {
		if got := frame.CheckSource6(netip.MustParseAddr(a)); got != want {
			t.Errorf("CheckSource6(%s) = %v, want %v", a, got, want)
		}
	}
}

func TestCheckGroup(t *testing.T) {
	groups := []netip.Addr{netip.MustParseAddr("ff02::1"), netip.MustParseAddr("ff02::1:3")}
	for a, want := range map[string]error{
		"ff02::1":       nil,
		"ff02::1:3":     nil,
		"ff02::2":       frame.ErrGroupNotRelayed, // all routers: link scope, not configured
		"ff05::1:3":     frame.ErrNotLinkScope,    // site scope
		"ff01::1":       frame.ErrNotLinkScope,    // interface-local
		"fd00:77::ffff": frame.ErrNotLinkScope,
		"10.77.0.255":   frame.ErrNotLinkScope,
	} {
		if got := frame.CheckGroup(netip.MustParseAddr(a), groups); got != want {
			t.Errorf("CheckGroup(%s) = %v, want %v", a, got, want)
		}
	}
	if frame.CheckGroup(allNodes, nil) != frame.ErrGroupNotRelayed {
		t.Error("CheckGroup with no groups accepted ff02::1")
	}
}

func TestMulticastMAC(t *testing.T) {
	for a, want := range map[string][6]byte{
		"ff02::1":         {0x33, 0x33, 0, 0, 0, 1},
		"ff02::1:ff00:11": {0x33, 0x33, 0xff, 0, 0, 0x11}, // solicited-node
		"ff02::1:3":       {0x33, 0x33, 0, 1, 0, 3},
		"ff02::dead:beef": {0x33, 0x33, 0xde, 0xad, 0xbe, 0xef},
	} {
		if got := frame.MulticastMAC(netip.MustParseAddr(a)); got != want {
			t.Errorf("MulticastMAC(%s) = % x, want % x", a, got, want)
		}
	}
}

func TestSetMulticastEthernet(t *testing.T) {
	b := cat([]byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: whatever the sender used
		0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // source: the client
		0x86, 0xdd, // EtherType IPv6
	}, []byte{0x60})
	frame.SetMulticastEthernet(b, netip.MustParseAddr("ff02::1:3"), [6]byte{0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09})
	want := []byte{
		0x33, 0x33, 0x00, 0x01, 0x00, 0x03, // destination: the group's MAC
		0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09, // source: ours
		0x86, 0xdd, // EtherType untouched
		0x60, // and nothing after it
	}
	if !bytes.Equal(b, want) {
		t.Errorf("got % x\nwant % x", b, want)
	}
}

func TestDecodeErrorString6(t *testing.T) {
	want := map[frame.DecodeError]string{
		frame.ErrNotIPv6:           "not_ipv6",
		frame.ErrZeroPayloadLength: "zero_payload_length",
		frame.ErrBadExtHeader:      "bad_ext_header",
		frame.ErrExtChainTooLong:   "ext_chain_too_long",
		frame.ErrRoutingHeader:     "routing_header",
		frame.ErrIPsec:             "ipsec",
		frame.ErrUnknownExtHeader:  "unknown_ext_header",
		frame.ErrLinkLocalSource:   "link_local_source",
		frame.ErrBadSource:         "bad_source",
		frame.ErrNotLinkScope:      "not_link_scope",
		frame.ErrGroupNotRelayed:   "group_not_relayed",
	}
	for e, s := range want {
		if e.Error() != s {
			t.Errorf("DecodeError(%d) = %q, want %q", uint8(e), e.Error(), s)
		}
	}
}
