//go:build linux

package fanout

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/netio/meshconn/meshconntest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// The relay's socket and the fake both are what the fan-out sends on.
var (
	_ Conn = (*meshconn.Conn)(nil)
	_ Conn = (*meshconntest.Conn)(nil)
)

// fakeRig is a fan-out stage on a fake mesh socket with two peers.
type fakeRig struct {
	conn *meshconntest.Conn
	pool *pipeline.Pool
	tbl  *peers.Table
	m    *pipeline.Metrics
	c    *pipeline.StageCounters
	s    *Stage
	a, b netip.AddrPort
}

func newFakeRig(t *testing.T) *fakeRig {
	t.Helper()
	r := &fakeRig{conn: meshconntest.New(1), pool: pipeline.NewPool(256), tbl: peers.NewTable(), m: pipeline.NewMetrics(),
		a: netip.MustParseAddrPort("10.0.0.1:7124"), b: netip.MustParseAddrPort("10.0.0.2:7124")}
	r.tbl.Update(map[netip.AddrPort]string{r.a: "static", r.b: "static"}, false, time.Now())
	r.c = r.m.Stage("fanout")
	r.s = New(nil, r.pool, r.conn, r.tbl, nil, pipeline.ShedPolicy{}, r.c, r.m, zerolog.Nop())
	return r
}

// batch returns a pooled batch holding frames.
func (r *fakeRig) batch(frames ...string) *pipeline.Batch {
	b := r.pool.Get()
	for _, f := range frames {
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], f)
	}
	return b
}

// TestFanoutGroupsBySize: a peer gets a batch's datagrams longest first,
// in capture order among those of one size, so that runs of one size sit
// side by side for the socket to segment; every peer gets the same order.
func TestFanoutGroupsBySize(t *testing.T) {
	r := newFakeRig(t)
	frames := []string{"bb-1", "a-1", "ccc-1", "bb-2", "a-2", "ccc-2", "bb-3"}
	if err := r.s.Handle(r.batch(frames...)); err != nil {
		t.Fatal(err)
	}
	order := []string{"ccc-1", "ccc-2", "bb-1", "bb-2", "bb-3", "a-1", "a-2"}
	got := r.conn.Sent()
	if len(got) != 2*len(order) {
		t.Fatalf("sent %d datagrams, want %d", len(got), 2*len(order))
	}
	for i, d := range got {
		if want := mesh.LegacyMagic + order[i%len(order)]; string(d.Data) != want || d.Addr != got[i/len(order)*len(order)].Addr {
			t.Errorf("datagram %d = %s %q, want %q to the same peer as the %d before", i, d.Addr, d.Data, want, i%len(order))
		}
	}
}

// TestFanoutSendsEveryFrameToEveryPeer: each frame of a batch goes to each
// peer, as "SS" and the frame, peer by peer (so that a peer's datagrams sit
// side by side, for the socket to segment as one) and in order for each;
// the peers' counters say what they were sent, and Out counts frames, not
// datagrams.
func TestFanoutSendsEveryFrameToEveryPeer(t *testing.T) {
	r := newFakeRig(t)
	if err := r.s.Handle(r.batch("frame-1", "frame-2")); err != nil {
		t.Fatal(err)
	}
	var want []meshconntest.Datagram
	for _, p := range r.tbl.Load().Peers {
		for _, f := range []string{"frame-1", "frame-2"} {
			want = append(want, meshconntest.Datagram{Addr: p.Addr, Data: []byte(mesh.LegacyMagic + f)})
		}
	}
	got := r.conn.Sent()
	if len(got) != len(want) {
		t.Fatalf("sent %d datagrams, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Addr != want[i].Addr || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Errorf("datagram %d = %s %q, want %s %q", i, got[i].Addr, got[i].Data, want[i].Addr, want[i].Data)
		}
	}
	for _, addr := range []netip.AddrPort{r.a, r.b} {
		p := r.tbl.Load().Lookup(addr.Addr())
		if p.TxPackets.Load() != 2 || p.TxBytes.Load() != 2*9 || p.TxErrors.Load() != 0 {
			t.Errorf("peer %s: %d packets, %d bytes, %d errors; want 2, 18, 0", addr, p.TxPackets.Load(), p.TxBytes.Load(), p.TxErrors.Load())
		}
	}
	if st := r.c.Stats(); st.In != 2 || st.Out != 2 || st.Errors != 0 {
		t.Errorf("stage in %d out %d errors %d, want 2 2 0", st.In, st.Out, st.Errors)
	}
}

// TestFanoutCountsARefusingPeer: datagrams the socket refuses for one peer
// count against that peer and under send_error, not as sent; the other
// peer gets everything.
func TestFanoutCountsARefusingPeer(t *testing.T) {
	r := newFakeRig(t)
	r.conn.Refuse(r.b, unix.ECONNREFUSED)
	if err := r.s.Handle(r.batch("one", "two", "three")); err != nil {
		t.Fatal(err)
	}
	for _, d := range r.conn.Sent() {
		if d.Addr != r.a {
			t.Errorf("a datagram reached %s, which refuses them", d.Addr)
		}
	}
	if n := len(r.conn.Sent()); n != 3 {
		t.Errorf("%s got %d datagrams, want 3", r.a, n)
	}
	pa, pb := r.tbl.Load().Lookup(r.a.Addr()), r.tbl.Load().Lookup(r.b.Addr())
	if pb.TxErrors.Load() != 3 || pb.TxPackets.Load() != 0 || pb.TxBytes.Load() != 0 {
		t.Errorf("refusing peer: %d errors, %d packets, %d bytes; want 3, 0, 0", pb.TxErrors.Load(), pb.TxPackets.Load(), pb.TxBytes.Load())
	}
	if pa.TxPackets.Load() != 3 || pa.TxErrors.Load() != 0 {
		t.Errorf("other peer: %d packets, %d errors; want 3, 0", pa.TxPackets.Load(), pa.TxErrors.Load())
	}
	if n := r.m.Drops(pipeline.ReasonSendError); n != 3 {
		t.Errorf("send_error drops = %d, want 3", n)
	}
	if st := r.c.Stats(); st.Errors != 3 {
		t.Errorf("stage errors = %d, want 3", st.Errors)
	}

	// An error the socket reads later, from its error queue, is counted too.
	r.conn.ReportPeerError(meshconn.PeerError{Dst: r.a, From: r.a.Addr(), Err: unix.ECONNREFUSED, Type: 3, Code: 3})
	if pa.TxErrors.Load() != 1 {
		t.Errorf("peer %s: %d errors after an ICMP error, want 1", r.a, pa.TxErrors.Load())
	}
}

// TestFanoutRunSendsUntilItsLinkCloses: Run sends what arrives on its link
// and returns nil once the link is closed.
func TestFanoutRunSendsUntilItsLinkCloses(t *testing.T) {
	r := newFakeRig(t)
	in := pipeline.NewLink("filter->fanout", 4, pipeline.Block, r.pool)
	r.s.in = in
	done := make(chan error, 1)
	go func() { done <- r.s.Run(context.Background()) }()
	in.Send(r.batch("x"))
	in.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after its link closed")
	}
	if n := len(r.conn.Sent()); n != 2 {
		t.Errorf("sent %d datagrams, want 2 (one frame, two peers)", n)
	}
}

// TestFanoutShedsStaleFrames: with a maximum delay, frames the kernel
// received longer ago are not sent and are counted under stale, alone or
// among others; fresh frames and frames without a receive time go to every
// peer, in order.
func TestFanoutShedsStaleFrames(t *testing.T) {
	r := newFakeRig(t)
	in := pipeline.NewLink("filter->fanout", 4, pipeline.Block, r.pool)
	r.s = New(in, r.pool, r.conn, r.tbl, nil, pipeline.ShedPolicy{MaxDelay: 4 * time.Millisecond}, r.c, r.m, zerolog.Nop())
	late := r.batch("late, alone")
	late.Pkts[0].Stamp = time.Now().UnixNano() - int64(50*time.Millisecond)
	if err := r.s.Handle(late); err != nil {
		t.Fatal(err)
	}
	if n := len(r.conn.Sent()); n != 0 || r.m.Drops(pipeline.ReasonStale) != 1 {
		t.Fatalf("a late frame alone: sent %d datagrams, %d stale; want 0, 1", n, r.m.Drops(pipeline.ReasonStale))
	}
	sentBefore := len(r.conn.Sent())
	in.Send(r.batch("behind"))
	b := r.batch("old-1", "fresh", "unstamped", "old-2")
	now := time.Now().UnixNano()
	b.Pkts[0].Stamp = now - int64(50*time.Millisecond)
	b.Pkts[1].Stamp = now
	b.Pkts[2].Stamp = 0
	b.Pkts[3].Stamp = now - int64(5*time.Millisecond)
	if err := r.s.Handle(b); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range r.conn.Sent()[sentBefore:] {
		got = append(got, string(d.Data[len(mesh.LegacyMagic):]))
	}
	want := []string{"unstamped", "fresh", "unstamped", "fresh"} // two peers each, longest first
	if len(got) != len(want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("datagram %d = %q, want %q", i, got[i], want[i])
		}
	}
	if n := r.m.Drops(pipeline.ReasonStale); n != 3 {
		t.Errorf("stale drops = %d, want 3", n)
	}
	if st := r.c.Stats(); st.In != 5 || st.Out != 2 {
		t.Errorf("stage in %d out %d, want 5 2", st.In, st.Out)
	}

	// Without a maximum delay nothing is shed, however old.
	r0 := newFakeRig(t)
	b = r0.batch("old")
	b.Pkts[0].Stamp = 1
	if err := r0.s.Handle(b); err != nil {
		t.Fatal(err)
	}
	if n := len(r0.conn.Sent()); n != 2 || r0.m.Drops(pipeline.ReasonStale) != 0 {
		t.Errorf("--max-delay 0: sent %d datagrams, %d stale; want 2, 0", n, r0.m.Drops(pipeline.ReasonStale))
	}
}

// TestFanoutShedsStandingQueue: frames that keep arriving older than the
// queue target are sent while the queue may still be a burst, then, once
// it has stood for the interval, shed and counted as overload; a fresh
// frame among them is still sent to every peer.
func TestFanoutShedsStandingQueue(t *testing.T) {
	r := newFakeRig(t)
	in := pipeline.NewLink("filter->fanout", 4, pipeline.Block, r.pool)
	const target, interval = 2 * time.Millisecond, 10 * time.Millisecond
	r.s = New(in, r.pool, r.conn, r.tbl, nil, pipeline.ShedPolicy{MaxDelay: time.Second, Target: target, Interval: interval}, r.c, r.m, zerolog.Nop())
	late := func(names ...string) *pipeline.Batch {
		b := r.batch(names...)
		for i := range b.Pkts {
			b.Pkts[i].Stamp = time.Now().Add(-5 * time.Millisecond).UnixNano()
		}
		return b
	}
	if err := r.s.Handle(late("first")); err != nil {
		t.Fatal(err)
	}
	if n := len(r.conn.Sent()); n != 2 {
		t.Fatalf("the first late frame: sent %d datagrams, want 2 (it may be a burst)", n)
	}
	// The queue has stood since the first frame was sent, so time it from
	// after that: a slow first Handle (the race detector) cannot shorten it.
	start := time.Now()
	for time.Since(start) <= interval {
		if err := r.s.Handle(late("behind")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	sent := len(r.conn.Sent())
	b := late("old", "fresh", "old")
	b.Pkts[1].Stamp = time.Now().UnixNano()
	if err := r.s.Handle(b); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range r.conn.Sent()[sent:] {
		got = append(got, string(d.Data[len(mesh.LegacyMagic):]))
	}
	if !slices.Equal(got, []string{"fresh", "fresh"}) {
		t.Errorf("after the queue stood for %s: sent %q, want the fresh frame to both peers", interval, got)
	}
	if n := r.m.Drops(pipeline.ReasonOverload); n < 2 {
		t.Errorf("overload drops = %d, want at least the 2 old frames", n)
	}
	if n := r.m.Drops(pipeline.ReasonStale); n != 0 {
		t.Errorf("stale drops = %d, want 0 (none over --max-delay)", n)
	}
}

// TestFanoutIPv6OnlyToCapablePeers: an IPv6 frame goes only to the peer
// whose current announcement includes ipv6; the peer that never announced
// (a legacy relay) and the one whose announcement expired get only the IPv4
// frame, and each counts the IPv6 frame it was not sent. IPv4 frames go to
// every peer, as before.
func TestFanoutIPv6OnlyToCapablePeers(t *testing.T) {
	r := newFakeRig(t)
	c := netip.MustParseAddrPort("[fd00:77::3]:7124")
	r.tbl.Update(map[netip.AddrPort]string{r.a: "static", r.b: "static", c: "static"}, false, time.Now())
	set := r.tbl.Load()
	now := time.Now().UnixNano()
	set.Lookup(r.a.Addr()).SetCaps(mesh.CapIPv6, now, now+int64(time.Minute))
	set.Lookup(c.Addr()).SetCaps(mesh.CapIPv6, now-int64(2*time.Minute), now-int64(time.Minute)) // expired
	b := r.batch("frame-v4", "frame-v6")
	b.Pkts[1].Frame.IPv6 = true
	if err := r.s.Handle(b); err != nil {
		t.Fatal(err)
	}
	got := map[netip.AddrPort][]string{}
	for _, d := range r.conn.Sent() {
		got[d.Addr] = append(got[d.Addr], string(d.Data[len(mesh.LegacyMagic):]))
	}
	want := map[netip.AddrPort][]string{r.a: {"frame-v4", "frame-v6"}, r.b: {"frame-v4"}, c: {"frame-v4"}}
	for addr, w := range want {
		if !slices.Equal(got[addr], w) {
			t.Errorf("%s was sent %q, want %q", addr, got[addr], w)
		}
	}
	for addr, w := range map[netip.AddrPort]uint64{r.a: 0, r.b: 1, c: 1} {
		if n := set.Lookup(addr.Addr()).Withheld6.Load(); n != w {
			t.Errorf("%s: Withheld6 = %d, want %d", addr, n, w)
		}
	}
	if n := r.c.Out.Load(); n != 2 {
		t.Errorf("Out = %d, want 2 (frames, not datagrams)", n)
	}
}

// TestFanoutWithholdAllocs: withholding IPv6 frames from peers that did not
// announce ipv6 allocates nothing (nothing is sent here, so the fake
// socket, which copies what it is given, is not in the measurement).
func TestFanoutWithholdAllocs(t *testing.T) {
	r := newFakeRig(t)
	b := r.pool.Get()
	for range pipeline.MaxBatch {
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], "frame-v6")
		p.Frame.IPv6 = true
	}
	var err error
	if n := testing.AllocsPerRun(100, func() { err = r.s.send(b) }); n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.conn.Sent()); got != 0 {
		t.Errorf("sent %d datagrams, want none", got)
	}
	if n, want := r.tbl.Load().Lookup(r.b.Addr()).Withheld6.Load(), uint64(101*pipeline.MaxBatch); n != want {
		t.Errorf("Withheld6 = %d, want %d", n, want)
	}
}
