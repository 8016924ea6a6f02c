package mesh

import "testing"

// benchFrame returns an n-byte stand-in frame; sealing does not look inside.
func benchFrame(n int) []byte {
	fr := make([]byte, n)
	for i := range fr {
		fr[i] = byte(i)
	}
	return fr
}

var (
	sinkInt    int
	sinkBytes  []byte
	sinkErr    error
	sinkFormat Format
)

// openRing is a ring of datagrams sealed in advance, so that Open can be
// measured alone; the opener's window is reset whenever the ring wraps.
type openRing struct {
	o  *Opener
	ds [][]byte
	i  int
}

func newOpenRing(n int) *openRing {
	s := NewSealer(key1, 1)
	r := &openRing{o: NewOpener(key1)}
	for range 2048 {
		r.ds = append(r.ds, seal(s, benchFrame(n)))
	}
	return r
}

func (r *openRing) open() {
	if r.i == len(r.ds) {
		r.i = 0
		for j := range r.o.replay.entries {
			r.o.replay.entries[j].filter = replayFilter{}
		}
	}
	sinkBytes, _, _, sinkErr = r.o.Open(r.ds[r.i])
	if sinkErr != nil {
		panic(sinkErr)
	}
	r.i++
}

// perDatagram lists the per-datagram operations; none may allocate.
func perDatagram(n int) map[string]func() {
	buf := inBuffer(benchFrame(n))
	s := NewSealer(key1, 1)
	legacy := append([]byte("SS"), benchFrame(n)...)
	r := newOpenRing(n)
	return map[string]func(){
		"PutLegacy":    func() { sinkInt = PutLegacy(buf, headroom) },
		"DecodeLegacy": func() { sinkBytes, sinkErr = DecodeLegacy(legacy) },
		"Kind":         func() { sinkFormat = Kind(legacy) },
		"Seal":         func() { sinkInt = s.Seal(buf, headroom, n) },
		"Open":         r.open,
	}
}

func TestAllocs(t *testing.T) {
	for _, n := range []int{58, 1514} {
		for name, fn := range perDatagram(n) {
			if allocs := testing.AllocsPerRun(1000, fn); allocs != 0 {
				t.Errorf("%s (%d-byte frame): %v allocations, want 0", name, n, allocs)
			}
		}
	}
}

// TestOpenErrorsDoNotAllocate covers the reject paths, which an attacker
// controls.
func TestOpenErrorsDoNotAllocate(t *testing.T) {
	o := NewOpener(key1)
	d := seal(NewSealer(key1, 1), benchFrame(100))
	o.Open(d)
	bad := append([]byte(nil), d...)
	bad[60] ^= 1
	for name, in := range map[string][]byte{"replay": d, "bad tag": bad, "short": d[:10], "legacy": []byte("SS....")} {
		if allocs := testing.AllocsPerRun(1000, func() { _, _, _, sinkErr = o.Open(in) }); allocs != 0 {
			t.Errorf("%s: %v allocations", name, allocs)
		}
	}
}

func benchmark(b *testing.B, name string) {
	for _, n := range []int{58, 1514} {
		fn := perDatagram(n)[name]
		b.Run(map[int]string{58: "small", 1514: "mtu"}[n], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				fn()
			}
		})
	}
}

func BenchmarkPutLegacy(b *testing.B)    { benchmark(b, "PutLegacy") }
func BenchmarkDecodeLegacy(b *testing.B) { benchmark(b, "DecodeLegacy") }
func BenchmarkSeal(b *testing.B)         { benchmark(b, "Seal") }
func BenchmarkOpen(b *testing.B)         { benchmark(b, "Open") }
