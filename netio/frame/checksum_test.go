package frame_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
)

// naiveSum is the textbook RFC 1071 sum: 16-bit big-endian words, an odd
// last byte padded with zero, carries folded at the end. It is the reference
// the fast Checksum is compared against.
func naiveSum(initial uint64, parts ...[]byte) uint16 {
	s := initial
	for _, b := range parts {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint64(b[i])<<8 | uint64(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint64(b[len(b)-1]) << 8
		}
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// checksumsValid reports whether the IPv4 header checksum of the decoded
// frame b verifies and, for an unfragmented datagram, whether the UDP
// checksum does (a zero UDP checksum, "none", counts as valid). A checksum
// verifies when the sum over everything it covers, itself included, is
// 0xffff (RFC 1071).
func checksumsValid(b []byte, f *frame.Frame) (ip, udp bool) {
	ip = naiveSum(0, b[14:14+f.IHL]) == 0xffff
	if f.IsFragment() {
		return ip, true
	}
	u := b[14+f.IHL : f.Len()]
	if binary.BigEndian.Uint16(u[6:]) == 0 {
		return ip, true
	}
	pseudo := []byte{0, frame.ProtoUDP, byte(len(u) >> 8), byte(len(u))}
	return ip, naiveSum(0, b[26:34], pseudo, u) == 0xffff
}

func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	for i := range 20000 {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		if i%7 == 0 {
			// Long runs of 0xff push the 64-bit accumulator into carries.
			for j := range buf {
				buf[j] = 0xff
			}
		}
		off := r.IntN(8) // unaligned starts
		n := r.IntN(len(buf) - off)
		if i < 200 {
			n = i // every short length, odd and even
		}
		b := buf[off : off+n]
		initial := r.Uint32()
		if i%5 == 0 {
			initial = 0
		}
		got := frame.Fold(frame.Checksum(b, initial))
		want := ^naiveSum(uint64(initial), b)
		if got != want {
			t.Fatalf("len %d off %d initial %#x: Fold(Checksum) = %#04x, naive %#04x", n, off, initial, got, want)
		}
	}
}

func TestChecksumChains(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 1501)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	whole := frame.Fold(frame.Checksum(b, 0))
	for split := 0; split <= len(b); split += 2 { // every even split point
		s := frame.Checksum(b[:split], 0)
		if got := frame.Fold(frame.Checksum(b[split:], s)); got != whole {
			t.Fatalf("split at %d: %#04x, whole %#04x", split, got, whole)
		}
	}
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := frame.Fold(frame.Checksum(b, 0)); got != ^uint16(0xddf2) {
		t.Errorf("checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
}

func TestFixChecksums(t *testing.T) {
	for _, tt := range decodeTests {
		if tt.err != nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), tt.b...)
			var f frame.Frame
			if err := f.Decode(b); err != nil {
				t.Fatal(err)
			}
			before := append([]byte(nil), b...)
			f.FixChecksums(b)
			if ip, udp := checksumsValid(b, &f); !ip || !udp {
				t.Errorf("after FixChecksums: IP valid %v, UDP valid %v", ip, udp)
			}
			if !f.IsFragment() && binary.BigEndian.Uint16(b[14+f.IHL+6:]) == 0 {
				t.Error("FixChecksums left the UDP checksum at 0 (none)")
			}
			// Only the checksum fields may change.
			ipc, udpc := 14+10, 14+f.IHL+6
			for i := range b {
				if b[i] != before[i] && i != ipc && i != ipc+1 && (f.IsFragment() || (i != udpc && i != udpc+1)) {
					t.Fatalf("byte %d changed", i)
				}
			}
		})
	}
}

// TestFixChecksumsZeroBecomesFFFF finds a payload whose UDP checksum
// computes to 0 and checks it is sent as 0xffff (RFC 768).
func TestFixChecksumsZeroBecomesFFFF(t *testing.T) {
	b := cat(eth, ip20(30, 0, 17), udp8(10), []byte{0, 0})
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		t.Fatal(err)
	}
	f.FixChecksums(b)
	// Choose the two payload bytes so that the sum over the pseudo-header and
	// the datagram is 0xffff with a zero checksum field: then the checksum
	// computes to 0.
	b[40], b[41] = 0, 0
	rest := naiveSum(0, b[26:34], []byte{0, 17, 0, 10}, b[34:42])
	pad := 0xffff - rest // ones' complement: rest + pad = 0xffff
	binary.BigEndian.PutUint16(b[42:], pad)
	f.FixChecksums(b)
	if got := binary.BigEndian.Uint16(b[40:]); got != 0xffff {
		t.Errorf("UDP checksum = %#04x, want 0xffff", got)
	}
	if _, udp := checksumsValid(b, &f); !udp {
		t.Error("UDP checksum 0xffff does not verify")
	}
}
