package pipeline

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestBuffersRoundTrip: a read into Free's buffers that reorders them (as
// a socket does when it skips a datagram too big to keep) leaves every
// buffer in the batch exactly once, the packets read at Headroom with
// their lengths and senders; Of hands out the packets' bytes; none of it
// allocates.
func TestBuffersRoundTrip(t *testing.T) {
	pool := NewPool(128)
	b := pool.Get()
	b.Slot().Len = 1 // one slot in use already
	s := NewBuffers()
	owned := map[*byte]bool{}
	for _, p := range b.Pkts[:cap(b.Pkts)] {
		owned[&p.Buf[0]] = true
	}

	s.Free(b)
	if len(s.Bufs) != MaxBatch-1 {
		t.Fatalf("Free described %d buffers, want %d", len(s.Bufs), MaxBatch-1)
	}
	// A read of two datagrams that skipped one between them.
	s.Bufs[1], s.Bufs[2] = s.Bufs[2], s.Bufs[1]
	from := netip.MustParseAddrPort("10.0.0.2:7124")
	for i, m := range []string{"first", "second"} {
		s.Sizes[i] = copy(s.Bufs[i][Headroom:], m)
		s.Addrs[i] = from
		s.Stamps[i] = int64(1000 + i)
	}
	s.Filled(b, 2, true)
	if len(b.Pkts) != 3 || string(b.Pkts[1].Bytes()) != "first" || string(b.Pkts[2].Bytes()) != "second" ||
		b.Pkts[2].Addr != from || b.Pkts[1].Off != Headroom || b.Pkts[1].Stamp != 1000 || b.Pkts[2].Stamp != 1001 {
		t.Fatalf("batch after Filled: %d packets, %q %q from %s", len(b.Pkts), b.Pkts[1].Bytes(), b.Pkts[2].Bytes(), b.Pkts[2].Addr)
	}
	seen := map[*byte]bool{}
	for _, p := range b.Pkts[:cap(b.Pkts)] {
		if !owned[&p.Buf[0]] || seen[&p.Buf[0]] || len(p.Buf) != Headroom+128 {
			t.Fatal("a buffer of the batch was lost, duplicated or cut")
		}
		seen[&p.Buf[0]] = true
	}

	// A read that gives no receive times leaves the packets without one,
	// not with the last read's.
	s.Free(b)
	s.Sizes[0] = 1
	s.Filled(b, 1, false)
	if st := b.Pkts[3].Stamp; st != 0 {
		t.Errorf("a packet read without a receive time has stamp %d, want 0", st)
	}
	b.Pkts = b.Pkts[:3]

	out := s.Of(b)
	if len(out) != 3 || !bytes.Equal(out[2], []byte("second")) {
		t.Errorf("Of = %q", out)
	}

	b.Pkts = b.Pkts[:0]
	if n := testing.AllocsPerRun(100, func() {
		s.Free(b)
		s.Sizes[0] = 10
		s.Filled(b, 1, true)
		s.Of(b)
		b.Pkts = b.Pkts[:0]
	}); n != 0 {
		t.Errorf("a round allocates %v times", n)
	}
	pool.Put(b)
}

// TestBuffersWindow: after a read that found few datagrams, the next is
// offered twice as many buffers (at least minWindow); a read that fills
// what it was offered gets the whole batch next, so a burst is never read
// a few frames at a time for long. Filled says which it was.
func TestBuffersWindow(t *testing.T) {
	pool := NewPool(64)
	s := NewBuffers()
	read := func(n int) (offered int, full bool) {
		b := pool.Get()
		defer pool.Put(b)
		s.Free(b)
		offered = len(s.Bufs)
		for i := range n {
			s.Sizes[i] = 1
		}
		return offered, s.Filled(b, n, false)
	}
	for _, step := range []struct {
		n, offered int
		full       bool
	}{
		{1, MaxBatch, false},         // the first read is offered everything
		{1, minWindow, false},        // then a light load: a few buffers
		{minWindow, minWindow, true}, // a full window: more is waiting...
		{20, MaxBatch, false},        // ...so the whole batch, of which 20 were used
		{40, 40, true},               // twice that, filled
		{MaxBatch, MaxBatch, true},
	} {
		offered, full := read(step.n)
		if offered != step.offered || full != step.full {
			t.Errorf("read of %d: offered %d, full %v; want %d, %v", step.n, offered, full, step.offered, step.full)
		}
	}
}

// BenchmarkBuffersLightRead is the reader's own work around a read that
// finds one datagram (Free, then Filled), as at 1k/s; "whole" offers every
// buffer each time, as before the window.
func BenchmarkBuffersLightRead(b *testing.B) {
	for _, whole := range []bool{false, true} {
		name := "window"
		if whole {
			name = "whole"
		}
		b.Run(name, func(b *testing.B) {
			pool := NewPool(1500)
			s := NewBuffers()
			batch := pool.Get()
			b.ReportAllocs()
			for b.Loop() {
				if whole {
					s.window = MaxBatch
				}
				s.Free(batch)
				s.Sizes[0] = 100
				s.Filled(batch, 1, true)
				batch.Pkts = batch.Pkts[:0]
			}
		})
	}
}
