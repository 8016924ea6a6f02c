package epics_test

import (
	"errors"
	"reflect"
	"testing"
	"unsafe"

	"github.com/snowsignal/snowsignal/netio/epics"
)

// fuzzSeeds adds the payloads of the EPICS vectors (real pvget, pvxget and
// caget searches, the relay's mesh datagrams and a CA reply) to f's corpus;
// the same seeds, and table-test messages, live in testdata/fuzz/<FuzzName>/.
func fuzzSeeds(f *testing.F) {
	for _, name := range []string{"epics-search-segA-capture-and-mesh.pcap", "epics-search-segB-rebroadcast.pcap"} {
		for _, b := range payloads(f, name) {
			f.Add(b)
		}
	}
}

// checkDecoded checks what any decode must guarantee: a known error, names
// that are non-empty subslices of the input, and no more names than found.
func checkDecoded(t *testing.T, b []byte, d *epics.Datagram, err error) {
	if err != nil && !errors.Is(err, epics.ErrNotPVA) && !errors.Is(err, epics.ErrNotCA) &&
		!errors.Is(err, epics.ErrTruncated) && !errors.Is(err, epics.ErrBadString) {
		t.Fatalf("unexpected error %v", err)
	}
	if d.Names() > epics.MaxNames {
		t.Fatalf("%d names recorded, at most %d allowed", d.Names(), epics.MaxNames)
	}
	if d.Names() > 0 && d.Searches == 0 {
		t.Fatalf("%d names without a search", d.Names())
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for i := range d.Names() {
		n := d.Name(i)
		p := uintptr(unsafe.Pointer(unsafe.SliceData(n)))
		if len(n) == 0 || p < start || p+uintptr(len(n)) > start+uintptr(len(b)) {
			t.Fatalf("name %d (%q) is empty or outside the input", i, n)
		}
	}
}

// FuzzPVA decodes arbitrary bytes as PVAccess: it must never panic and must
// uphold checkDecoded; decoding twice gives the same result.
func FuzzPVA(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d, again epics.Datagram
		err := d.DecodePVA(b)
		checkDecoded(t, b, &d, err)
		if err2 := again.DecodePVA(b); err2 != err || !reflect.DeepEqual(again, d) {
			t.Fatal("decoding is not deterministic")
		}
	})
}

// FuzzCA decodes arbitrary bytes as Channel Access: it must never panic and
// must uphold checkDecoded; every name comes from its own search message.
func FuzzCA(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d epics.Datagram
		err := d.DecodeCA(b)
		checkDecoded(t, b, &d, err)
		if d.Names()+d.Dropped > d.Searches {
			t.Fatalf("%d names (+%d dropped) from %d searches", d.Names(), d.Dropped, d.Searches)
		}
	})
}
