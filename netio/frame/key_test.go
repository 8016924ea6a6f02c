package frame_test

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

func key(t *testing.T, b []byte, seed maphash.Seed) uint64 {
	t.Helper()
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		t.Fatal(err)
	}
	return f.Key(b, seed)
}

func TestKey(t *testing.T) {
	seed := maphash.MakeSeed()
	base := frametest.UDP{
		DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		SrcMAC: [6]byte{0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb},
		Src:    netip.MustParseAddrPort("10.77.0.11:38726"),
		Dst:    netip.MustParseAddrPort("10.77.0.255:5076"),
		ID:     11687, DF: true, Payload: []byte("hello-snowsignal"),
	}
	k0 := key(t, base.Frame(), seed)

	same := map[string]func(b []byte) []byte{
		"Ethernet header": func(b []byte) []byte { frame.SetBroadcastEthernet(b, [6]byte{1, 2, 3, 4, 5, 6}); b[0] = 0; return b },
		"TTL":             func(b []byte) []byte { b[22]--; return b },
		"IP ID":           func(b []byte) []byte { b[18]++; return b },
		"IP checksum":     func(b []byte) []byte { b[24] ^= 0x55; return b },
		"UDP checksum":    func(b []byte) []byte { b[40], b[41] = 0x15, 0xcd; return b }, // a partial checksum
		"no UDP checksum": func(b []byte) []byte { b[40], b[41] = 0, 0; return b },
		"DSCP":            func(b []byte) []byte { b[15] = 0xb8; return b },
		"DF flag":         func(b []byte) []byte { b[20] &^= 0x40; return b },
		"padding":         func(b []byte) []byte { return append(b, make([]byte, 20)...) },
		"IP options": func(b []byte) []byte {
			u := base
			u.Options = []byte{0x94, 0x04, 0x00, 0x00} // router alert
			return u.Frame()
		},
	}
	for name, change := range same {
		if k := key(t, change(base.Frame()), seed); k != k0 {
			t.Errorf("%s changed the key", name)
		}
	}

	differ := map[string]func(b []byte) []byte{
		"source":           func(b []byte) []byte { b[29]++; return b },
		"destination":      func(b []byte) []byte { b[33]--; return b },
		"source port":      func(b []byte) []byte { b[35]++; return b },
		"destination port": func(b []byte) []byte { b[37]++; return b },
		"payload":          func(b []byte) []byte { b[len(b)-1]++; return b },
		"MF flag":          func(b []byte) []byte { b[20] |= 0x20; return b },
		"fragment offset":  func(b []byte) []byte { b[21] = 1; return b },
	}
	for name, change := range differ {
		b := change(base.Frame())
		var f frame.Frame
		if err := f.Decode(b); err != nil {
			// The MF flag alone makes the UDP length too long for the
			// fragment: still a valid first fragment, so this must not fail.
			t.Fatalf("%s: %v", name, err)
		}
		if f.Key(b, seed) == k0 {
			t.Errorf("%s did not change the key", name)
		}
	}

	if key(t, base.Frame(), maphash.MakeSeed()) == k0 {
		t.Error("another seed gave the same key")
	}
}

// TestKeyFragments checks that every fragment of a datagram gets its own
// key, the same key again when the frame is re-sent with another TTL and MAC
// (what a second relay would do), and another key when the IP ID differs:
// the ID is what ties a fragment, which has no ports, to its datagram.
func TestKeyFragments(t *testing.T) {
	seed := maphash.MakeSeed()
	u := frametest.UDP{Src: netip.MustParseAddrPort("10.77.0.11:5000"), Dst: netip.MustParseAddrPort("10.77.0.255:5076"),
		ID: 1, Payload: make([]byte, 4000)}
	for i := range u.Payload {
		u.Payload[i] = byte(i)
	}
	frags := frametest.Fragments(u.Frame(), 1480)
	u.TTL, u.SrcMAC = 3, [6]byte{4}
	again := frametest.Fragments(u.Frame(), 1480)
	u.ID = 2
	otherID := frametest.Fragments(u.Frame(), 1480)
	seen := map[uint64]int{}
	for i, b := range frags {
		k := key(t, b, seed)
		if j, dup := seen[k]; dup {
			t.Errorf("fragments %d and %d share a key", i, j)
		}
		seen[k] = i
		if key(t, again[i], seed) != k {
			t.Errorf("fragment %d: key changed with TTL/MAC", i)
		}
		if key(t, otherID[i], seed) == k {
			t.Errorf("fragment %d: same key for another datagram (IP ID)", i)
		}
		binary.BigEndian.PutUint16(again[i][24:], 0) // and with the IP checksum
		if key(t, again[i], seed) != k {
			t.Errorf("fragment %d: key changed with the IP checksum", i)
		}
	}
}

func TestStableKey(t *testing.T) {
	u := frametest.UDP{Src: netip.MustParseAddrPort("10.77.0.11:5000"), Dst: netip.MustParseAddrPort("10.77.0.255:5076"),
		ID: 1, TTL: 64, Payload: []byte("search")}
	var f frame.Frame
	b := u.Frame()
	if err := f.Decode(b); err != nil {
		t.Fatal(err)
	}
	k := f.StableKey(b)
	// Golden: the same in every process and on every relay, forever (relays
	// of different versions on one segment must agree).
	if k != 0xa8388e17 {
		t.Errorf("StableKey = %#x, want the golden 0xa8388e17", k)
	}
	u.ID, u.TTL, u.SrcMAC = 9, 3, [6]byte{1}
	b2 := u.Frame()
	f.Decode(b2)
	if f.StableKey(b2) != k {
		t.Error("StableKey changed with TTL/ID/MAC")
	}
	u.Payload = []byte("searcH")
	b3 := u.Frame()
	f.Decode(b3)
	if f.StableKey(b3) == k {
		t.Error("StableKey ignores the payload")
	}
	if n := testing.AllocsPerRun(100, func() { f.StableKey(b3) }); n != 0 {
		t.Errorf("StableKey allocates %v", n)
	}
}
