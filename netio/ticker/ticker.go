//go:build linux

// Package ticker is a periodic ticker on a kernel timer (timerfd_create(2))
// that the Go runtime waits for in its poller, like a socket, instead of a
// runtime timer.
//
// Why: while any runtime timer is pending, every wait of the poller is an
// epoll_pwait(2) with a timeout, and the kernel arms and cancels a timer of
// its own for each one. A relay at 1k/s waits in the poller once per
// datagram, so a 1 s ticker (hello, the locals watcher, the stats window)
// costs on every datagram: the benchmark measured 8–10 % of a reference
// relay's CPU per datagram for one (docs/BENCHMARKS.md, Profiling notes, 17
// and 20). A timerfd is armed once per period and waited for with the
// sockets, with no timeout at all.
package ticker

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A Ticker sends the time on C every period, like time.Ticker: a tick the
// receiver is not ready for is dropped, so a slow receiver sees fewer ticks,
// never a backlog.
type Ticker struct {
	// C delivers the ticks.
	C <-chan time.Time

	c    chan time.Time
	f    *os.File
	rc   syscall.RawConn
	done chan struct{}
	tt   *time.Ticker // the fallback, if the kernel refused a timerfd
}

// New returns a ticker that ticks every d (d > 0) from now. Should the
// kernel refuse a timerfd, which a Linux since 2.6.25 does not, it falls
// back to a time.Ticker: the ticks still come, at the cost New avoids.
func New(d time.Duration) *Ticker {
	c := make(chan time.Time, 1)
	t := &Ticker{C: c, c: c}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err == nil {
		// A non-blocking descriptor: os.NewFile registers it with the
		// runtime's poller.
		t.f = os.NewFile(uintptr(fd), "timerfd")
		if t.rc, err = t.f.SyscallConn(); err == nil {
			err = t.set(d)
		}
		if err != nil {
			t.f.Close()
		}
	}
	if err != nil {
		t.tt = time.NewTicker(d)
		t.C = t.tt.C
		return t
	}
	t.done = make(chan struct{})
	go t.run()
	return t
}

// run waits for expirations and sends a tick for each wake-up, until the
// descriptor is closed.
func (t *Ticker) run() {
	defer close(t.done)
	var buf [8]byte // the count of expirations since the last read
	read := func(fd uintptr) bool {
		_, err := unix.Read(int(fd), buf[:])
		return err != unix.EAGAIN
	}
	for {
		if err := t.rc.Read(read); err != nil {
			return // closed by Stop
		}
		select {
		case t.c <- time.Now():
		default:
		}
	}
}

// Reset makes the ticker tick every d (d > 0) from now on.
func (t *Ticker) Reset(d time.Duration) {
	if t.tt != nil {
		t.tt.Reset(d)
		return
	}
	_ = t.set(d)
}

// Pause stops the ticks until the next Reset, without a wake-up meanwhile.
func (t *Ticker) Pause() {
	if t.tt != nil {
		t.tt.Stop()
		return
	}
	_ = t.set(0)
}

// set arms the timer to expire every d from now; 0 disarms it.
func (t *Ticker) set(d time.Duration) error {
	ts := unix.NsecToTimespec(int64(d))
	spec := unix.ItimerSpec{Interval: ts, Value: ts}
	var serr error
	if err := t.rc.Control(func(fd uintptr) { serr = unix.TimerfdSettime(int(fd), 0, &spec, nil) }); err != nil {
		return err
	}
	return os.NewSyscallError("timerfd_settime", serr)
}

// Stop stops the ticker and releases its descriptor; no tick is sent after
// it returns. C is not closed, as time.Ticker's is not.
func (t *Ticker) Stop() {
	if t.tt != nil {
		t.tt.Stop()
		return
	}
	t.f.Close()
	<-t.done
}
