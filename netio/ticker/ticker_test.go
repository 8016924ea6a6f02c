//go:build linux

package ticker

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestTicks: a ticker ticks, with the time of each tick, not before its
// first period; a paused one is silent; Reset starts it again; Stop ends its
// goroutine and closes its descriptor.
func TestTicks(t *testing.T) {
	defer goleak.VerifyNone(t)
	before := fds(t)
	start := time.Now()
	tk := New(20 * time.Millisecond)
	if tk.tt != nil {
		t.Fatal("fell back to a time.Ticker: the kernel refused a timerfd")
	}
	if after := fds(t); after != before+1 {
		t.Errorf("%d descriptors open after New, want %d", after, before+1)
	}
	for i := range 3 {
		select {
		case now := <-tk.C:
			if i == 0 && now.Sub(start) < 20*time.Millisecond {
				t.Errorf("first tick after %s, before its period of 20ms", now.Sub(start))
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("tick %d: none within 2s", i)
		}
	}

	tk.Pause()
	drain(tk)
	select {
	case <-tk.C:
		t.Error("a paused ticker ticked")
	case <-time.After(100 * time.Millisecond):
	}
	tk.Reset(10 * time.Millisecond)
	select {
	case <-tk.C:
	case <-time.After(2 * time.Second):
		t.Fatal("no tick within 2s of Reset")
	}

	tk.Stop()
	if after := fds(t); after != before {
		t.Errorf("%d descriptors open after Stop, want %d", after, before)
	}
}

// TestSlowReceiver: ticks the receiver is not ready for are dropped, as
// time.Ticker drops them: after many periods unread, one tick waits.
func TestSlowReceiver(t *testing.T) {
	tk := New(time.Millisecond)
	defer tk.Stop()
	time.Sleep(50 * time.Millisecond)
	n := 0
	for {
		select {
		case <-tk.C:
			n++
			continue
		default:
		}
		break
	}
	if n != 1 {
		t.Errorf("%d ticks waiting after 50 periods unread, want 1", n)
	}
}

func drain(tk *Ticker) {
	// A tick already on its way when Pause took effect.
	time.Sleep(5 * time.Millisecond)
	select {
	case <-tk.C:
	default:
	}
}

// fds counts the process's open descriptors that are timerfds.
func fds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(l, "timerfd") {
			n++
		}
	}
	return n
}
