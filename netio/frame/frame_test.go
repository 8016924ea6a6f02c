package frame_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
)

// cat concatenates the pieces of a test frame.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// eth is an Ethernet II header as a client sends a broadcast.
var eth = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
	0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, // source: the client of the vectors
	0x08, 0x00, // EtherType: IPv4
}

// ethType returns an Ethernet header with the given EtherType bytes.
func ethType(hi, lo byte) []byte {
	b := bytes.Clone(eth)
	b[12], b[13] = hi, lo
	return b
}

// payload16 is the 16-byte payload of the first client broadcast in
// python-relay-segA-capture-and-mesh.pcap.
var payload16 = []byte("hello-snowsignal")

// ip20 returns a 20-byte IPv4 header (no options) from 10.77.0.11 to
// 10.77.0.255 with the given total length, flags/fragment word and
// protocol. Its checksum is left zero: Decode does not check it.
func ip20(totalLen uint16, flagsFrag uint16, proto byte) []byte {
	return []byte{
		0x45,                                // version 4, IHL 5 (20 bytes)
		0x00,                                // DSCP/ECN
		byte(totalLen >> 8), byte(totalLen), // total length
		0x2d, 0xa7, // identification 11687
		byte(flagsFrag >> 8), byte(flagsFrag), // flags, fragment offset
		0x40,       // TTL 64
		proto,      // protocol
		0x00, 0x00, // header checksum (not checked by Decode)
		10, 77, 0, 11, // source 10.77.0.11
		10, 77, 0, 255, // destination 10.77.0.255
	}
}

// udp8 returns a UDP header from port 38726 to 5076 with the given length.
func udp8(length uint16) []byte {
	return []byte{
		0x97, 0x46, // source port 38726
		0x13, 0xd4, // destination port 5076
		byte(length >> 8), byte(length), // length
		0x15, 0xcd, // checksum (partial, as captured)
	}
}

var (
	client    = netip.MustParseAddr("10.77.0.11")
	directed  = netip.MustParseAddr("10.77.0.255")
	limited   = netip.MustParseAddr("255.255.255.255")
	firstFrag = frame.Frame{IHL: 20, IPLen: 1500, Proto: 17, ID: 11687, MoreFrags: true,
		Src: client, Dst: directed, SrcPort: 38726, DstPort: 5076, UDPLen: 2008}
)

// decodeTests are the table for TestDecode; the frames are byte literals
// with a comment per field.
var decodeTests = []struct {
	name string
	b    []byte
	want frame.Frame // compared when err is nil
	err  error
}{
	{
		name: "directed broadcast (vector segA packet 1)",
		b: []byte{
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
			0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, // Ethernet source
			0x08, 0x00, // EtherType IPv4
			0x45,       // version 4, IHL 5
			0x00,       // DSCP/ECN
			0x00, 0x2c, // total length 44
			0x2d, 0xa7, // ID 11687
			0x40, 0x00, // flags DF, offset 0
			0x40,       // TTL 64
			0x11,       // protocol UDP
			0xf7, 0x76, // header checksum
			0x0a, 0x4d, 0x00, 0x0b, // source 10.77.0.11
			0x0a, 0x4d, 0x00, 0xff, // destination 10.77.0.255
			0x97, 0x46, // UDP source port 38726
			0x13, 0xd4, // UDP destination port 5076
			0x00, 0x18, // UDP length 24
			0x15, 0xcd, // UDP checksum: partial (pseudo-header sum only)
			'h', 'e', 'l', 'l', 'o', '-', 's', 'n', 'o', 'w', 's', 'i', 'g', 'n', 'a', 'l', // payload
		},
		want: frame.Frame{IHL: 20, IPLen: 44, Proto: 17, ID: 11687, Src: client, Dst: directed,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},
	{
		name: "limited broadcast",
		b: cat(eth, []byte{
			0x45, 0x00, // version 4, IHL 5, DSCP/ECN
			0x00, 0x1c, // total length 28
			0x57, 0x0a, // ID 22282
			0x40, 0x00, // DF
			0x40, 0x11, // TTL 64, UDP
			0x00, 0x00, // header checksum
			10, 77, 0, 11, // source
			255, 255, 255, 255, // destination: limited broadcast
			0x84, 0x90, // source port 33936
			0x13, 0xd4, // destination port 5076
			0x00, 0x08, // UDP length 8: empty payload
			0x00, 0x00, // UDP checksum: none
		}),
		want: frame.Frame{IHL: 20, IPLen: 28, Proto: 17, ID: 22282, Src: client, Dst: limited,
			SrcPort: 33936, DstPort: 5076, UDPLen: 8},
	},
	{
		name: "IHL 15 with 40 bytes of options",
		b: cat(eth, []byte{
			0x4f,       // version 4, IHL 15 (60 bytes)
			0x00,       // DSCP/ECN
			0x00, 0x54, // total length 84 = 60 + 8 + 16
			0x00, 0x01, // ID 1
			0x00, 0x00, // no flags
			0x01, 0x11, // TTL 1, UDP
			0x00, 0x00, // header checksum
			10, 77, 0, 11, // source
			10, 77, 0, 255, // destination
			0x94, 0x04, 0x00, 0x00, // option: router alert (RFC 2113)
			0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, // NOPs
			0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, // NOPs
			0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, // NOPs
			0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, // NOPs
			0x01, 0x01, 0x01, 0x00, // NOPs, end of options
		}, udp8(24), payload16),
		want: frame.Frame{IHL: 60, IPLen: 84, Proto: 17, ID: 1, Src: client, Dst: directed,
			SrcPort: 38726, DstPort: 5076, UDPLen: 24},
	},
	{
		name: "60-byte minimum frame with Ethernet padding",
		b: cat(eth, ip20(29, 0, 17), udp8(9),
			[]byte{'x'},         // 1-byte payload
			make([]byte, 60-43), // padding up to the 60-byte Ethernet minimum
		),
		want: frame.Frame{IHL: 20, IPLen: 29, Proto: 17, ID: 11687, Src: client, Dst: directed,
			SrcPort: 38726, DstPort: 5076, UDPLen: 9},
	},
	{
		name: "first fragment, UDP length beyond the bytes present",
		b: cat(eth, ip20(1500, 0x2000, 17), // MF, offset 0
			udp8(2008), make([]byte, 1500-28)),
		want: firstFrag,
	},
	{
		name: "middle fragment",
		b: cat(eth, ip20(1500, 0x2000|185, 17), // MF, offset 185*8 = 1480
			make([]byte, 1480)),
		want: frame.Frame{IHL: 20, IPLen: 1500, Proto: 17, ID: 11687, FragOff: 185, MoreFrags: true,
			Src: client, Dst: directed},
	},
	{
		name: "last fragment",
		b: cat(eth, ip20(68, 370, 17), // offset 370*8 = 2960, no MF
			make([]byte, 48)),
		want: frame.Frame{IHL: 20, IPLen: 68, Proto: 17, ID: 11687, FragOff: 370,
			Src: client, Dst: directed},
	},
	{
		name: "last fragment shorter than a UDP header",
		b:    cat(eth, ip20(24, 1, 17), []byte{1, 2, 3, 4}), // offset 8, 4 bytes
		want: frame.Frame{IHL: 20, IPLen: 24, Proto: 17, ID: 11687, FragOff: 1,
			Src: client, Dst: directed},
	},

	{name: "empty", b: nil, err: frame.ErrTruncated},
	{name: "Ethernet header cut", b: eth[:13], err: frame.ErrTruncated},
	{name: "IPv4 header missing", b: eth, err: frame.ErrTruncated},
	{name: "IPv4 header cut", b: cat(eth, ip20(28, 0, 17)[:19]), err: frame.ErrTruncated},
	{
		name: "IHL 6 but options missing",
		b: cat(eth, []byte{
			0x46, 0x00, 0x00, 0x20, // version 4, IHL 6 (24 bytes), total length 32
			0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, // ID, flags, TTL, UDP, checksum
			10, 77, 0, 11, 10, 77, 0, 255, // addresses; then 4 option bytes should follow
		}),
		err: frame.ErrTruncated,
	},
	{name: "total length larger than the buffer", b: cat(eth, ip20(45, 0, 17), udp8(25), payload16), err: frame.ErrTruncated},
	{name: "UDP header cut", b: cat(eth, ip20(24, 0, 17), udp8(4)[:4]), err: frame.ErrTruncated},
	{name: "tiny first fragment splits the UDP header", b: cat(eth, ip20(24, 0x2000, 17), udp8(100)[:4]), err: frame.ErrTruncated},

	{name: "ARP", b: cat(ethType(0x08, 0x06), make([]byte, 28)), err: frame.ErrNotIPv4},
	{name: "IPv6", b: cat(ethType(0x86, 0xdd), make([]byte, 48)), err: frame.ErrNotIPv4},
	{
		name: "VLAN tag 0x8100",
		b: cat(ethType(0x81, 0x00), []byte{
			0x00, 0x0a, // PCP/DEI/VLAN ID 10
			0x08, 0x00, // inner EtherType IPv4
		}, ip20(44, 0, 17), udp8(24), payload16),
		err: frame.ErrNotIPv4,
	},
	{
		name: "IPv6 header behind IPv4 EtherType",
		b:    cat(eth, []byte{0x60, 0, 0, 0}, make([]byte, 36)), // version 6
		err:  frame.ErrBadIPVersion,
	},
	{
		name: "IHL 4",
		b:    cat(eth, []byte{0x44}, ip20(28, 0, 17)[1:], udp8(8)), // version 4, IHL 4 (16 bytes)
		err:  frame.ErrBadIHL,
	},
	{name: "total length below the header", b: cat(eth, ip20(19, 0, 17), udp8(8)), err: frame.ErrBadTotalLength},
	{name: "TCP", b: cat(eth, ip20(40, 0, 6), make([]byte, 20)), err: frame.ErrNotUDP},
	{name: "ICMP", b: cat(eth, ip20(28, 0, 1), make([]byte, 8)), err: frame.ErrNotUDP},
	{name: "UDP length 7", b: cat(eth, ip20(44, 0, 17), udp8(7), payload16), err: frame.ErrBadUDPLength},
	{
		// What the Python relay re-broadcasts for a frame over 1024 bytes
		// (vector segB packet 3): IP cut to 1010 bytes, UDP length still 1008.
		name: "UDP length beyond the IP payload",
		b:    cat(eth, ip20(44, 0, 17), udp8(25), payload16),
		err:  frame.ErrBadUDPLength,
	},
	{name: "UDP length short of the IP payload", b: cat(eth, ip20(44, 0, 17), udp8(23), payload16), err: frame.ErrBadUDPLength},
	{
		name: "first fragment announcing less than it carries",
		b:    cat(eth, ip20(44, 0x2000, 17), udp8(20), payload16),
		err:  frame.ErrBadUDPLength,
	},
	{name: "UDP length past 65535", b: cat(eth, ip20(1500, 0x2000, 17), udp8(65535-19), make([]byte, 1472)), err: frame.ErrBadUDPLength},
	{
		name: "fragment ending past 65535 (ping of death)",
		b:    cat(eth, ip20(36, 0x1fff, 17), make([]byte, 16)), // offset 65528, 16 bytes
		err:  frame.ErrBadFragment,
	},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			var f frame.Frame
			err := f.Decode(tt.b)
			if err != tt.err {
				t.Fatalf("Decode: err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if f != tt.want {
				t.Errorf("Decode:\n got %+v\nwant %+v", f, tt.want)
			}
			if f.Len() > len(tt.b) {
				t.Errorf("Len() = %d > len(b) = %d", f.Len(), len(tt.b))
			}
		})
	}
}

func TestFrameHelpers(t *testing.T) {
	tests := []struct {
		name        string
		b           []byte
		len         int
		frag, hdr   bool
		payloadFrom int // offset of the payload in b
	}{
		{"unfragmented", decodeTests[0].b, 58, false, true, 42},
		{"padded", decodeTests[3].b, 43, false, true, 42},
		{"options", decodeTests[2].b, 98, false, true, 82},
		{"first fragment", decodeTests[4].b, 1514, true, true, 42},
		{"middle fragment", decodeTests[5].b, 1514, true, false, 34},
		{"last fragment", decodeTests[6].b, 82, true, false, 34},
		{"IPv6 unfragmented", decode6Tests[0].b, 78, false, true, 62},
		{"IPv6 hop-by-hop", decode6Tests[1].b, 86, false, true, 70},
		{"IPv6 atomic fragment", decode6Tests[4].b, 86, false, true, 70},
		{"IPv6 first fragment", decode6Tests[5].b, 1502, true, true, 70},
		{"IPv6 middle fragment", decode6Tests[6].b, 1502, true, false, 62},
		{"IPv6 trailing bytes", decode6Tests[9].b, 78, false, true, 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f frame.Frame
			if err := f.DecodeIP(tt.b); err != nil {
				t.Fatal(err)
			}
			if f.Len() != tt.len || f.IsFragment() != tt.frag || f.HasUDPHeader() != tt.hdr {
				t.Errorf("Len, IsFragment, HasUDPHeader = %d, %v, %v; want %d, %v, %v",
					f.Len(), f.IsFragment(), f.HasUDPHeader(), tt.len, tt.frag, tt.hdr)
			}
			p := f.Payload(tt.b)
			if want := tt.b[tt.payloadFrom:tt.len]; !bytes.Equal(p, want) || len(p) != len(want) {
				t.Errorf("Payload = %d bytes, want %d from offset %d", len(p), len(want), tt.payloadFrom)
			}
		})
	}
}

func TestDecodeErrorString(t *testing.T) {
	want := map[frame.DecodeError]string{
		frame.ErrTruncated:      "truncated",
		frame.ErrNotIPv4:        "not_ipv4",
		frame.ErrBadIPVersion:   "bad_ip_version",
		frame.ErrBadIHL:         "bad_ihl",
		frame.ErrBadTotalLength: "bad_total_length",
		frame.ErrNotUDP:         "not_udp",
		frame.ErrBadUDPLength:   "bad_udp_length",
		frame.ErrBadFragment:    "bad_fragment",
		200:                     "unknown",
	}
	for e, s := range want {
		if e.Error() != s || e.String() != s {
			t.Errorf("DecodeError(%d) = %q, want %q", uint8(e), e.Error(), s)
		}
	}
}
