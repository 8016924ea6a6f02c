package pipeline

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/snowsignal/snowsignal/netio/frame"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fill(p *Pool, n int) *Batch {
	b := p.Get()
	for i := 0; i < n; i++ {
		s := b.Slot()
		s.Len = copy(s.Buf[s.Off:], []byte{byte(i)})
	}
	return b
}

func TestDropLinkCountsWhenFull(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 2, Drop, pool)
	var sent []*Batch
	for i := 0; i < 5; i++ {
		b := fill(pool, 3)
		sent = append(sent, b)
		if !l.Send(b) {
			t.Errorf("Send %d: the newest batch was dropped", i)
		}
	}
	st := l.Stats()
	if st.Batches != 5 || st.Packets != 15 {
		t.Errorf("queued %d batches/%d packets, want 5/15", st.Batches, st.Packets)
	}
	if st.DroppedBatches != 3 || st.DroppedPackets != 9 {
		t.Errorf("dropped %d batches/%d packets, want 3/9", st.DroppedBatches, st.DroppedPackets)
	}
	if st.Len != 2 || st.Cap != 2 || st.Policy != "drop" {
		t.Errorf("stats %+v", st)
	}
	// The oldest were dropped: the two newest wait, in order.
	for _, want := range sent[3:] {
		if got := <-l.C(); got != want {
			t.Error("the link kept an older batch than the two newest")
		}
	}
}

type backlog bool

func (b backlog) Backlogged() bool { return bool(b) }

// TestPassFromEvictsOnlyWhatTheConsumerCannotTake: on one P, a reader
// whose socket is not backlogged lets a ready consumer take every batch.
// One whose socket is backlogged still lets it take a batch for each one
// read, so a consumer that keeps up loses a batch or two at most (a reader
// that kept the P evicted 98 of these 100); and when the consumer does not
// run at all the reader evicts the oldest, counted, and never blocks.
func TestPassFromEvictsOnlyWhatTheConsumerCannotTake(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const cap, sends = 2, 100
	for _, tc := range []struct {
		name       string
		backlogged backlog
		stalled    bool
		maxDropped int
		minDropped int
	}{
		{"not backlogged", false, false, 0, 0},
		{"backlogged", true, false, cap, 0},
		{"backlogged, consumer stalled", true, true, sends - cap, sends - cap},
	} {
		pool := NewPool(64)
		l := NewLink("a->b", cap, Drop, pool)
		c := NewMetrics().Stage("reader")
		got, gate := make(chan int), make(chan struct{})
		go func() {
			if tc.stalled {
				<-gate
			}
			n := 0
			for b := range l.C() {
				n += len(b.Pkts)
				pool.Put(b)
			}
			got <- n
		}()
		for range sends {
			c.PassFrom(l, fill(pool, 1), tc.backlogged)
		}
		l.Close()
		close(gate)
		n, st := <-got, l.Stats()
		if n+int(st.DroppedPackets) != sends || c.Out.Load() != sends {
			t.Errorf("%s: consumed %d + dropped %d (out %d), want %d in all", tc.name, n, st.DroppedPackets, c.Out.Load(), sends)
		}
		if d := int(st.DroppedPackets); d < tc.minDropped || d > tc.maxDropped {
			t.Errorf("%s: evicted %d of %d batches, want %d to %d", tc.name, d, sends, tc.minDropped, tc.maxDropped)
		}
	}
}

func TestBlockLinkWaitsThenAbandonDrops(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 1, Block, pool)
	l.Send(fill(pool, 1))
	done := make(chan bool)
	go func() { done <- l.Send(fill(pool, 1)) }()
	select {
	case <-done:
		t.Fatal("Send on a full blocking link returned")
	case <-time.After(20 * time.Millisecond):
	}
	l.Abandon()
	if ok := <-done; ok {
		t.Error("Send after Abandon reported queued")
	}
	if st := l.Stats(); st.DroppedBatches != 2 {
		t.Errorf("dropped %d batches, want 2 (the queued one and the blocked one)", st.DroppedBatches)
	}
}

func TestBatchKeepPreservesBuffers(t *testing.T) {
	pool := NewPool(64)
	b := fill(pool, 6)
	bufs := map[*byte]bool{}
	for i := range b.Pkts[:cap(b.Pkts)] {
		bufs[&b.Pkts[:cap(b.Pkts)][i].Buf[0]] = true
	}
	b.Keep(func(p *Packet) bool { return p.Bytes()[0]%2 == 0 })
	if len(b.Pkts) != 3 {
		t.Fatalf("kept %d, want 3", len(b.Pkts))
	}
	for i, p := range b.Pkts {
		if got := p.Bytes()[0]; got != byte(2*i) {
			t.Errorf("packet %d holds %d, want %d", i, got, 2*i)
		}
	}
	for i := range b.Pkts[:cap(b.Pkts)] {
		if !bufs[&b.Pkts[:cap(b.Pkts)][i].Buf[0]] {
			t.Fatal("a buffer left the batch")
		}
	}
}

func TestBatchKeepAllocatesNothing(t *testing.T) {
	pool := NewPool(64)
	b := fill(pool, MaxBatch)
	keep := func(p *Packet) bool { return true }
	if n := testing.AllocsPerRun(100, func() { b.Keep(keep) }); n != 0 {
		t.Errorf("Keep allocates %v times", n)
	}
}

// counting is a consumer stage that counts packets until its input closes.
type counting struct {
	in   *Link
	pool *Pool
	n    atomic.Int64
	fail atomic.Int32 // panics this many more times
}

func (c *counting) Run(ctx context.Context) error {
	for b := range c.in.C() {
		if c.fail.Add(-1) >= 0 {
			c.pool.Put(b)
			panic("boom")
		}
		c.n.Add(int64(len(b.Pkts)))
		c.pool.Put(b)
	}
	return nil
}

func TestSupervisorRestartsPanickingStageAndDrains(t *testing.T) {
	pool := NewPool(64)
	m := NewMetrics()
	l := NewLink("src->sink", 4, Block, pool)
	m.AddLink(l)
	sink := &counting{in: l, pool: pool}
	sink.fail.Store(2)
	sent := make(chan struct{})
	src := StageFunc(func(ctx context.Context) error {
		for i := 0; i < 10; i++ {
			l.Send(fill(pool, 1))
		}
		close(sent)
		<-ctx.Done()
		return ctx.Err()
	})
	sup := NewSupervisor(zerolog.Nop(), Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond, ResetAfter: time.Second}, time.Second)
	srcC, sinkC := m.Stage("src"), m.Stage("sink")
	sup.Add(srcC, src, nil, l)
	sup.Add(sinkC, sink, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	<-sent
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("supervisor did not stop")
	}
	// Two batches were lost with the two panics; the rest drained.
	if got := sink.n.Load(); got != 8 {
		t.Errorf("sink counted %d packets, want 8", got)
	}
	st := sinkC.Stats()
	if st.Restarts != 2 || st.State != "stopped" || st.LastError != "panic: boom" {
		t.Errorf("sink stats %+v", st)
	}
}

func TestSupervisorBacksOffAndStopsDuringBackoff(t *testing.T) {
	m := NewMetrics()
	var runs atomic.Int32
	failing := StageFunc(func(ctx context.Context) error {
		runs.Add(1)
		return errors.New("no such interface")
	})
	sup := NewSupervisor(zerolog.Nop(), Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond, ResetAfter: time.Second}, time.Second)
	c := m.Stage("capture")
	sup.Add(c, failing, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	sup.Run(ctx)
	if el := time.Since(start); el > time.Second {
		t.Errorf("Run took %s after its context ended", el)
	}
	// 10+20+40+40 ms of backoff fit in 150 ms: between 3 and 6 runs.
	if n := runs.Load(); n < 3 || n > 6 {
		t.Errorf("stage ran %d times, want 3..6 with exponential backoff", n)
	}
	if st := c.Stats(); st.Restarts != uint64(runs.Load()) && st.Restarts != uint64(runs.Load()-1) {
		t.Errorf("restarts %d for %d runs", st.Restarts, runs.Load())
	}
}

func TestSupervisorGraceCancelsStuckConsumer(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("src->stuck", 1, Block, pool)
	stuck := StageFunc(func(ctx context.Context) error {
		<-ctx.Done() // never drains its input
		return ctx.Err()
	})
	src := StageFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	m := NewMetrics()
	sup := NewSupervisor(zerolog.Nop(), DefaultBackoff, 50*time.Millisecond)
	sup.Add(m.Stage("src"), src, nil, l)
	sup.Add(m.Stage("stuck"), stuck, l)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	sup.Run(ctx)
	if el := time.Since(start); el > time.Second {
		t.Errorf("stuck consumer held shutdown for %s", el)
	}
}

// TestReasonNamesAndHints: every reason has a distinct label that
// ReasonNamed finds again; link_local_source tells the operator what to fix
// and is what frame.ErrLinkLocalSource maps to.
func TestReasonNamesAndHints(t *testing.T) {
	seen := map[string]bool{}
	for r := Reason(0); r < NumReasons; r++ {
		name := r.String()
		if name == "" || name == "unknown" || seen[name] {
			t.Errorf("reason %d: label %q empty, unknown or repeated", r, name)
		}
		seen[name] = true
		if got, ok := ReasonNamed(name); !ok || got != r {
			t.Errorf("ReasonNamed(%q) = %v, %v; want %v", name, got, ok, r)
		}
	}
	if _, ok := ReasonNamed("no_such_reason"); ok {
		t.Error("ReasonNamed found an unknown label")
	}
	if got := FrameReason(frame.ErrLinkLocalSource); got != ReasonLinkLocalSource || got.String() != "link_local_source" {
		t.Errorf("FrameReason(ErrLinkLocalSource) = %v", got)
	}
	if h := ReasonLinkLocalSource.Hint(); h != "client uses a link-local source; give it a global or ULA address" {
		t.Errorf("link_local_source hint %q", h)
	}
	if h := ReasonWrongPort.Hint(); h != "" {
		t.Errorf("wrong_port has a hint %q, want none", h)
	}
}
