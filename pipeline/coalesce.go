//go:build linux

package pipeline

import (
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Coalescer spaces a socket reader's wake-ups under sustained load, as a
// network card's interrupt coalescing does. Waking an idle relay costs tens
// of microseconds of CPU on a virtual machine, far more than relaying a
// datagram; at thousands of datagrams per second, a reader that waits a
// moment after each batch takes the next several in one wake-up. It waits
// only while batches keep coming more often than once every two windows, on
// average over the last several, so a lightly loaded relay never waits.
//
// A nil Coalescer, or one with a zero window, never waits. One reader
// goroutine owns it; Pauses may be read from anywhere.
type Coalescer struct {
	window time.Duration
	last   time.Time     // when the reader last passed a batch on
	gap    time.Duration // moving average of the time between batches
	pauses atomic.Uint64
}

// maxGapWindows caps the gap a Coalescer averages, in windows: after an
// idle spell, a storm engages it within a few dozen batches.
const maxGapWindows = 16

// NewCoalescer returns a Coalescer that waits for window at a time.
func NewCoalescer(window time.Duration) *Coalescer {
	return &Coalescer{window: window, gap: maxGapWindows * window}
}

// Pause is called by a reader after it passed a batch on; full says the
// read filled every buffer it had (Buffers.Filled).
// Under sustained load it yields, so that the consumers handle that batch now
// (on one P they run in the meantime), and then sleeps for the window without
// releasing its thread: datagrams that arrive meanwhile wait in the socket
// and are read in one batch. The sleep is a raw nanosleep(2), not a Go timer:
// the runtime's poller would wake at the first datagram, which is what is
// avoided, and it rounds sleeps under a millisecond up to one.
//
// A full read means more is already waiting: the reader is
// behind, and waiting would only let the socket overflow and keep the reader
// from running ahead of its consumers, as a Drop link under overload needs
// (StageCounters.PassFrom). Pause then returns at once.
func (c *Coalescer) Pause(full bool) {
	if c == nil || c.window <= 0 || !c.due(time.Now()) || full {
		return
	}
	runtime.Gosched()
	// Raw: entering the scheduler's syscall path would wake its monitor
	// thread, a wake-up of the kind being saved. A signal (the runtime's
	// preemption) interrupts it; sleep what is left.
	ts := unix.NsecToTimespec(int64(c.window))
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if errno != unix.EINTR {
			break
		}
	}
	c.pauses.Add(1)
}

// due records a batch passed on at now and reports whether the reader
// should wait before its next read.
func (c *Coalescer) due(now time.Time) bool {
	gap := now.Sub(c.last)
	c.last = now
	if limit := maxGapWindows * c.window; gap > limit || gap < 0 {
		gap = limit
	}
	c.gap += (gap - c.gap) / 8
	return c.gap < 2*c.window
}

// Pauses is how often the reader waited.
func (c *Coalescer) Pauses() uint64 {
	if c == nil {
		return 0
	}
	return c.pauses.Load()
}
