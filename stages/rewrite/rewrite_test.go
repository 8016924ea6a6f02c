//go:build linux

package rewrite

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
	"github.com/snowsignal/snowsignal/stages/shared/stagetest"
)

var neighbourMAC = [6]byte{0x02, 0x00, 10, 77, 0, 3}

// TestHellos: a neighbour's hello is used, not injected and not counted as
// a drop; afterwards that neighbour's frames are refused (it captured them
// on our own segment).
func TestHellos(t *testing.T) {
	hello := segment.PutHello(make([]byte, segment.HelloLen), 0xbbbb, neighbourMAC)
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("authenticated=%v", auth), func(t *testing.T) {
			r := newRig(t)
			r.seg = segment.NewTable(0xaaaa, time.Minute)
			kicks := 0
			r.cfg.OnNewNeighbour = func() { kicks++ }
			d := hello
			if auth {
				r.opener = mesh.NewOpener(key1)
				d = sealed(mesh.NewSealer(key1, 3), hello)
			}
			out := r.run([]dgram{{peerC, d}}, []dgram{{peerC, legacy(search("10.77.0.255:5076", "x"))}})
			if len(out) != 0 {
				t.Errorf("%d frames passed on", len(out))
			}
			if !r.seg.IsNeighbour(peerC.Addr()) || r.seg.Hellos.Load() != 1 || kicks != 1 {
				t.Errorf("neighbour %v, hellos %d, new-neighbour calls %d; want true, 1, 1",
					r.seg.IsNeighbour(peerC.Addr()), r.seg.Hellos.Load(), kicks)
			}
			want := pipeline.ReasonSameSegment
			if auth {
				want = pipeline.ReasonBadAuth // a legacy datagram at a keyed relay, before the neighbour check
			}
			r.wantDrops(map[pipeline.Reason]uint64{want: 1})
			// A hello from a known neighbour is no news.
			if r.one(peerC, d); kicks != 1 {
				t.Errorf("new-neighbour calls %d after a second hello, want 1", kicks)
			}
		})
	}
}

func TestHelloRejects(t *testing.T) {
	own := segment.PutHello(make([]byte, segment.HelloLen), 0xaaaa, ourMAC)
	other := segment.PutHello(make([]byte, segment.HelloLen), 0xbbbb, neighbourMAC)
	badVersion := append([]byte(nil), other...)
	badVersion[2] = 9
	for _, tc := range []struct {
		name   string
		noSeg  bool
		opener bool
		from   netip.AddrPort
		d      []byte
		want   map[pipeline.Reason]uint64
	}{
		{"our own id", false, false, peerC, own, nil},
		{"looped back from our address", false, false, netip.AddrPortFrom(ourAddr, 7124), other, nil},
		{"hellos off", true, false, peerC, other, map[pipeline.Reason]uint64{pipeline.ReasonMalformedMesh: 1}},
		{"unknown version", false, false, peerC, badVersion, map[pipeline.Reason]uint64{pipeline.ReasonMalformedMesh: 1}},
		{"cut short", false, false, peerC, other[:4], map[pipeline.Reason]uint64{pipeline.ReasonMalformedMesh: 1}},
		{"not a peer", false, false, stranger, other, map[pipeline.Reason]uint64{pipeline.ReasonUnknownPeer: 1}},
		{"unsealed at a keyed relay", false, true, peerC, other, map[pipeline.Reason]uint64{pipeline.ReasonMalformedMesh: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			if !tc.noSeg {
				r.seg = segment.NewTable(0xaaaa, time.Minute)
			}
			if tc.opener {
				r.opener = mesh.NewOpener(key1)
			}
			r.one(tc.from, tc.d)
			r.wantDrops(tc.want)
			if r.seg != nil && len(r.seg.Neighbours()) != 0 {
				t.Errorf("neighbours %v, want none", r.seg.Neighbours())
			}
		})
	}
}

// TestOtherInjector: with a neighbour on our segment, each frame is
// injected by exactly one of us; the ones we leave are counted.
func TestOtherInjector(t *testing.T) {
	r := newRig(t)
	r.seg = segment.NewTable(0xaaaa, time.Minute)
	r.seg.SetSelf(ourAddr)
	r.seg.Heard(time.Now().UnixNano(), peerC.Addr(), 0xbbbb, neighbourMAC)
	var ds [][]byte
	for i := range 64 {
		ds = append(ds, legacy(search("10.77.0.255:5076", fmt.Sprint("search ", i))))
	}
	out := r.one(peerA, ds...)
	if len(out) == 0 || len(out) == 64 {
		t.Fatalf("%d of 64 frames injected here, want a share", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonOtherInjector: uint64(64 - len(out))})
}

func TestDuplicates(t *testing.T) {
	r := newRig(t)
	r.dedup = dedup.New(time.Minute, 1024)
	d := legacy(search("10.77.0.255:5076", "search"))
	// The same datagram from two relays of its origin segment, and again.
	out := r.run([]dgram{{peerA, d}, {peerC, d}}, []dgram{{peerA, d}})
	if len(out) != 1 {
		t.Errorf("%d frames passed on, want 1", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonDuplicate: 2})
}

// TestRateLimit checks the per-peer token bucket: each peer has its own,
// frames refused for another reason spend no token, and the clock is read
// once per batch (a clock that moves a second per reading proves it).
func TestRateLimit(t *testing.T) {
	r := newRig(t)
	clock, readings := stagetest.SteppingClock()
	lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 2, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.Limiter = lim
	frames := func(from netip.AddrPort, n int) []dgram {
		var ds []dgram
		for i := range n {
			ds = append(ds, dgram{from, legacy(search("10.77.0.255:5076", fmt.Sprint(from, i)))})
		}
		return ds
	}
	batch1 := append([]dgram{{peerA, legacy(search("10.77.0.255:5077", "wrong port"))}}, frames(peerA, 5)...)
	batch1 = append(batch1, frames(peerC, 2)...)
	batch2 := frames(peerA, 5)
	out := r.run(batch1, batch2)
	// Batch 1: peerA's burst of 2, peerC's 2; batch 2, a second later: 1.
	if len(out) != 5 {
		t.Errorf("%d frames passed on, want 5", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonRateLimited: 7, pipeline.ReasonWrongPort: 1})
	if *readings != 2 {
		t.Errorf("clock read %d times for 2 batches", *readings)
	}
	if got := lim.Sources(); len(got) != 1 || got[0] != (ratelimit.Source{Addr: peerA.Addr(), Dropped: 7}) {
		t.Errorf("Sources = %v, want [{%v 7}]", got, peerA.Addr())
	}
}

// TestKeepAllocatesNothing runs the per-packet path, accepted and refused,
// with every feature on.
func TestKeepAllocatesNothing(t *testing.T) {
	r := newRig(t)
	r.dedup = dedup.New(time.Minute, 1<<16)
	r.seg = segment.NewTable(0xaaaa, time.Minute)
	lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.Limiter = lim
	sealer := mesh.NewSealer(key1, 5)
	// Prepared outside the measured function: only the relay's work counts.
	fr1, fr2 := search("10.1.0.255:5076", "search 1"), search("10.1.0.255:5076", "search 2")
	plain, forged := legacy(fr1), sealed(mesh.NewSealer(key1, 6), fr1)
	forged[20] ^= 1

	for _, tc := range []struct {
		name   string
		opener bool
		from   netip.AddrPort
		fill   func(p *pipeline.Packet)
		accept bool
	}{
		{"legacy, accepted then duplicate", false, peerA, func(p *pipeline.Packet) {
			p.Len = copy(p.Buf[p.Off:], plain)
		}, true},
		{"authenticated, accepted then duplicate", true, peerA, func(p *pipeline.Packet) {
			n := copy(p.Buf[pipeline.Headroom+mesh.AuthHeaderLen:], fr2)
			p.Off = sealer.Seal(p.Buf, pipeline.Headroom+mesh.AuthHeaderLen, n)
			p.Len = mesh.AuthHeaderLen + n
		}, true},
		{"not a peer", false, stranger, func(p *pipeline.Packet) {
			p.Len = copy(p.Buf[p.Off:], plain)
		}, false},
		{"bad tag", true, peerA, func(p *pipeline.Packet) {
			p.Len = copy(p.Buf[p.Off:], forged)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.opener = nil
			if tc.opener {
				r.opener = mesh.NewOpener(key1)
			}
			st := New(r.cfg, nil, nil, r.target, r.peers, r.opener, r.dedup, r.seg, r.seed, r.m.Stage("rewrite"), r.m, zerolog.Nop())
			st.set, st.info = r.peers.Load(), r.target.Load()
			st.rules.Begin(time.Now().UnixNano(), lim.Now())
			p := &pipeline.Packet{Buf: make([]byte, pipeline.Headroom+2048)}
			accepted := 0
			allocs := testing.AllocsPerRun(200, func() {
				p.Off, p.Addr = pipeline.Headroom, tc.from
				tc.fill(p)
				if st.keep(p) {
					accepted++
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per packet", allocs)
			}
			if tc.accept != (accepted > 0) {
				t.Errorf("%d packets accepted", accepted)
			}
		})
	}
}
