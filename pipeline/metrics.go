package pipeline

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// StageCounters are the hot-path counters of one stage: atomics only, so
// a stage never takes a lock per packet.
type StageCounters struct {
	name     string
	In       atomic.Uint64 // packets received from the stage's input
	Out      atomic.Uint64 // packets passed on (or sent, for the last stage)
	Errors   atomic.Uint64 // errors handled without failing the stage
	restarts atomic.Uint64
	state    atomic.Int32
	lastErr  atomic.Pointer[string]
}

// StageState is where a stage is in its life under the supervisor.
type StageState int32

// Stage states.
const (
	StateStarting StageState = iota
	StateRunning
	StateBackoff
	StateStopped
)

func (s StageState) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateBackoff:
		return "backoff"
	default:
		return "stopped"
	}
}

// Name is the stage's name.
func (c *StageCounters) Name() string { return c.name }

// Pass hands b to out, the stage's output link, and counts its packets as
// the stage's output if out queued them (a dropped batch is counted by the
// link). The caller no longer owns b.
func (c *StageCounters) Pass(out *Link, b *Batch) {
	n := uint64(len(b.Pkts))
	if out.Send(b) {
		c.Out.Add(n)
	}
}

// A Backlog is a socket reader's source: it reports whether the socket's
// receive queue holds enough that the reader must keep draining it.
type Backlog interface{ Backlogged() bool }

// yieldsBeforeDrop bounds how often PassFrom yields on a full link before it
// evicts. The scheduler now and then picks the yielder again, so one is not
// always enough; each yield may last a consumer's whole time slice, so a few
// is the most the socket's buffer should have to absorb.
const yieldsBeforeDrop = 4

// PassFrom is Pass for a socket reader on a Drop link. A full link may be
// full only because its consumer has not run yet: a reader draining a
// socket's backlog keeps its P until the socket is empty, and with one P
// (the relay's default) it would evict batches its consumer never had a
// chance to take. So while the socket is not backlogged PassFrom yields,
// and a passing stall waits in the socket's buffer, losing nothing. Once it
// is (a lasting overload), PassFrom yields once more and then evicts the
// oldest batch if the link is still full, so the reader keeps the socket
// drained and relays the freshest frames, and the kernel does not drop
// what arrives next behind a backlog of older ones. That one yield lets the
// consumer take a batch for each one the reader reads: the reader sheds
// only what arrives faster than its consumers relay, instead of draining
// the whole backlog into evictions.
func (c *StageCounters) PassFrom(out *Link, b *Batch, src Backlog) {
	for i := 0; i < yieldsBeforeDrop && out.Full() && !src.Backlogged(); i++ {
		runtime.Gosched()
	}
	if out.Full() {
		runtime.Gosched()
	}
	c.Pass(out, b)
}

// StageStats is a snapshot of a stage's counters.
type StageStats struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	In        uint64 `json:"in"`
	Out       uint64 `json:"out"`
	Errors    uint64 `json:"errors"`
	Restarts  uint64 `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

// Stats returns a snapshot of the stage's counters.
func (c *StageCounters) Stats() StageStats {
	s := StageStats{
		Name:     c.name,
		State:    StageState(c.state.Load()).String(),
		In:       c.In.Load(),
		Out:      c.Out.Load(),
		Errors:   c.Errors.Load(),
		Restarts: c.restarts.Load(),
	}
	if e := c.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// Metrics holds every counter of one relay. It is created once per relay and
// passed to the stages as a value: there is no global registry.
type Metrics struct {
	// Start is when the relay started.
	Start time.Time

	drops [NumReasons]atomic.Uint64

	mu     sync.Mutex
	stages []*StageCounters
	links  []*Link
}

// NewMetrics returns empty metrics starting now.
func NewMetrics() *Metrics { return &Metrics{Start: time.Now()} }

// Stage registers and returns the counters of the named stage.
func (m *Metrics) Stage(name string) *StageCounters {
	c := &StageCounters{name: name}
	m.mu.Lock()
	m.stages = append(m.stages, c)
	m.mu.Unlock()
	return c
}

// AddLink registers a link so its counters appear in snapshots.
func (m *Metrics) AddLink(l *Link) {
	m.mu.Lock()
	m.links = append(m.links, l)
	m.mu.Unlock()
}

// Drop counts n packets dropped for reason r.
func (m *Metrics) Drop(r Reason, n int) { m.drops[r].Add(uint64(n)) }

// Drops returns the number of packets dropped for reason r.
func (m *Metrics) Drops(r Reason) uint64 { return m.drops[r].Load() }

// Stages returns snapshots of every stage's counters, in registration order.
func (m *Metrics) Stages() []StageStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]StageStats, len(m.stages))
	for i, c := range m.stages {
		out[i] = c.Stats()
	}
	return out
}

// Links returns snapshots of every link's counters, in registration order.
func (m *Metrics) Links() []LinkStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]LinkStats, len(m.links))
	for i, l := range m.links {
		out[i] = l.Stats()
	}
	return out
}

// DropCounts returns the drop counters by reason name, including zeros.
func (m *Metrics) DropCounts() map[string]uint64 {
	out := make(map[string]uint64, NumReasons)
	for r := Reason(0); r < NumReasons; r++ {
		out[r.String()] = m.drops[r].Load()
	}
	return out
}
