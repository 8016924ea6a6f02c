package frame_test

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// udp6Valid reports whether the UDP checksum of the decoded unfragmented
// IPv6 frame b verifies over the IPv6 pseudo-header (RFC 8200 §8.1): source,
// destination, 32-bit length, three zero bytes, next header 17. Zero is not
// valid in IPv6.
func udp6Valid(b []byte, f *frame.Frame) bool {
	u := b[14+f.IHL : f.Len()]
	if binary.BigEndian.Uint16(u[6:]) == 0 {
		return false
	}
	pseudo := []byte{0, 0, byte(len(u) >> 8), byte(len(u)), 0, 0, 0, frame.ProtoUDP}
	return naiveSum(0, b[22:54], pseudo, u) == 0xffff
}

func base6() frametest.UDP6 {
	return frametest.UDP6{
		DstMAC:  [6]byte{0x33, 0x33, 0, 0, 0, 1},
		SrcMAC:  [6]byte{0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb},
		Src:     netip.MustParseAddrPort("[fd00:77::11]:38726"),
		Dst:     netip.MustParseAddrPort("[ff02::1]:5076"),
		Payload: []byte("hello-snowsignal"),
	}
}

func TestFixChecksums6(t *testing.T) {
	hbh := frametest.ExtHeader{Type: 0, Body: []byte{0x05, 0x02, 0, 0, 0x01, 0x00}}
	for name, u := range map[string]frametest.UDP6{
		"plain":      base6(),
		"hop-by-hop": func() frametest.UDP6 { u := base6(); u.Ext = []frametest.ExtHeader{hbh}; return u }(),
		"odd payload": func() frametest.UDP6 {
			u := base6()
			u.Payload = []byte("odd")
			return u
		}(),
		"padded": func() frametest.UDP6 { u := base6(); u.Pad = 7; return u }(),
	} {
		want := u.Frame()
		var f frame.Frame
		if err := f.Decode6(want); err != nil {
			t.Fatal(err)
		}
		if !udp6Valid(want, &f) {
			t.Fatalf("%s: the built frame's checksum does not verify", name)
		}
		c := 14 + f.IHL + 6
		// What the local stack leaves with CHECKSUM_PARTIAL: the folded,
		// uncomplemented pseudo-header sum.
		ulen := f.UDPLen
		partial := naiveSum(0, want[22:54], []byte{0, 0, byte(ulen >> 8), byte(ulen), 0, 0, 0, 17})
		for kind, csum := range map[string]uint16{"partial": partial, "zero": 0, "wrong": 0x1234} {
			b := bytes.Clone(want)
			binary.BigEndian.PutUint16(b[c:], csum)
			f.FixChecksums(b)
			if !bytes.Equal(b, want) {
				t.Errorf("%s, %s checksum: FixChecksums gave\n% x\nwant\n% x", name, kind, b, want)
			}
		}
	}

	// A fragment's UDP checksum covers the reassembled datagram: untouched.
	u := base6()
	u.Payload = make([]byte, 3000)
	for _, b := range frametest.Fragments6(u.Frame(), 1232, 9) {
		var f frame.Frame
		if err := f.Decode6(b); err != nil {
			t.Fatal(err)
		}
		before := bytes.Clone(b)
		f.FixChecksums(b)
		if !bytes.Equal(b, before) {
			t.Error("FixChecksums changed an IPv6 fragment")
		}
	}
}

// TestFragments6Reassemble checks the frametest helper the fragment tests
// rely on: the pieces decode, their data put together is the whole UDP
// datagram, and its checksum (carried in the first) verifies over it.
func TestFragments6Reassemble(t *testing.T) {
	u := base6()
	u.Payload = make([]byte, 3001)
	for i := range u.Payload {
		u.Payload[i] = byte(i * 7)
	}
	whole := u.Frame()
	var w frame.Frame
	w.Decode6(whole)
	var udp []byte
	frags := frametest.Fragments6(whole, 1232, 0xabcdef01)
	for i, b := range frags {
		var f frame.Frame
		if err := f.Decode6(b); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if int(f.FragOff)*8 != len(udp) || f.ID6 != 0xabcdef01 || f.MoreFrags != (i < len(frags)-1) {
			t.Fatalf("fragment %d: %+v at %d", i, f, len(udp))
		}
		udp = append(udp, b[14+f.IHL:f.Len()]...)
	}
	if !bytes.Equal(udp, whole[14+40:]) {
		t.Fatal("reassembled UDP datagram differs")
	}
	if !udp6Valid(whole, &w) {
		t.Fatal("whole datagram's checksum")
	}
}

func key6(t *testing.T, b []byte, seed maphash.Seed) uint64 {
	t.Helper()
	var f frame.Frame
	if err := f.Decode6(b); err != nil {
		t.Fatal(err)
	}
	return f.Key(b, seed)
}

func TestKey6(t *testing.T) {
	seed := maphash.MakeSeed()
	k0 := key6(t, base6().Frame(), seed)
	same := map[string]func(b []byte) []byte{
		"Ethernet header": func(b []byte) []byte { frame.SetMulticastEthernet(b, allNodes, [6]byte{1, 2, 3, 4, 5, 6}); return b },
		"hop limit":       func(b []byte) []byte { b[21] = 255; return b },
		"traffic class":   func(b []byte) []byte { b[14] |= 0x0b; b[15] |= 0x80; return b },
		"flow label":      func(b []byte) []byte { b[16], b[17] = 0xbe, 0xef; return b },
		"UDP checksum":    func(b []byte) []byte { b[60], b[61] = 0x15, 0xcd; return b },
		"padding":         func(b []byte) []byte { return append(b, make([]byte, 20)...) },
		"hop-by-hop": func(b []byte) []byte {
			u := base6()
			u.Ext = []frametest.ExtHeader{{Type: 0, Body: []byte{0x05, 0x02, 0, 0, 0x01, 0x00}}}
			return u.Frame()
		},
		"atomic fragment": func(b []byte) []byte {
			u := base6()
			u.Ext = []frametest.ExtHeader{{Type: 44, Body: []byte{0, 0, 0, 0, 0, 9}}} // offset 0, M clear, ID 9
			return u.Frame()
		},
	}
	for name, change := range same {
		if k := key6(t, change(base6().Frame()), seed); k != k0 {
			t.Errorf("%s changed the key", name)
		}
	}
	differ := map[string]func(b []byte) []byte{
		"source":           func(b []byte) []byte { b[37]++; return b },
		"destination":      func(b []byte) []byte { b[53]++; return b },
		"source port":      func(b []byte) []byte { b[55]++; return b },
		"destination port": func(b []byte) []byte { b[57]++; return b },
		"payload":          func(b []byte) []byte { b[len(b)-1]++; return b },
	}
	for name, change := range differ {
		if key6(t, change(base6().Frame()), seed) == k0 {
			t.Errorf("%s did not change the key", name)
		}
	}
}

// TestKeyFragments6: every fragment of a datagram gets its own key, the same
// again when re-sent with another hop limit and MAC, and another when the
// 32-bit identification differs, in its high bits too.
func TestKeyFragments6(t *testing.T) {
	seed := maphash.MakeSeed()
	u := base6()
	u.Payload = make([]byte, 4000)
	for i := range u.Payload {
		u.Payload[i] = byte(i)
	}
	frags := frametest.Fragments6(u.Frame(), 1232, 0x00010001)
	u.HopLimit, u.SrcMAC = 9, [6]byte{4}
	again := frametest.Fragments6(u.Frame(), 1232, 0x00010001)
	otherID := frametest.Fragments6(u.Frame(), 1232, 0x00020001)
	seen := map[uint64]int{}
	stable := map[uint32]int{}
	for i, b := range frags {
		k := key6(t, b, seed)
		if j, dup := seen[k]; dup {
			t.Errorf("fragments %d and %d share a key", i, j)
		}
		seen[k] = i
		if key6(t, again[i], seed) != k {
			t.Errorf("fragment %d: key changed with hop limit/MAC", i)
		}
		if key6(t, otherID[i], seed) == k {
			t.Errorf("fragment %d: same key for another datagram (identification)", i)
		}
		var f, g frame.Frame
		f.Decode6(b)
		g.Decode6(otherID[i])
		s := f.StableKey(b)
		if _, dup := stable[s]; dup || g.StableKey(otherID[i]) == s {
			t.Errorf("fragment %d: StableKey not unique", i)
		}
		stable[s] = i
	}
}

func TestStableKey6(t *testing.T) {
	u := base6()
	b := u.Frame()
	var f frame.Frame
	if err := f.Decode6(b); err != nil {
		t.Fatal(err)
	}
	k := f.StableKey(b)
	// Golden: the same in every process and on every relay, forever.
	if k != 0xd7436f68 {
		t.Errorf("StableKey = %#x, want the golden 0xd7436f68", k)
	}
	u.HopLimit, u.FlowLabel, u.SrcMAC = 7, 0x12345, [6]byte{1}
	b2 := u.Frame()
	f.Decode6(b2)
	if f.StableKey(b2) != k {
		t.Error("StableKey changed with hop limit/flow label/MAC")
	}
	u.Payload = []byte("hello-snowsignaL")
	b3 := u.Frame()
	f.Decode6(b3)
	if f.StableKey(b3) == k {
		t.Error("StableKey ignores the payload")
	}
}

// TestRewrite6 is the inbound rewrite of an IPv6 frame: Ethernet to the
// group's MAC from ours, checksum completed; the client's source address,
// ports, hop limit and payload are kept, and it decodes to the same Frame.
func TestRewrite6(t *testing.T) {
	u := base6()
	u.Dst = netip.MustParseAddrPort("[ff02::1:3]:5076")
	u.HopLimit = 1
	b := u.Frame()
	var f frame.Frame
	if err := f.Decode6(b); err != nil {
		t.Fatal(err)
	}
	b[60], b[61] = 0x15, 0xcd // partial, as captured from the local stack
	want := f
	mac := [6]byte{0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09}
	frame.SetMulticastEthernet(b, f.Dst, mac)
	f.FixChecksums(b)
	if !bytes.Equal(b[:12], []byte{0x33, 0x33, 0, 1, 0, 3, 0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09}) {
		t.Errorf("Ethernet addresses % x", b[:12])
	}
	var got frame.Frame
	if err := got.Decode6(b); err != nil || got != want {
		t.Fatalf("rewritten: %+v, %v; want %+v", got, err, want)
	}
	if !udp6Valid(b, &got) || got.HopLimit(b) != 1 || !bytes.Equal(got.Payload(b), u.Payload) {
		t.Errorf("checksum valid %v, hop limit %d, payload %q", udp6Valid(b, &got), got.HopLimit(b), got.Payload(b))
	}
}
