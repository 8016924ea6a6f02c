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
	}
	s.Filled(b, 2, true)
	if len(b.Pkts) != 3 || string(b.Pkts[1].Bytes()) != "first" || string(b.Pkts[2].Bytes()) != "second" ||
		b.Pkts[2].Addr != from || b.Pkts[1].Off != Headroom {
		t.Fatalf("batch after Filled: %d packets, %q %q from %s", len(b.Pkts), b.Pkts[1].Bytes(), b.Pkts[2].Bytes(), b.Pkts[2].Addr)
	}
	seen := map[*byte]bool{}
	for _, p := range b.Pkts[:cap(b.Pkts)] {
		if !owned[&p.Buf[0]] || seen[&p.Buf[0]] || len(p.Buf) != Headroom+128 {
			t.Fatal("a buffer of the batch was lost, duplicated or cut")
		}
		seen[&p.Buf[0]] = true
	}

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
