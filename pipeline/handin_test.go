package pipeline

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// serve runs l.Serve(ctx, h) on its own goroutine and returns a channel
// that gets its result.
func serve(ctx context.Context, l *Link, h Handler) <-chan error {
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		close(ready)
		done <- l.Serve(ctx, h)
	}()
	<-ready
	// Serve sets its handler under the link's turn; wait until it has.
	for !l.turnServed() {
		runtime.Gosched()
	}
	return done
}

func TestHandInRunsAnIdleConsumersHandlerInSend(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 2, Block, pool)
	ctx, cancel := context.WithCancel(context.Background())
	var handled int
	done := serve(ctx, l, func(b *Batch) error {
		handled += len(b.Pkts)
		pool.Put(b)
		return nil
	})
	for i := range 3 {
		if !l.Send(fill(pool, 2)) {
			t.Fatalf("Send %d refused", i)
		}
		// Handed in: done by the time Send returns, on this goroutine.
		if handled != 2*(i+1) {
			t.Fatalf("after Send %d: %d packets handled, want %d", i, handled, 2*(i+1))
		}
	}
	st := l.Stats()
	if st.Batches != 3 || st.Packets != 6 || st.HandedIn != 3 || st.Len != 0 {
		t.Errorf("stats %+v, want 3 batches, 6 packets, 3 handed in, none queued", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// No consumer serves now: the next batch waits in the link.
	l.Send(fill(pool, 1))
	if st := l.Stats(); st.HandedIn != 3 || st.Len != 1 {
		t.Errorf("after Serve returned: %+v, want the batch queued", st)
	}
}

func TestHandInLeavesBurstsToTheConsumersGoroutine(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 2, Block, pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, 1)
	done := serve(ctx, l, func(b *Batch) error {
		got <- len(b.Pkts)
		pool.Put(b)
		return nil
	})
	l.Send(fill(pool, BurstSize))
	if n := <-got; n != BurstSize {
		t.Errorf("consumer got %d packets, want %d", n, BurstSize)
	}
	if st := l.Stats(); st.HandedIn != 0 || st.Batches != 1 {
		t.Errorf("stats %+v: a burst was handed in", st)
	}
	cancel()
	<-done
}

func TestHandInKeepsOrderBehindABusyConsumer(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 8, Block, pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var mu sync.Mutex
	var order []byte
	done := serve(ctx, l, func(b *Batch) error {
		if b.Pkts[0].Bytes()[0] == 0 && len(order) == 0 {
			<-release // the consumer is busy with the first batch
		}
		mu.Lock()
		order = append(order, b.Pkts[0].Bytes()[0])
		mu.Unlock()
		pool.Put(b)
		return nil
	})
	send := func(v byte) {
		b := pool.Get()
		s := b.Slot()
		s.Len = copy(s.Buf[s.Off:], []byte{v})
		l.Send(b)
	}
	// A burst goes to the consumer, which then blocks on it; the small
	// batches after it must queue behind it, not overtake it.
	b := fill(pool, BurstSize)
	l.Send(b)
	for !l.turnHeld() {
		runtime.Gosched()
	}
	for v := byte(1); v <= 5; v++ {
		send(v)
	}
	if st := l.Stats(); st.HandedIn != 0 {
		t.Fatalf("%d batches handed in while the consumer held one", st.HandedIn)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n == 6 || time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	// Drained: the consumer is idle again, so the next one is handed in.
	for l.pending.Load() != 0 {
		runtime.Gosched()
	}
	send(6)
	mu.Lock()
	want := []byte{0, 1, 2, 3, 4, 5, 6}
	if string(order) != string(want) {
		t.Errorf("handled in order %v, want %v", order, want)
	}
	mu.Unlock()
	if st := l.Stats(); st.HandedIn != 1 {
		t.Errorf("handed in %d batches, want 1 (the one after the backlog)", st.HandedIn)
	}
	cancel()
	<-done
}

// turnHeld reports whether someone runs the consumer's handler now.
func (l *Link) turnHeld() bool {
	if l.turn.TryLock() {
		l.turn.Unlock()
		return false
	}
	return true
}

func TestHandInFailureFailsTheConsumerNotTheProducer(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Handler
		is   func(error) bool
	}{
		{"error", func(*Batch) error { return errBoom }, func(err error) bool { return errors.Is(err, errBoom) }},
		{"panic", func(*Batch) error { panic("boom") }, func(err error) bool {
			var p *PanicError
			return errors.As(err, &p) && p.Value == "boom" && len(p.Stack) > 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := NewPool(64)
			l := NewLink("a->b", 2, Block, pool)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := serve(ctx, l, tc.h)
			// The producer's Send survives the handler's failure...
			if !l.Send(fill(pool, 1)) {
				t.Fatal("Send reported the batch dropped")
			}
			// ...which ends the consumer's Serve with it.
			select {
			case err := <-done:
				if !tc.is(err) {
					t.Errorf("Serve returned %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return the hand-in's failure")
			}
			// Until the consumer serves again, batches wait in the link.
			l.Send(fill(pool, 1))
			if st := l.Stats(); st.HandedIn != 1 || st.Len != 1 {
				t.Errorf("stats %+v, want 1 handed in and 1 queued", st)
			}
			// A restarted consumer takes them, without the old failure.
			var n int
			done = serve(ctx, l, func(b *Batch) error { n += len(b.Pkts); pool.Put(b); return nil })
			for l.pending.Load() != 0 {
				runtime.Gosched()
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("restarted Serve: %v", err)
			}
			if n != 1 {
				t.Errorf("restarted consumer handled %d packets, want 1", n)
			}
		})
	}
}

var errBoom = errors.New("boom")

// With several Ps, hand-ins and the consumer's own goroutine alternate;
// every batch is handled once and in order (run with -race).
func TestHandInConcurrentOrder(t *testing.T) {
	pool := NewPool(64)
	l := NewLink("a->b", 2, Block, pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const batches = 2000
	next := 0
	var bad int
	done := serve(ctx, l, func(b *Batch) error {
		v := int(b.Pkts[0].Bytes()[0])
		if v != next%256 {
			bad++
		}
		next++
		if next%7 == 0 {
			runtime.Gosched() // now and then the producer finds it busy
		}
		pool.Put(b)
		return nil
	})
	for i := range batches {
		n := 1
		if i%5 == 0 {
			n = BurstSize // some go through the queue
		}
		b := pool.Get()
		for range n {
			s := b.Slot()
			s.Len = copy(s.Buf[s.Off:], []byte{byte(i)})
		}
		l.Send(b)
	}
	l.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if next != batches || bad != 0 {
		t.Errorf("handled %d batches, %d out of order; want %d, 0", next, bad, batches)
	}
	t.Logf("handed in %d of %d batches", l.Stats().HandedIn, batches)
}
