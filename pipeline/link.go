package pipeline

import (
	"context"
	"iter"
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
// calls Close; the consumer ranges over C until it is closed. If the consumer
// stops for good first, the supervisor calls Abandon so that the producer's
// sends are dropped instead of blocking forever.
type Link struct {
	name   string
	policy Policy
	pool   *Pool
	ch     chan *Batch

	abandonOnce sync.Once
	abandoned   chan struct{}
	closeOnce   sync.Once

	sent        atomic.Uint64 // batches accepted
	sentPkts    atomic.Uint64
	dropped     atomic.Uint64 // batches discarded because the link was full or abandoned
	droppedPkts atomic.Uint64
}

// NewLink returns a link holding up to capacity batches. Batches it drops go
// back to pool.
func NewLink(name string, capacity int, policy Policy, pool *Pool) *Link {
	return &Link{
		name:      name,
		policy:    policy,
		pool:      pool,
		ch:        make(chan *Batch, capacity),
		abandoned: make(chan struct{}),
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
	if l.policy == Drop {
		select {
		case l.ch <- b:
			l.count(n)
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
				l.dropped.Add(1)
				l.droppedPkts.Add(uint64(len(old.Pkts)))
				l.pool.Put(old)
			}
		default:
		}
		select {
		case l.ch <- b:
			l.count(n)
			return true
		default:
		}
	} else {
		select {
		case l.ch <- b:
			l.count(n)
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

// Behind reports whether the consumer of l, holding b, is behind: batches
// wait in l, or b itself holds a burst (BurstSize packets or more, read
// from a socket that had a queue). A few frames late from a passing hiccup
// under light load are neither.
func (l *Link) Behind(b *Batch) bool { return l.Backlogged() || len(b.Pkts) >= BurstSize }

func (l *Link) count(n uint64) {
	l.sent.Add(1)
	l.sentPkts.Add(n)
}

// C is the consumer's end of the link.
func (l *Link) C() <-chan *Batch { return l.ch }

// Batches yields the link's batches until the link is closed and drained,
// or until ctx is done: a consumer's loop is
//
//	for b := range in.Batches(ctx) { ... }
//
// and then returns nil. Watching ctx bounds shutdown even when the producer
// is stuck; what is left in the link is dropped and counted by Abandon.
func (l *Link) Batches(ctx context.Context) iter.Seq[*Batch] {
	return func(yield func(*Batch) bool) {
		done := ctx.Done()
		for {
			select {
			case b, ok := <-l.ch:
				if !ok || !yield(b) {
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
		DroppedBatches: l.dropped.Load(),
		DroppedPackets: l.droppedPkts.Load(),
	}
}
