package mesh

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// within reports whether sub lies inside d's bytes.
func within(sub, d []byte) bool {
	if len(sub) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(d)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return s >= start && s+uintptr(len(sub)) <= start+uintptr(len(d))
}

// namedSeed is a fuzz seed; the name is its file name in testdata/fuzz.
type namedSeed struct {
	name string
	d    []byte
}

// meshSeeds returns datagrams of every kind: Python's legacy datagrams from
// the captures, the same frames sealed, and short and odd ones.
func meshSeeds(t testing.TB) []namedSeed {
	seeds := []namedSeed{
		{"empty", nil},
		{"one-byte", []byte("S")},
		{"legacy-magic-only", []byte("SS")},
		{"auth-magic-only", []byte("SN")},
		{"auth-header-cut", []byte("SN\x01")},
		{"auth-magic-repeated", bytes.Repeat([]byte("SN"), 24)},
	}
	s := NewSealer(key1, 0xfeedf00d)
	for _, name := range []string{"python-relay-segA-capture-and-mesh.pcap", "epics-search-segA-capture-and-mesh.pcap"} {
		for i, fr := range frametest.Vector(t, name) {
			base := fmt.Sprintf("%s-%02d", strings.TrimSuffix(name, ".pcap"), i+1)
			seeds = append(seeds,
				namedSeed{"legacy-" + base, append([]byte("SS"), fr...)},
				namedSeed{"auth-" + base, seal(s, fr)})
		}
	}
	return append(seeds, namedSeed{"auth-empty-frame", seal(s, nil)})
}

// FuzzDecodeLegacy: no panic; an accepted datagram yields exactly the bytes
// after the magic, without a copy.
func FuzzDecodeLegacy(f *testing.F) {
	for _, s := range meshSeeds(f) {
		f.Add(s.d)
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		fr, err := DecodeLegacy(d)
		if err != nil {
			if fr != nil {
				t.Fatal("frame returned with an error")
			}
			return
		}
		if Kind(d) != Legacy || len(fr) != len(d)-2 || !within(fr, d) || !bytes.Equal(fr, d[2:]) {
			t.Fatalf("accepted % x as % x", d, fr)
		}
	})
}

// FuzzOpen: no panic; an accepted datagram yields the frame inside it, and
// sealing that frame again with the same sender and sequence number gives
// the same datagram back (so nothing unauthenticated was accepted). A
// second Open of it is a replay.
func FuzzOpen(f *testing.F) {
	for _, s := range meshSeeds(f) {
		f.Add(s.d)
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		o := NewOpener(key2, key1)
		fr, sender, seq, err := o.Open(d)
		if err != nil {
			if _, ok := err.(DecodeError); !ok || fr != nil {
				t.Fatalf("err %T %v, frame %v", err, err, fr)
			}
			return
		}
		if Kind(d) != Auth || !within(fr, d) || len(fr) != len(d)-AuthHeaderLen {
			t.Fatalf("accepted % x as % x", d, fr)
		}
		key := key1
		if d[authOffKeyID] == KeyID(key2) {
			key = key2
		}
		s := NewSealer(key, sender)
		s.seq.Store(seq - 1)
		if again := seal(s, fr); !bytes.Equal(again, d) {
			t.Fatalf("accepted datagram differs from a fresh seal\n  got % x\n want % x", d, again)
		}
		if _, _, _, err := o.Open(d); err != ErrReplay {
			t.Fatalf("second Open: %v, want %v", err, ErrReplay)
		}
	})
}
