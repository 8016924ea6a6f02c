package pipeline

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// fillAged puts one packet per age into b, named 'a', 'b', ... in order,
// received age before now; an age of -1 is a packet without a stamp.
func fillAged(b *Batch, now int64, ages ...int64) {
	b.Pkts = b.Pkts[:0]
	for i, age := range ages {
		p := b.Slot()
		p.Len = copy(p.Buf[p.Off:], []byte{byte('a' + i)})
		if age >= 0 {
			p.Stamp = now - age
		}
	}
}

// newShedRig returns a pooled batch of four slots, returned when the test
// ends, and a Shedder for p counting into m.
func newShedRig(t *testing.T, p ShedPolicy, m *Metrics) (*Batch, *Shedder) {
	t.Helper()
	pool := NewPool(4)
	b := pool.Get()
	t.Cleanup(func() { pool.Put(b) })
	return b, NewShedder(p, m)
}

func names(b *Batch) string {
	var s string
	for i := range b.Pkts {
		s += string(b.Pkts[i].Bytes())
	}
	return s
}

// TestShedStale: packets received more than MaxDelay before now leave the
// batch, counted as stale, in order and without losing a buffer; packets
// without a stamp stay, and MaxDelay 0 sheds nothing; none of it allocates.
func TestShedStale(t *testing.T) {
	pool := NewPool(64)
	b := pool.Get()
	defer pool.Put(b)
	const now = int64(1_000_000_000)
	bufs := map[*byte]bool{}
	for _, p := range b.Pkts[:cap(b.Pkts)] {
		bufs[&p.Buf[0]] = true
	}

	m := NewMetrics()
	fillAged(b, now, 5*ms, 1*ms, -1, 4*ms, 50*ms, 0)
	if st, ov := NewShedder(ShedPolicy{}, m).shed(b, now); st != 0 || ov != 0 || len(b.Pkts) != 6 {
		t.Fatalf("MaxDelay 0 shed %d stale, %d overload, left %d", st, ov, len(b.Pkts))
	}
	s := NewShedder(ShedPolicy{MaxDelay: 4 * time.Millisecond}, m)
	if st, ov := s.shed(b, now); st != 2 || ov != 0 {
		t.Errorf("shed %d stale, %d overload; want 2, 0", st, ov)
	}
	if got := names(b); got != "bcdf" { // a: 5 ms old, e: 50 ms old; d is exactly MaxDelay old and stays
		t.Errorf("kept %q, want bcdf", got)
	}
	for _, p := range b.Pkts[:cap(b.Pkts)] {
		if !bufs[&p.Buf[0]] {
			t.Fatal("a buffer left the batch")
		}
		delete(bufs, &p.Buf[0])
	}

	// Shed counts into the metrics, with the clock.
	b.Pkts = b.Pkts[:0]
	b.Slot().Stamp = time.Now().Add(-time.Second).UnixNano()
	b.Slot().Stamp = time.Now().UnixNano()
	s.Shed(b)
	if n := m.Drops(ReasonStale); n != 1 || len(b.Pkts) != 1 {
		t.Errorf("Shed: %d stale, %d left; want 1, 1", n, len(b.Pkts))
	}
	if n := testing.AllocsPerRun(100, func() { s.Shed(b) }); n != 0 {
		t.Errorf("Shed allocates %v times", n)
	}
}

// TestShedderCarriesBursts: a queue over target that drains within the
// interval is a burst, and nothing of it is shed, however often it comes.
func TestShedderCarriesBursts(t *testing.T) {
	b, s := newShedRig(t, ShedPolicy{MaxDelay: 250 * time.Millisecond, Target: 2 * time.Millisecond, Interval: 20 * time.Millisecond}, NewMetrics())
	now := int64(1_000_000_000)
	for round := 0; round < 50; round++ {
		// 19 ms of sending a backlog 30 ms deep, then the queue is drained.
		for step := int64(0); step < 19; step++ {
			fillAged(b, now, 30*ms, 29*ms, 28*ms)
			if st, ov := s.shed(b, now); st != 0 || ov != 0 {
				t.Fatalf("round %d, %d ms into the burst: shed %d stale, %d overload", round, step, st, ov)
			}
			now += ms
		}
		fillAged(b, now, 25*ms, 1*ms) // the first fresh packet
		if st, ov := s.shed(b, now); st != 0 || ov != 0 || s.Overloaded() {
			t.Fatalf("round %d, end of the burst: shed %d stale, %d overload", round, st, ov)
		}
		now += 5 * ms
	}
}

// TestShedderStandingQueue: once every packet sent for an interval waited
// longer than target, what is older than target is shed as overload and
// what is fresher is sent; after an interval with nothing over target the
// queue is carried again, until it stands for another interval.
func TestShedderStandingQueue(t *testing.T) {
	m := NewMetrics()
	b, s := newShedRig(t, ShedPolicy{MaxDelay: 50 * time.Millisecond, Target: 2 * time.Millisecond, Interval: 20 * time.Millisecond}, m)
	now := int64(1_000_000_000)
	step := func(want string, ages ...int64) {
		t.Helper()
		fillAged(b, now, ages...)
		s.shed(b, now)
		if got := names(b); got != want {
			t.Fatalf("at %d ms, ages %v: kept %q, want %q", (now-1_000_000_000)/ms, ages, got, want)
		}
	}
	// The queue grows: 3 ms at first, a millisecond more every 10 ms.
	for i := int64(0); i < 20; i++ {
		step("ab", 3*ms+i*ms/10, 3*ms+i*ms/10)
		now += ms
	}
	if s.Overloaded() {
		t.Fatal("overloaded before an interval over target")
	}
	step("cd", 5*ms, 5*ms, 1*ms, -1) // the interval is up: shed all over target; keep the fresh and the unstamped
	if !s.Overloaded() {
		t.Fatal("not overloaded after an interval over target")
	}
	if st, ov := m.Drops(ReasonStale), m.Drops(ReasonOverload); st != 0 || ov != 0 {
		t.Fatalf("shed() counted %d stale, %d overload; only Shed counts", st, ov)
	}
	// Overloaded: a packet over MaxDelay is stale, over target overload.
	fillAged(b, now, 60*ms, 10*ms, 2*ms)
	if st, ov := s.shed(b, now); st != 1 || ov != 1 || names(b) != "c" {
		t.Fatalf("overloaded: shed %d stale, %d overload, kept %q; want 1, 1, c", st, ov, names(b))
	}
	// Fresh packets alone for a whole interval end it...
	for i := int64(0); i <= 20; i++ {
		now += ms
		step("a", 1*ms)
	}
	now += ms
	step("ab", 3*ms, 3*ms)
	if s.Overloaded() {
		t.Fatal("still overloaded after an interval under target")
	}
	// ...and a standing queue starts it again after another interval.
	for i := 0; i < 19; i++ {
		now += ms
		step("a", 4*ms)
	}
	now += ms
	step("", 4*ms)
}

// TestShedderPauses: time without sending ends nothing: a relay stopped
// (or throttled) in a standing queue finds it standing when it runs again
// and goes on shedding; an idle one whose next packet is fresh carries
// the next burst again.
func TestShedderPauses(t *testing.T) {
	b, s := newShedRig(t, ShedPolicy{MaxDelay: 250 * time.Millisecond, Target: 2 * time.Millisecond, Interval: 20 * time.Millisecond}, NewMetrics())
	now := int64(1_000_000_000)
	for i := 0; i <= 20; i++ { // stand for an interval
		fillAged(b, now, 5*ms)
		s.shed(b, now)
		now += ms
	}
	if !s.Overloaded() {
		t.Fatal("not overloaded after an interval over target")
	}
	// Stopped for 24 ms of every 25: each run finds the backlog of the
	// stop, sheds it, and sends what is fresh.
	for round := 0; round < 20; round++ {
		now += 24 * ms
		fillAged(b, now, 24*ms, 12*ms, 1*ms)
		if st, ov := s.shed(b, now); st != 0 || ov != 2 || names(b) != "c" {
			t.Fatalf("round %d after a stop: shed %d stale, %d overload, kept %q; want 0, 2, c", round, st, ov, names(b))
		}
		now += ms
	}
	// Idle for a second, then a fresh packet: the queue is gone.
	now += 1000 * ms
	fillAged(b, now, 100_000, 4*ms, 4*ms)
	if st, ov := s.shed(b, now); st != 0 || ov != 0 || s.Overloaded() {
		t.Fatalf("after a fresh packet: shed %d stale, %d overload; overloaded %v", st, ov, s.Overloaded())
	}
}

// TestShedderTargetOff: with Target 0 a queue is only ever shed past
// MaxDelay, however long it stands.
func TestShedderTargetOff(t *testing.T) {
	b, s := newShedRig(t, ShedPolicy{MaxDelay: 100 * time.Millisecond}, NewMetrics())
	now := int64(1_000_000_000)
	for i := 0; i < 1000; i++ {
		fillAged(b, now, 99*ms, 101*ms)
		if st, ov := s.shed(b, now); st != 1 || ov != 0 {
			t.Fatalf("shed %d stale, %d overload; want 1, 0", st, ov)
		}
		now += ms
	}
}
