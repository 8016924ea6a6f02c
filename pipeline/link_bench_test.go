package pipeline

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkLinkSend measures handing a batch of one packet to the next stage
// over a Block link and waiting until that stage has handled it, as a relay
// at a low rate does for every datagram: "queued" to the consumer's
// goroutine, "handed-in" run by the producer itself (Link.Serve). Run it
// with -cpu 1,2: on one P a queued hand-off is a goroutine switch on the
// same thread; on two it usually wakes another thread, which is why the
// relay runs on one P by default (cmd/snowsignal, docs/BENCHMARKS.md).
func BenchmarkLinkSend(b *testing.B) {
	for _, serve := range []bool{false, true} {
		name := "queued"
		if serve {
			name = "handed-in"
		}
		b.Run(name, func(b *testing.B) {
			pool := NewPool(64)
			l := NewLink("src->sink", 1, Block, pool)
			handled := make(chan struct{}, 1)
			sink := &notifying{in: l, pool: pool, handled: handled, serve: serve}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { sink.Run(ctx) })
			for serve && !l.turnServed() {
				runtime.Gosched()
			}
			b.ReportAllocs()
			for b.Loop() {
				bt := pool.Get()
				bt.Slot().Len = 1
				l.Send(bt)
				<-handled
			}
			cancel()
			l.Close()
			wg.Wait()
		})
	}
}

// turnServed reports whether a consumer serves l.
func (l *Link) turnServed() bool {
	l.turn.Lock()
	defer l.turn.Unlock()
	return l.handler != nil
}

// notifying is a consumer stage that signals every batch it has handled.
type notifying struct {
	in      *Link
	pool    *Pool
	handled chan struct{}
	serve   bool // take hand-ins
}

func (s *notifying) Run(ctx context.Context) error {
	if s.serve {
		return s.in.Serve(ctx, func(b *Batch) error {
			s.pool.Put(b)
			s.handled <- struct{}{}
			return nil
		})
	}
	for b := range s.in.Batches(ctx) {
		s.pool.Put(b)
		s.handled <- struct{}{}
	}
	return nil
}
