package readout

import (
	"context"
	"math"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/ticker"
)

// Summary is a source stage that logs one info line per interval with the
// relay's totals and their rates since the previous line: what an operator
// tailing the logs, or a Loki query, needs without a metrics stack.
type Summary struct {
	snapshot func() Snapshot
	interval time.Duration
	log      zerolog.Logger
}

// NewSummary returns a summary of the snapshots snapshot takes, every
// interval, logged to log with the field stage=summary.
func NewSummary(snapshot func() Snapshot, interval time.Duration, log zerolog.Logger) *Summary {
	return &Summary{snapshot: snapshot, interval: interval, log: log.With().Str("stage", "summary").Logger()}
}

// totals are the counters a summary line reports.
type totals struct {
	captured, forwarded, sent, received, injected, dropped, kernelDrops, meshKernelDrops, pvNames uint64
}

func totalsOf(s *Snapshot) totals {
	var t totals
	stage := func(name string) (in, out uint64) {
		st, _ := s.Stage(name)
		return st.In, st.Out
	}
	t.captured, _ = stage("capture")
	_, t.forwarded = stage("fanout")
	t.received, _ = stage("listener")
	_, t.injected = stage("inject")
	for _, p := range s.Peers {
		t.sent += p.TxPackets
	}
	for _, n := range s.Drops {
		t.dropped += n
	}
	t.kernelDrops = s.KernelDrops
	t.meshKernelDrops = s.MeshKernelDrops
	t.pvNames = s.EPICS.Outbound.Names + s.EPICS.Inbound.Names
	return t
}

// Run logs a summary every interval until ctx is done.
func (s *Summary) Run(ctx context.Context) error {
	tick := ticker.New(s.interval)
	defer tick.Stop()
	snap := s.snapshot()
	last, lastTime := totalsOf(&snap), snap.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		snap = s.snapshot()
		cur := totalsOf(&snap)
		logSummary(s.log, &snap, cur, last, snap.Time.Sub(lastTime))
		last, lastTime = cur, snap.Time
	}
}

// logSummary writes one summary line: each total and its rate per second
// over elapsed.
func logSummary(log zerolog.Logger, snap *Snapshot, cur, last totals, elapsed time.Duration) {
	secs := elapsed.Seconds()
	ev := log.Info()
	field := func(name string, now, before uint64) {
		rate := 0.0
		if secs > 0 && now >= before {
			rate = math.Round(float64(now-before)/secs*100) / 100
		}
		ev = ev.Uint64(name, now).Float64(name+"_per_second", rate)
	}
	field("captured", cur.captured, last.captured)
	field("forwarded", cur.forwarded, last.forwarded)
	field("mesh_sent", cur.sent, last.sent)
	field("mesh_received", cur.received, last.received)
	field("injected", cur.injected, last.injected)
	field("dropped", cur.dropped, last.dropped)
	field("kernel_drops", cur.kernelDrops, last.kernelDrops)
	field("mesh_kernel_drops", cur.meshKernelDrops, last.meshKernelDrops)
	field("pv_names", cur.pvNames, last.pvNames)
	ev.Int("peers", len(snap.Peers)).Int("neighbours", len(snap.Neighbours)).Bool("capture_up", snap.CaptureUp).
		Float64("interval_seconds", math.Round(secs*1000)/1000).Msg("summary")
}
