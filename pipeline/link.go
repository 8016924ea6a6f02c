package pipeline

import (
	"context"
	"iter"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Policy says what a link does when it is full.
type Policy uint8

const (
	// Block makes the producer wait for room: backpressure.
	Block Policy = iota
	// Drop makes room by discarding the oldest batch queued, counts it and
	// returns at once. (A socket reader sends with StageCounters.PassFrom,
	// which first lets a consumer that is ready to run take what is queued.)
	Drop
)

func (p Policy) String() string {
	if p == Drop {
		return "drop"
	}
	return "block"
}

// A Link is a bounded queue of batches from exactly one producing stage to
// exactly one consuming stage.
//
// The producer calls Send and, once it is finished for good, the supervisor
// calls Close; the consumer serves the link (Serve) until it is closed. If
// the consumer stops for good first, the supervisor calls Abandon so that
// the producer's sends are dropped instead of blocking forever.
type Link struct {
	name   string
	policy Policy
	pool   *Pool
	ch     chan *Batch

	abandonOnce sync.Once
	abandoned   chan struct{}
	closeOnce   sync.Once

	// The hand-in (see Serve): turn is held by whoever runs the consumer's
	// handler, its own goroutine or the producer; handler is set, under
	// turn, while the consumer serves; pending counts the batches queued
	// or in the consumer's hands, so a producer that finds it 0 knows that
	// running the handler itself keeps the batches' order.
	turn    sync.Mutex
	handler Handler
	pending atomic.Int64
	failed  chan error // a hand-in's failure, for Serve to return

	sent        atomic.Uint64 // batches accepted
	sentPkts    atomic.Uint64
	handedIn    atomic.Uint64 // of those, batches the producer handled itself
	dropped     atomic.Uint64 // batches discarded because the link was full or abandoned
	droppedPkts atomic.Uint64
}

// A Handler is a consumer's work on one batch, which it then owns. An error
// ends the consumer's Serve, and so fails the stage.
type Handler func(b *Batch) error

// NewLink returns a link holding up to capacity batches. Batches it drops go
// back to pool.
func NewLink(name string, capacity int, policy Policy, pool *Pool) *Link {
	return &Link{
		name:      name,
		policy:    policy,
		pool:      pool,
		ch:        make(chan *Batch, capacity),
		abandoned: make(chan struct{}),
		failed:    make(chan error, 1),
	}
}

// Send hands b to the consumer; the caller no longer owns b, whatever the
// result. It reports whether b was queued (false: it was dropped and counted).
// An empty batch goes straight back to the pool.
func (l *Link) Send(b *Batch) bool {
	n := uint64(len(b.Pkts))
	if n == 0 {
		l.pool.Put(b)
		return true
	}
	if l.handIn(b, n) {
		return true
	}
	if l.policy == Drop {
		select {
		case l.ch <- b:
			l.queued(n)
			return true
		default:
		}
		// Full: drop the oldest batch, not this one. The frames on a reader
		// link lose their worth with age; after a storm, the first normal
		// broadcast must not be dropped for a backlog of stale ones. Only
		// this producer sends, so after one eviction there is room.
		select {
		case old, ok := <-l.ch:
			if ok {
				l.pending.Add(-1)
				l.dropped.Add(1)
				l.droppedPkts.Add(uint64(len(old.Pkts)))
				l.pool.Put(old)
			}
		default:
		}
		select {
		case l.ch <- b:
			l.queued(n)
			return true
		default:
		}
	} else {
		select {
		case l.ch <- b:
			l.queued(n)
			return true
		case <-l.abandoned:
		}
	}
	l.dropped.Add(1)
	l.droppedPkts.Add(n)
	l.pool.Put(b)
	return false
}

// Full reports whether the link holds as many batches as it can.
func (l *Link) Full() bool { return len(l.ch) == cap(l.ch) }

// Backlogged reports whether batches wait in the link: its consumer is
// behind. A nil link never is.
func (l *Link) Backlogged() bool { return l != nil && len(l.ch) > 0 }

func (l *Link) count(n uint64) {
	l.sent.Add(1)
	l.sentPkts.Add(n)
}

// queued counts a batch that went into the channel. (Its consumer may have
// taken and handled it already, so pending can be -1 for a moment; only
// this producer reads it, and not before Send returns.)
func (l *Link) queued(n uint64) {
	l.pending.Add(1)
	l.count(n)
}

// handIn runs the consumer's handler on b in the producer's goroutine, if
// b is small (under BurstSize packets) and the consumer serves and is idle:
// no batch queued or in its hands, and its turn free. Under light load a
// batch then costs no hand-off between goroutines: the consumer is not
// woken, and the batch is sent on before the producer reads again, as a
// single-threaded relay would. A burst goes through the queue as before,
// so that a reader behind its socket keeps reading while the stages after
// it work, and sheds by the link's policy, not by the kernel's. A handler
// that fails or panics does not fail the producer: the error goes to the
// consumer's Serve, which returns it, and the supervisor restarts the
// consumer.
func (l *Link) handIn(b *Batch, n uint64) bool {
	if n >= BurstSize || l.pending.Load() != 0 || !l.turn.TryLock() {
		return false
	}
	defer l.turn.Unlock()
	h := l.handler
	if h == nil || l.pending.Load() != 0 {
		return false
	}
	l.count(n)
	l.handedIn.Add(1)
	if err := runHandler(h, b); err != nil {
		l.handler = nil // no more hand-ins until the consumer serves again
		select {
		case l.failed <- err:
		default:
		}
	}
	return true
}

// runHandler runs h on b, turning a panic into a *PanicError as the
// supervisor does for a stage's Run.
func runHandler(h Handler, b *Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h(b)
}

// Serve is a consumer's loop: it runs h on each batch of the link, one at a
// time and in order, until the link is closed and drained (it returns nil),
// ctx is done (nil), or h fails (h's error). While it serves, a producer
// that finds the consumer idle runs h on its batch itself (see Send), so h
// must not assume it runs on the consumer's goroutine; it never runs
// concurrently with itself, and memory it touches is handed over by the
// link's lock. Serve returns only once no hand-in is running.
func (l *Link) Serve(ctx context.Context, h Handler) error {
	l.turn.Lock()
	select {
	case <-l.failed: // an earlier run's, already returned or outlived
	default:
	}
	l.handler = h
	l.turn.Unlock()
	defer func() {
		l.turn.Lock()
		l.handler = nil
		l.turn.Unlock()
	}()
	done := ctx.Done()
	for {
		select {
		case b, ok := <-l.ch:
			if !ok {
				return nil
			}
			if err := l.handle(h, b); err != nil {
				return err
			}
		case err := <-l.failed:
			return err
		case <-done:
			return nil
		}
	}
}

// handle runs h on a batch taken from the channel, in the consumer's turn.
// A panic goes up the consumer's own goroutine, to its supervisor.
func (l *Link) handle(h Handler, b *Batch) error {
	l.turn.Lock()
	defer l.turn.Unlock()
	defer l.pending.Add(-1)
	return h(b)
}

// C is the consumer's end of the link, for draining a closed link (tests).
// A consumer takes batches with Serve, Batches or TryTake, which keep the
// count that hand-ins depend on.
func (l *Link) C() <-chan *Batch { return l.ch }

// TryTake takes the next queued batch without waiting: b is nil if none is
// queued, and closed reports a link closed and drained.
func (l *Link) TryTake() (b *Batch, closed bool) {
	select {
	case b, ok := <-l.ch:
		if !ok {
			return nil, true
		}
		l.pending.Add(-1)
		return b, false
	default:
		return nil, false
	}
}

// Batches yields the link's batches until the link is closed and drained,
// or until ctx is done, for a consumer that takes no hand-ins (Serve is the
// usual loop):
//
//	for b := range in.Batches(ctx) { ... }
//
// Watching ctx bounds shutdown even when the producer is stuck; what is
// left in the link is dropped and counted by Abandon.
func (l *Link) Batches(ctx context.Context) iter.Seq[*Batch] {
	return func(yield func(*Batch) bool) {
		done := ctx.Done()
		for {
			select {
			case b, ok := <-l.ch:
				if !ok {
					return
				}
				more := yield(b)
				l.pending.Add(-1)
				if !more {
					return
				}
			case <-done:
				return
			}
		}
	}
}

// Close tells the consumer that no more batches will come. Only the
// supervisor calls it, after the producer has stopped for good.
func (l *Link) Close() { l.closeOnce.Do(func() { close(l.ch) }) }

// Abandon tells the producer that nobody will consume any more: pending and
// future batches are dropped and counted.
func (l *Link) Abandon() {
	l.abandonOnce.Do(func() { close(l.abandoned) })
	for {
		select {
		case b, ok := <-l.ch:
			if !ok {
				return
			}
			l.pending.Add(-1)
			l.dropped.Add(1)
			l.droppedPkts.Add(uint64(len(b.Pkts)))
			l.pool.Put(b)
		default:
			return
		}
	}
}

// LinkStats is a snapshot of a link's counters.
type LinkStats struct {
	Name           string `json:"name"`
	Policy         string `json:"policy"`
	Len            int    `json:"len"`
	Cap            int    `json:"cap"`
	Batches        uint64 `json:"batches"`
	Packets        uint64 `json:"packets"`
	HandedIn       uint64 `json:"handed_in"`
	DroppedBatches uint64 `json:"dropped_batches"`
	DroppedPackets uint64 `json:"dropped_packets"`
}

// Name is the link's name, "from->to".
func (l *Link) Name() string { return l.name }

// Stats returns a snapshot of the link's counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{
		Name:           l.name,
		Policy:         l.policy.String(),
		Len:            len(l.ch),
		Cap:            cap(l.ch),
		Batches:        l.sent.Load(),
		Packets:        l.sentPkts.Load(),
		HandedIn:       l.handedIn.Load(),
		DroppedBatches: l.dropped.Load(),
		DroppedPackets: l.droppedPkts.Load(),
	}
}
