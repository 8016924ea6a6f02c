package pipeline

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// A Stage is a long-lived actor. Its Run method is the stage's only loop.
//
// A source stage (one with no input link) returns when ctx is done. A
// consuming stage ranges over its input link and returns nil once the link is
// closed and drained; its ctx is cancelled only if draining outlives the
// supervisor's grace period. Any other return, error or panic, is a failure:
// the supervisor logs it and runs the stage again after a backoff.
type Stage interface {
	Run(ctx context.Context) error
}

// StageFunc adapts a function to the Stage interface.
type StageFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f StageFunc) Run(ctx context.Context) error { return f(ctx) }

// PanicError is a stage's panic turned into an error, with the stack where
// it happened.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Backoff bounds the wait between restarts of a failing stage.
type Backoff struct {
	// Min is the first wait; each consecutive failure doubles it up to Max.
	Min, Max time.Duration
	// ResetAfter is how long a run must last for the next failure to count
	// as a first one again.
	ResetAfter time.Duration
}

// DefaultBackoff restarts quickly (an interface that bounced should relay
// again well within 2 s) without spinning on a stage that cannot start.
var DefaultBackoff = Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second, ResetAfter: 10 * time.Second}

// A Supervisor runs stages, restarts those that fail, and stops them in
// pipeline order: sources first, then each consumer once its input is
// drained.
type Supervisor struct {
	log     zerolog.Logger
	backoff Backoff
	grace   time.Duration
	entries []*entry
}

type entry struct {
	c    *StageCounters
	st   Stage
	in   *Link
	outs []*Link
}

// NewSupervisor returns a supervisor that logs to log. After its context is
// done, consumers get grace to drain before their own contexts are cancelled.
func NewSupervisor(log zerolog.Logger, backoff Backoff, grace time.Duration) *Supervisor {
	return &Supervisor{log: log, backoff: backoff, grace: grace}
}

// Add registers a stage with its counters, its input link (nil for a source)
// and the links it produces into, which the supervisor closes once the stage
// has stopped for good. Add must be called before Run.
func (s *Supervisor) Add(c *StageCounters, st Stage, in *Link, outs ...*Link) {
	s.entries = append(s.entries, &entry{c: c, st: st, in: in, outs: outs})
}

// Run runs every stage until ctx is done and the pipeline has drained, then
// returns nil. It returns only after every stage goroutine has returned.
func (s *Supervisor) Run(ctx context.Context) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.grace, cancelHard)
		context.AfterFunc(hard, func() { t.Stop() })
	})
	defer stop()

	var wg sync.WaitGroup
	for _, e := range s.entries {
		runCtx := hard
		if e.in == nil {
			runCtx = ctx
		}
		wg.Go(func() { s.supervise(runCtx, e) })
	}
	wg.Wait()
	return nil
}

// supervise runs one stage until it finishes, restarting it after failures.
func (s *Supervisor) supervise(ctx context.Context, e *entry) {
	log := s.log.With().Str("stage", e.c.name).Logger()
	defer func() {
		e.c.state.Store(int32(StateStopped))
		for _, l := range e.outs {
			l.Close()
		}
		if e.in != nil {
			e.in.Abandon()
		}
		log.Debug().Msg("stage stopped")
	}()

	wait := s.backoff.Min
	for {
		e.c.state.Store(int32(StateRunning))
		log.Debug().Msg("stage started")
		began := time.Now()
		err := runProtected(ctx, e.st)
		if err == nil || ctx.Err() != nil {
			return
		}
		if time.Since(began) >= s.backoff.ResetAfter {
			wait = s.backoff.Min
		}
		e.c.restarts.Add(1)
		msg := err.Error()
		e.c.lastErr.Store(&msg)
		ev := log.Error().Err(err).Dur("backoff", wait)
		if p, ok := err.(*PanicError); ok {
			ev = ev.Bytes("stack", p.Stack)
		}
		ev.Msg("stage failed; restarting")

		e.c.state.Store(int32(StateBackoff))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, s.backoff.Max)
	}
}

func runProtected(ctx context.Context, st Stage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return st.Run(ctx)
}
