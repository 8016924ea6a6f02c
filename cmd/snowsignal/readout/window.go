package readout

import (
	"context"
	"sync"
	"time"

	"github.com/snowsignal/snowsignal/netio/ticker"
)

// Window remembers the relay's drop counters over about the last minute,
// so that a reader (snowsignal doctor) can tell which reasons moved
// recently without watching the relay itself. It samples every WindowStep;
// Run does so until its context ends.
type Window struct {
	drops func() map[string]uint64

	mu      sync.Mutex
	samples []windowSample // oldest first, at most windowSlots
}

type windowSample struct {
	at    time.Time
	drops map[string]uint64
}

// WindowStep is how often a Window samples; WindowSpan is how far back it
// looks.
const (
	WindowStep = 10 * time.Second
	WindowSpan = time.Minute
)

const windowSlots = int(WindowSpan/WindowStep) + 1

// NewWindow returns a window over the counters drops returns.
func NewWindow(drops func() map[string]uint64) *Window {
	return &Window{drops: drops}
}

// Run samples the counters at once and every WindowStep until ctx is done.
func (w *Window) Run(ctx context.Context) error {
	w.record(time.Now())
	tick := ticker.New(WindowStep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			w.record(now)
		}
	}
}

func (w *Window) record(now time.Time) {
	d := w.drops()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == windowSlots {
		w.samples = append(w.samples[:0], w.samples[1:]...)
	}
	w.samples = append(w.samples, windowSample{at: now, drops: d})
}

// Recent returns, for the counters cur read at now, how much each moved
// since the oldest sample at most WindowSpan old (or, for a younger relay,
// since its first), and over how long; nil before the first sample.
func (w *Window) Recent(now time.Time, cur map[string]uint64) *RecentDrops {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if now.Sub(s.at) > WindowSpan {
			continue
		}
		r := &RecentDrops{Seconds: now.Sub(s.at).Seconds(), Drops: make(map[string]uint64, len(cur))}
		for reason, n := range cur {
			if base := s.drops[reason]; n > base {
				r.Drops[reason] = n - base
			}
		}
		return r
	}
	return nil
}

// RecentDrops is how much each drop counter moved over the last Seconds
// (about a minute; less for a relay that started since): only the reasons
// that moved are present.
type RecentDrops struct {
	Seconds float64           `json:"seconds"`
	Drops   map[string]uint64 `json:"drops"`
}
