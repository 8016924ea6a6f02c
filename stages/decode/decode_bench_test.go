package decode

import (
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/pipeline"
)

// fullBatch returns a batch of MaxBatch captured searches, not yet decoded.
func fullBatch() *pipeline.Batch {
	fr := frametest.UDP{
		DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: [6]byte{0x02, 0x00, 10, 77, 0, 11},
		Src: netip.MustParseAddrPort("10.77.0.11:38726"), Dst: netip.MustParseAddrPort("10.77.0.255:5076"),
		Payload: make([]byte, 100),
	}.Frame()
	b := pipeline.NewPool(2048).Get()
	for range pipeline.MaxBatch {
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], fr)
	}
	return b
}

// decodeBatch runs the stage's per-packet step over the batch, as Run does,
// and reports how many packets it kept.
func decodeBatch(s *Stage, b *pipeline.Batch) int {
	b.Pkts = b.Pkts[:pipeline.MaxBatch]
	b.Keep(s.decode)
	return len(b.Pkts)
}

// TestDecodeAllocs asserts that decoding a batch allocates nothing and
// keeps every valid frame.
func TestDecodeAllocs(t *testing.T) {
	m := pipeline.NewMetrics()
	s := New(nil, nil, m.Stage("decode"), m)
	b := fullBatch()
	var kept int
	if allocs := testing.AllocsPerRun(100, func() { kept = decodeBatch(s, b) }); allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
	if kept != pipeline.MaxBatch {
		t.Fatalf("kept %d of %d frames; drops %v", kept, pipeline.MaxBatch, m.DropCounts())
	}
	if got := b.Pkts[0].Frame.DstPort; got != 5076 {
		t.Errorf("decoded destination port %d, want 5076", got)
	}
}

// BenchmarkDecode measures the decode stage's per-packet step over full
// batches.
func BenchmarkDecode(b *testing.B) {
	m := pipeline.NewMetrics()
	s := New(nil, nil, m.Stage("decode"), m)
	batch := fullBatch()
	b.ReportAllocs()
	for b.Loop() {
		decodeBatch(s, batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pipeline.MaxBatch), "ns/packet")
}
