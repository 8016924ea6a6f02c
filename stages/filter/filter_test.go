package filter

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
	"github.com/snowsignal/snowsignal/stages/shared/stagetest"
)

var (
	client    = netip.MustParseAddrPort("10.77.0.11:38726")
	clientMAC = [6]byte{0x02, 0x00, 10, 77, 0, 11}
)

// search returns a captured broadcast from src (the client when empty) to
// dst.
func search(src, dst, payload string) []byte {
	from := client
	if src != "" {
		from = netip.AddrPortFrom(netip.MustParseAddr(src), client.Port())
	}
	return frametest.UDP{DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: clientMAC,
		Src: from, Dst: netip.MustParseAddrPort(dst), ID: 0x1234, Payload: []byte(payload)}.Frame()
}

// rig runs filter stages over shared state: dedup cache, segment table,
// limiter and counters.
type rig struct {
	t    *testing.T
	cfg  Config
	d    *dedup.Cache
	seg  *segment.Table
	m    *pipeline.Metrics
	pool *pipeline.Pool
	seed maphash.Seed
}

func newRig(t *testing.T) *rig {
	return &rig{t: t, cfg: Config{Ports: []uint16{5076, 5064}, Fragments: true},
		m: pipeline.NewMetrics(), pool: pipeline.NewPool(2048), seed: maphash.MakeSeed()}
}

// run passes each element of batches through a new stage as one batch of
// decoded frames, and returns copies of the frames it passed on.
func (r *rig) run(batches ...[][]byte) [][]byte {
	r.t.Helper()
	return stagetest.Run(r.t, r.pool, len(batches), func(i int, b *pipeline.Batch) {
		for _, fr := range batches[i] {
			p := b.Slot()
			p.Len = copy(p.Buf[p.Off:], fr)
			if err := p.Frame.Decode(p.Bytes()); err != nil {
				r.t.Fatalf("test frame does not decode: %v", err) // the decode stage drops those
			}
		}
	}, func(in, out *pipeline.Link) stagetest.Stage {
		return New(r.cfg, in, out, r.m.Stage("filter"), r.m, r.d, r.seg, r.seed)
	})
}

// wantDrops fails unless exactly the counters in want moved, by that much.
func (r *rig) wantDrops(want map[pipeline.Reason]uint64) {
	r.t.Helper()
	stagetest.WantDrops(r.t, r.m, want)
}

func TestRejects(t *testing.T) {
	frags := frametest.Fragments(search("", "10.77.0.255:5076", strings.Repeat("f", 3000)), 1480)
	wrongPortFrags := frametest.Fragments(search("", "10.77.0.255:5077", strings.Repeat("f", 3000)), 1480)
	for _, tc := range []struct {
		name   string
		reason pipeline.Reason
		noFrag bool
		frames [][]byte
	}{
		{name: "bad source", reason: pipeline.ReasonBadSource, frames: [][]byte{
			search("0.0.0.0", "255.255.255.255:5076", "dhcp-like"),
			search("0.1.2.3", "10.77.0.255:5076", "this network"),
			search("127.0.0.1", "10.77.0.255:5076", "loopback"),
			search("224.0.0.5", "10.77.0.255:5076", "multicast"),
			search("240.1.2.3", "10.77.0.255:5076", "class E"),
			search("255.255.255.255", "10.77.0.255:5076", "limited broadcast"),
		}},
		{name: "wrong port", reason: pipeline.ReasonWrongPort, frames: [][]byte{
			search("", "10.77.0.255:5077", "x"),
			search("", "10.77.0.255:5065", "CA beacon port"),
			wrongPortFrags[0],
		}},
		{name: "fragments disabled", reason: pipeline.ReasonFragment, noFrag: true, frames: frags},
		{name: "later fragments without their first", reason: pipeline.ReasonFragment, frames: [][]byte{frags[1], frags[2]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.cfg.Fragments = !tc.noFrag
			if out := r.run(tc.frames); len(out) != 0 {
				t.Errorf("%d frames passed on", len(out))
			}
			r.wantDrops(map[pipeline.Reason]uint64{tc.reason: uint64(len(tc.frames))})
		})
	}
}

func TestAccepts(t *testing.T) {
	frags := frametest.Fragments(search("", "10.77.0.255:5076", strings.Repeat("f", 3000)), 1480)
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"PVAccess search, directed", [][]byte{search("", "10.77.0.255:5076", "pva")}},
		{"Channel Access search, limited", [][]byte{search("", "255.255.255.255:5064", "ca")}},
		{"fragmented datagram", frags},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			out := r.run(tc.frames)
			r.wantDrops(nil)
			if len(out) != len(tc.frames) {
				t.Fatalf("%d frames passed on, want %d", len(out), len(tc.frames))
			}
			for i := range out {
				// Forwarded as captured, byte for byte.
				if !bytes.Equal(out[i], tc.frames[i]) {
					t.Errorf("frame %d changed", i)
				}
			}
		})
	}
}

// TestLoops: a captured frame that this relay (or another on its segment)
// injected shortly before is a loop, not forwarded again; a client sending
// the same datagram twice is forwarded twice.
func TestLoops(t *testing.T) {
	r := newRig(t)
	r.d = dedup.New(time.Minute, 1024)
	looped := search("", "10.77.0.255:5076", "came over the mesh")
	retried := search("", "10.77.0.255:5076", "search")
	var f frame.Frame
	if err := f.Decode(looped); err != nil {
		t.Fatal(err)
	}
	r.d.Received(time.Now().UnixNano(), f.Key(looped, r.seed)) // injected
	if out := r.run([][]byte{looped, retried, retried}); len(out) != 2 {
		t.Errorf("%d frames passed on, want 2", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonDuplicate: 1})
}

func TestNeighbourInjection(t *testing.T) {
	r := newRig(t)
	r.seg = segment.NewTable(1, time.Minute)
	mac := [6]byte{0x02, 0x00, 10, 77, 0, 3}
	r.seg.Heard(time.Now().UnixNano(), netip.MustParseAddr("10.77.0.3"), 2, mac)
	injected := search("", "10.77.0.255:5076", "from the mesh")
	copy(injected[6:12], mac[:])
	if out := r.run([][]byte{injected, search("", "10.77.0.255:5076", "from a client")}); len(out) != 1 {
		t.Errorf("%d frames passed on, want 1", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonNeighbourInjection: 1})
}

// TestRateLimit checks the per-client token bucket: each IP source has its
// own; a refused first fragment takes its datagram's other fragments with
// it; a client's retry of a refused datagram passes once tokens are back;
// the clock is read once per batch.
func TestRateLimit(t *testing.T) {
	r := newRig(t)
	r.d = dedup.New(time.Minute, 1024)
	clock, readings := stagetest.SteppingClock()
	lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 2, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.Limiter = lim
	var batch1 [][]byte
	for i := range 4 {
		batch1 = append(batch1, search("", "10.77.0.255:5076", fmt.Sprint("search ", i)))
	}
	batch1 = append(batch1, search("10.77.0.12", "10.77.0.255:5076", "another client"))
	batch1 = append(batch1, search("127.0.0.1", "10.77.0.255:5076", "bad source: no token spent"))
	// Batch 2, a second later: one token back. The retry of search 2
	// passes and takes it; the fragmented datagram is refused whole.
	frags := frametest.Fragments(search("", "10.77.0.255:5076", strings.Repeat("f", 3000)), 1480)
	batch2 := append([][]byte{batch1[2]}, frags...)
	out := r.run(batch1, batch2)
	want := [][]byte{batch1[0], batch1[1], batch1[4], batch1[2]}
	if len(out) != len(want) {
		t.Fatalf("%d frames passed on, want %d", len(out), len(want))
	}
	for i := range want {
		if !bytes.Equal(out[i], want[i]) {
			t.Errorf("frame %d passed on is not the expected one", i)
		}
	}
	r.wantDrops(map[pipeline.Reason]uint64{
		pipeline.ReasonRateLimited: 2 + 3, // searches 2 and 3; the three fragments
		pipeline.ReasonBadSource:   1,
	})
	if *readings != 2 {
		t.Errorf("clock read %d times for 2 batches", *readings)
	}
	if got := lim.Sources(); len(got) != 1 || got[0] != (ratelimit.Source{Addr: client.Addr(), Dropped: 5}) {
		t.Errorf("Sources = %v, want [{%v 5}]", got, client.Addr())
	}
}

func TestKeepAllocatesNothing(t *testing.T) {
	r := newRig(t)
	lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.Limiter = lim
	st := New(r.cfg, nil, nil, r.m.Stage("filter"), r.m, dedup.New(time.Minute, 1<<16), segment.NewTable(1, time.Minute), r.seed)
	st.rules.Begin(time.Now().UnixNano(), lim.Now())
	frames := [][]byte{
		search("", "10.77.0.255:5076", "search"),     // passes, then duplicate, then rate limited
		search("", "10.77.0.255:5077", "x"),          // wrong port
		search("127.0.0.1", "10.77.0.255:5076", "x"), // bad source
	}
	for i, fr := range frames {
		p := &pipeline.Packet{Buf: make([]byte, pipeline.Headroom+2048), Off: pipeline.Headroom}
		p.Len = copy(p.Buf[p.Off:], fr)
		if err := p.Frame.Decode(p.Bytes()); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(200, func() { st.keep(p) }); n != 0 {
			t.Errorf("frame %d: %v allocations per packet", i, n)
		}
	}
}
