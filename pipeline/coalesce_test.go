//go:build linux

package pipeline

import (
	"testing"
	"time"
)

// TestCoalescerEngagesOnlyUnderSustainedLoad: batches 1 ms apart (1k/s)
// never make a reader with a 150 µs window wait; batches 50 µs apart do,
// within a few dozen, even right after an idle spell; a single burst of a
// few batches after a quiet period does not.
func TestCoalescerEngagesOnlyUnderSustainedLoad(t *testing.T) {
	const window = 150 * time.Microsecond
	count := func(c *Coalescer, start time.Time, every time.Duration, n int) (due int, first int) {
		first = -1
		for i := range n {
			if c.due(start.Add(time.Duration(i) * every)) {
				due++
				if first < 0 {
					first = i
				}
			}
		}
		return due, first
	}
	t0 := time.Now()

	c := NewCoalescer(window)
	if due, _ := count(c, t0, time.Millisecond, 1000); due != 0 {
		t.Errorf("batches 1ms apart: waited after %d of 1000", due)
	}
	c = NewCoalescer(window)
	due, first := count(c, t0, 50*time.Microsecond, 1000)
	if first < 0 || first > 40 || due < 1000-first {
		t.Errorf("batches 50µs apart: first wait after batch %d, %d waits in all; want within 40, then after every one", first, due)
	}
	// Idle for a minute, then a storm: engaged again as fast.
	due, first = count(c, t0.Add(time.Minute), 50*time.Microsecond, 1000)
	if first < 0 || first > 40 {
		t.Errorf("after an idle minute: first wait after batch %d; want within 40", first)
	}
	// A quiet relay that gets a burst of five batches back to back.
	c = NewCoalescer(window)
	count(c, t0, 10*time.Millisecond, 100)
	if due, _ := count(c, t0.Add(time.Second+time.Millisecond), 10*time.Microsecond, 5); due != 0 {
		t.Errorf("a burst of 5 batches on a quiet relay: waited after %d", due)
	}
}

// TestCoalescerPause: a zero window or a nil Coalescer never waits; an
// engaged one does not wait after a full batch (more is waiting), and
// otherwise sleeps its window and counts it.
func TestCoalescerPause(t *testing.T) {
	var nilc *Coalescer
	nilc.Pause(false)
	if nilc.Pauses() != 0 {
		t.Error("a nil Coalescer counted a pause")
	}
	off := NewCoalescer(0)
	for range 100 {
		off.Pause(false)
	}
	if off.Pauses() != 0 {
		t.Errorf("a zero window paused %d times", off.Pauses())
	}
	c := NewCoalescer(200 * time.Microsecond)
	c.gap, c.last = 0, time.Now() // as if under load
	c.Pause(true)
	if c.Pauses() != 0 {
		t.Error("an engaged Coalescer paused after a full batch")
	}
	start := time.Now()
	c.Pause(false)
	if d := time.Since(start); c.Pauses() != 1 || d < 200*time.Microsecond {
		t.Errorf("an engaged Coalescer: %d pauses, slept %s; want 1, at least the window", c.Pauses(), d)
	}
}

// TestReaderStepsAllocateNothing: what a socket reader does per batch after
// reading it, PassFrom and Pause, allocates nothing.
func TestReaderStepsAllocateNothing(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 4, Drop, pool)
	c := NewMetrics().Stage("reader")
	co := NewCoalescer(time.Microsecond)
	var src backlog
	b := pool.Get()
	b.Slot().Len = 1
	n := testing.AllocsPerRun(1000, func() {
		c.PassFrom(l, b, src) // the link fills, then evicts into the pool
		co.Pause(false)
		b = pool.Get()
		b.Slot().Len = 1
	})
	if n != 0 {
		t.Errorf("PassFrom and Pause allocate %v times per batch", n)
	}
}
