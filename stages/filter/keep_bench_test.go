package filter

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// perPacket is a filter stage with no links, for calling its per-packet
// step directly, its counters, its clock and a batch.
type perPacket struct {
	s   *Stage
	m   *pipeline.Metrics
	b   *pipeline.Batch
	now int64
}

// perPacketStage returns a filter stage with no links and a full batch of
// distinct decoded searches from 64 clients. With full set, the stage also
// suppresses duplicates, knows a neighbour on its segment and rate-limits
// clients.
func perPacketStage(tb testing.TB, full bool) *perPacket {
	tb.Helper()
	m := pipeline.NewMetrics()
	cfg := Config{Ports: []uint16{5076, 5064}, Fragments: true}
	var d *dedup.Cache
	var seg *segment.Table
	if full {
		d = dedup.New(dedup.DefaultWindow, dedup.DefaultSize)
		seg = segment.NewTable(1, time.Minute)
		seg.SetSelf(netip.MustParseAddr("10.77.0.1"))
		seg.Heard(time.Now().UnixNano(), netip.MustParseAddr("10.77.0.3"), 3, [6]byte{2, 0, 10, 77, 0, 3})
		l, err := ratelimit.New(ratelimit.Config{Rate: ratelimit.MaxRate})
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Limiter = l
	}
	s := New(cfg, nil, nil, m.Stage("filter"), m, d, seg, maphash.MakeSeed())
	pool := pipeline.NewPool(2048)
	b := pool.Get()
	for i := range pipeline.MaxBatch {
		payload := make([]byte, 100)
		binary.BigEndian.PutUint64(payload, uint64(i))
		fr := search(fmt.Sprintf("10.77.0.%d", 100+i), "10.77.0.255:5076", string(payload))
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], fr)
		if err := p.Frame.Decode(p.Bytes()); err != nil {
			tb.Fatal(err)
		}
	}
	return &perPacket{s: s, m: m, b: b, now: time.Now().UnixNano()}
}

// keepBatch runs the stage's per-packet step over the whole batch, as Run
// does for each batch, once the window of the previous run has passed (so
// the same datagrams are new to the dedup cache every time), and reports how
// many packets it kept.
func keepBatch(pp *perPacket) int {
	b := pp.b
	b.Pkts = b.Pkts[:pipeline.MaxBatch] // Keep moves dropped packets past len, buffers and all
	pp.now += int64(dedup.DefaultWindow) + 1
	pp.s.rules.Begin(pp.now, pp.now) // the limiter's clock too, when there is a limiter
	b.Keep(pp.s.keep)
	return len(b.Pkts)
}

// TestKeepAllocs asserts that the filter's per-packet step allocates
// nothing, with and without dedup, segment table and rate limiter, and that
// it keeps every packet of the batch (a test that passed while dropping
// them would prove nothing).
func TestKeepAllocs(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			pp := perPacketStage(t, full)
			var kept int
			allocs := testing.AllocsPerRun(100, func() { kept = keepBatch(pp) })
			if kept != pipeline.MaxBatch {
				t.Fatalf("kept %d of %d packets; drops %v", kept, pipeline.MaxBatch, pp.m.DropCounts())
			}
			if allocs != 0 {
				t.Errorf("%v allocations per batch of %d packets, want 0", allocs, pipeline.MaxBatch)
			}
		})
	}
}

// BenchmarkKeep measures the filter's per-packet step over full batches.
func BenchmarkKeep(b *testing.B) {
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprintf("full=%v", full), func(b *testing.B) {
			pp := perPacketStage(b, full)
			b.ReportAllocs()
			for b.Loop() {
				keepBatch(pp)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pipeline.MaxBatch), "ns/packet")
		})
	}
}
