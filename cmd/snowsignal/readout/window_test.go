package readout

import (
	"testing"
	"time"
)

// TestWindow: Recent reports what moved since the oldest sample at most a
// minute old, only the reasons that moved, and nothing before a sample.
func TestWindow(t *testing.T) {
	cur := map[string]uint64{"unknown_peer": 0, "stale": 0}
	w := NewWindow(func() map[string]uint64 {
		c := make(map[string]uint64, len(cur))
		for k, v := range cur {
			c[k] = v
		}
		return c
	})
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if r := w.Recent(t0, cur); r != nil {
		t.Fatalf("Recent before any sample = %+v, want nil", r)
	}
	for i := 0; i <= 9; i++ { // a sample every 10 s for 90 s
		if i == 3 {
			cur["unknown_peer"] = 5 // at 30 s: out of the window by 100 s
		}
		if i == 8 {
			cur["stale"] = 7 // at 80 s: in it
		}
		w.record(t0.Add(time.Duration(i) * WindowStep))
	}
	now := t0.Add(100 * time.Second)
	cur["unknown_peer"] = 6
	r := w.Recent(now, cur)
	if r == nil || r.Seconds != 60 {
		t.Fatalf("Recent = %+v, want a window of 60 s", r)
	}
	if len(r.Drops) != 2 || r.Drops["stale"] != 7 || r.Drops["unknown_peer"] != 1 {
		t.Errorf("moved %v, want stale 7 and unknown_peer 1", r.Drops)
	}
	if len(w.samples) != windowSlots {
		t.Errorf("%d samples kept, want at most %d", len(w.samples), windowSlots)
	}
}
