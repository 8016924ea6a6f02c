//go:build linux

package inject

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestInjectDropsWhileItsInterfaceIsMissing: with no interface, the stage
// drops and counts what comes in (so the stages before it do not stall),
// and returns as soon as its input is closed.
func TestInjectDropsWhileItsInterfaceIsMissing(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	h := l.Host("relay-b")
	if _, err := h.RemoveLink(); err != nil {
		t.Fatal(err)
	}
	pool := pipeline.NewPool(2048)
	m := pipeline.NewMetrics()
	in := pipeline.NewLink("rewrite->inject", 8, pipeline.Block, pool)
	s := New(Config{Interface: netlab.IfName}, in, pool, &iface.Current{}, m.Stage("inject"), m, zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- h.Do(func() error { return s.Run(context.Background()) }) }()

	for i := 0; i < 20; i++ { // more than the link holds: the stage must drain it
		b := pool.Get()
		for j := 0; j < 3; j++ {
			p := b.Slot()
			p.Len = copy(p.Buf[p.Off:], "frame")
		}
		in.Send(b)
	}
	in.Close()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after its input closed")
	}
	if d := time.Since(start); d > 3*iface.LookupEvery {
		t.Errorf("Run took %s to notice its input closed", d)
	}
	if got := m.Drops(pipeline.ReasonSendError); got != 60 {
		t.Errorf("send_error drops %d, want 60", got)
	}
}

// TestInjectShedsStaleFrames: frames that reach the inject stage longer
// after the kernel received them than MaxDelay are not written and are
// counted under stale, alone or among others; fresh ones and ones without
// a receive time reach the segment, in order.
func TestInjectShedsStaleFrames(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sn, err := l.Host("server").Sniff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool := pipeline.NewPool(64)
	m := pipeline.NewMetrics()
	in := pipeline.NewLink("rewrite->inject", 8, pipeline.Block, pool)
	s := New(Config{Interface: netlab.IfName, Shed: pipeline.ShedPolicy{MaxDelay: 4 * time.Millisecond}}, in, pool, &iface.Current{}, m.Stage("inject"), m, zerolog.Nop())
	done := make(chan error, 1)

	// Broadcast frames with a marker after the Ethernet header; the sniffer
	// sees every frame the bridge floods to the server.
	b := pool.Get()
	now := time.Now().UnixNano()
	for _, f := range []struct {
		mark  string
		stamp int64
	}{{"stale-one", now - int64(40*time.Millisecond)}, {"fresh-one", now + int64(time.Second)}, {"no-stamp", 0}, {"stale-two", 1}} {
		p := b.Slot()
		hdr := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5} // broadcast, local MAC, experimental EtherType
		p.Len = copy(p.Buf[p.Off:], append(hdr, f.mark...))
		p.Stamp = f.stamp
	}
	// The marked batch and one behind it are queued before the stage runs;
	// once it has taken both, a late frame alone (it is shed too).
	mark := func(text string, stamp int64) *pipeline.Batch {
		b := pool.Get()
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5}, text...))
		p.Stamp = stamp
		return b
	}
	in.Send(b)
	in.Send(mark("behind", 0))
	go func() { done <- l.Host("relay-b").Do(func() error { return s.Run(ctx) }) }()
	waitEmpty(t, in)
	in.Send(mark("late-alone", 1))
	frames, err := sn.Collect(300*time.Millisecond, func(f netlab.Frame) bool {
		return len(f.Data) >= 14 && f.Data[12] == 0x88 && f.Data[13] == 0xb5
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	var got []string
	for _, f := range frames {
		got = append(got, string(f.Data[14:]))
	}
	if len(got) != 3 || got[0] != "fresh-one" || got[1] != "no-stamp" || got[2] != "behind" {
		t.Errorf("the segment saw %q, want [fresh-one no-stamp behind]", got)
	}
	if n := m.Drops(pipeline.ReasonStale); n != 3 {
		t.Errorf("stale drops = %d, want 3", n)
	}
}

// TestLocalFrames: local delivery copies the IPv4 frames of a batch, in
// order, and no IPv6 one; a batch without IPv6 is passed as it is, and
// gathering allocates nothing once the buffer has grown.
func TestLocalFrames(t *testing.T) {
	v4 := func(tag byte) []byte { b := make([]byte, 60); b[12], b[13], b[14] = 0x08, 0x00, tag; return b }
	v6 := func(tag byte) []byte { b := make([]byte, 62); b[12], b[13], b[14] = 0x86, 0xdd, tag; return b }
	var buf [][]byte
	only4 := [][]byte{v4(1), v4(2)}
	if got := localFrames(only4, &buf); len(got) != 2 || &got[0] != &only4[0] {
		t.Errorf("IPv4 only: %d frames, or not the batch itself", len(got))
	}
	mixed := [][]byte{v4(1), v6(2), v4(3), v6(4), v6(5), v4(6)}
	var got [][]byte
	if n := testing.AllocsPerRun(10, func() { got = localFrames(mixed, &buf) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	var tags []byte
	for _, f := range got {
		tags = append(tags, f[14])
	}
	if string(tags) != "\x01\x03\x06" {
		t.Errorf("copied frames %v, want the IPv4 ones 1, 3, 6", tags)
	}
	if got := localFrames([][]byte{v6(1)}, &buf); len(got) != 0 {
		t.Errorf("IPv6 only: %d frames copied, want none", len(got))
	}
}

// waitEmpty waits until the stage has taken every batch from in.
func waitEmpty(t *testing.T, in *pipeline.Link) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); in.Backlogged(); {
		if time.Now().After(deadline) {
			t.Fatal("the inject stage took no batch in 2s")
		}
		time.Sleep(time.Millisecond)
	}
}
