// Package stagetest is the test rig of the stages that judge packets (filter
// and rewrite): it runs batches through a stage, collects what it passed on,
// checks the drop counters, and records what an Observer was told. Only
// tests import it.
package stagetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/pipeline"
)

// A Stage is what Run drives: a stage built over the links it is given.
type Stage interface {
	Run(ctx context.Context) error
}

// Run fills n batches from pool with fill (called with each batch's index),
// sends them through the stage newStage builds from its input to its
// output link, and returns copies of the packets it passed on, in order.
func Run(t testing.TB, pool *pipeline.Pool, n int, fill func(i int, b *pipeline.Batch), newStage func(in, out *pipeline.Link) Stage) [][]byte {
	t.Helper()
	in := pipeline.NewLink("in", n+1, pipeline.Block, pool)
	out := pipeline.NewLink("out", n+1, pipeline.Block, pool)
	for i := range n {
		b := pool.Get()
		fill(i, b)
		in.Send(b)
	}
	in.Close()
	if err := newStage(in, out).Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	out.Close()
	var got [][]byte
	for b := range out.C() {
		for i := range b.Pkts {
			got = append(got, bytes.Clone(b.Pkts[i].Bytes()))
		}
		pool.Put(b)
	}
	return got
}

// Drops returns m's non-zero drop counters.
func Drops(m *pipeline.Metrics) map[pipeline.Reason]uint64 {
	out := map[pipeline.Reason]uint64{}
	for x := pipeline.Reason(0); x < pipeline.NumReasons; x++ {
		if n := m.Drops(x); n != 0 {
			out[x] = n
		}
	}
	return out
}

// WantDrops fails the test unless exactly the counters in want moved, by
// exactly that much.
func WantDrops(t testing.TB, m *pipeline.Metrics, want map[pipeline.Reason]uint64) {
	t.Helper()
	got := Drops(m)
	ok := len(got) == len(want)
	for k, v := range want {
		ok = ok && got[k] == v
	}
	if !ok {
		t.Errorf("drops %v, want %v", got, want)
	}
}

// A Recorder is an Observer that remembers what it was told.
type Recorder struct {
	Trace   bool     // what Tracing answers
	Batches int      // Tracing calls
	Passed  []int    // packets per Kept call
	Drops   []string // reasons, with " from " and the peer for mesh datagrams, in order
}

// Tracing counts the batch and answers r.Trace.
func (r *Recorder) Tracing() bool { r.Batches++; return r.Trace }

// Dropped records reason why, and the peer p came from if it came from one.
func (r *Recorder) Dropped(p *pipeline.Packet, why pipeline.Reason) {
	s := why.String()
	if p.Addr.IsValid() {
		s += " from " + p.Addr.String()
	}
	r.Drops = append(r.Drops, s)
}

// Kept records how many packets b kept.
func (r *Recorder) Kept(b *pipeline.Batch) { r.Passed = append(r.Passed, len(b.Pkts)) }

// SteppingClock returns a limiter clock that moves a second per reading,
// and the count of readings: a test that reads it more than once per batch
// sees tokens it should not have.
func SteppingClock() (clock func() int64, readings *int) {
	readings = new(int)
	return func() int64 {
		*readings++
		return int64(*readings) * int64(time.Second)
	}, readings
}
