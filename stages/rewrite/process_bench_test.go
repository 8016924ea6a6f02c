//go:build linux

package rewrite

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// perPacket is a rewrite stage with no links, for calling its per-packet
// step directly, and the mesh datagrams of one full batch.
type perPacket struct {
	s      *Stage
	m      *pipeline.Metrics
	now    int64
	b      *pipeline.Batch
	frames [][]byte     // the frames the datagrams carry, one per packet
	sealer *mesh.Sealer // nil: legacy datagrams
}

// newPerPacket returns relay-b's rewrite stage (see newRig) and a batch of
// distinct searches from relay-a. With full set it suppresses duplicates
// and shares its segment with a neighbour, so about half the datagrams are
// the neighbour's to inject; with auth set the mesh is authenticated.
func newPerPacket(tb testing.TB, full, auth bool) *perPacket {
	tb.Helper()
	r := &rig{cfg: Config{Ports: []uint16{5076}, Fragments: true}, target: &iface.Current{}, peers: peers.NewTable(),
		m: pipeline.NewMetrics(), pool: pipeline.NewPool(2048), seed: maphash.MakeSeed()}
	r.target.Store(ourInfo())
	r.peers.Update(map[netip.AddrPort]string{peerA: "static", peerC: "static"}, false, time.Now())
	pp := &perPacket{}
	if full {
		r.dedup = dedup.New(dedup.DefaultWindow, dedup.DefaultSize)
		r.seg = segment.NewTable(1, time.Minute)
		r.seg.SetSelf(ourAddr)
		r.seg.Heard(time.Now().UnixNano(), netip.MustParseAddr("10.77.0.4"), 4, [6]byte{2, 0, 10, 77, 0, 4})
	}
	if auth {
		r.opener = mesh.NewOpener(key1)
		pp.sealer = mesh.NewSealer(key1, 7)
	}
	pp.s, pp.m = r.stage(nil, nil), r.m
	pp.b = r.pool.Get()
	for i := range pipeline.MaxBatch {
		payload := make([]byte, 100)
		binary.BigEndian.PutUint64(payload, uint64(i))
		pp.frames = append(pp.frames, search("10.77.0.255:5076", string(payload)))
		pp.b.Slot()
	}
	pp.now = time.Now().UnixNano()
	return pp
}

// run puts the batch's datagrams back in place (the step rewrites them in
// place, and a sealed datagram is accepted once), moves the clock past the
// dedup window, and runs the stage's per-packet step over the batch as Run
// does. It reports how many packets were kept.
func (pp *perPacket) run() int {
	b := pp.b
	b.Pkts = b.Pkts[:pipeline.MaxBatch]
	for i := range b.Pkts {
		p := &b.Pkts[i]
		fr := pp.frames[i]
		p.Addr = peerA
		if pp.sealer != nil {
			copy(p.Buf[pipeline.Headroom:], fr)
			p.Off = pp.sealer.Seal(p.Buf, pipeline.Headroom, len(fr))
			p.Len = pipeline.Headroom + len(fr) - p.Off
		} else {
			p.Off = pipeline.Headroom
			p.Len = copy(p.Buf[p.Off:], mesh.LegacyMagic)
			p.Len += copy(p.Buf[p.Off+p.Len:], fr)
		}
	}
	s := pp.s
	pp.now += int64(dedup.DefaultWindow) + 1
	s.rules.Begin(pp.now, 0)
	s.set = s.peers.Load()
	s.info = s.target.Load()
	b.Keep(s.keep)
	return len(b.Pkts)
}

// TestProcessAllocs asserts that the rewrite stage's per-packet step
// allocates nothing on the legacy and the authenticated mesh, with and
// without dedup and a neighbour, and that it keeps the datagrams it should:
// all of them, or with a neighbour all but those the neighbour injects.
func TestProcessAllocs(t *testing.T) {
	for _, full := range []bool{false, true} {
		for _, auth := range []bool{false, true} {
			t.Run(fmt.Sprintf("full=%v,auth=%v", full, auth), func(t *testing.T) {
				pp := newPerPacket(t, full, auth)
				var kept int
				allocs := testing.AllocsPerRun(100, func() { kept = pp.run() })
				other := pp.m.Drops(pipeline.ReasonOtherInjector)
				if full && (kept == 0 || kept == pipeline.MaxBatch) {
					t.Fatalf("kept %d of %d packets with a neighbour; drops %v", kept, pipeline.MaxBatch, pp.m.DropCounts())
				}
				if !full && kept != pipeline.MaxBatch {
					t.Fatalf("kept %d of %d packets; drops %v", kept, pipeline.MaxBatch, pp.m.DropCounts())
				}
				var dropped uint64
				for r := pipeline.Reason(0); r < pipeline.NumReasons; r++ {
					dropped += pp.m.Drops(r)
				}
				if dropped != other {
					t.Fatalf("drops %v, want other_injector only", pp.m.DropCounts())
				}
				if allocs != 0 {
					t.Errorf("%v allocations per batch of %d packets, want 0", allocs, pipeline.MaxBatch)
				}
			})
		}
	}
}

// BenchmarkProcess measures the rewrite stage's per-packet step over full
// batches, the restoring of the datagrams included.
func BenchmarkProcess(b *testing.B) {
	for _, full := range []bool{false, true} {
		for _, auth := range []bool{false, true} {
			b.Run(fmt.Sprintf("full=%v,auth=%v", full, auth), func(b *testing.B) {
				pp := newPerPacket(b, full, auth)
				b.ReportAllocs()
				for b.Loop() {
					pp.run()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pipeline.MaxBatch), "ns/packet")
			})
		}
	}
}
