package dedup

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func TestCapturedThenMeshCopyIsDuplicate(t *testing.T) {
	c := New(250*time.Millisecond, 16)
	if !c.Captured(0, 1) {
		t.Fatal("first capture not forwarded")
	}
	// Another relay on our segment captured it too and sent it to us.
	if c.Received(5*ms, 1) {
		t.Error("mesh copy of a frame captured here would be injected back onto its own segment")
	}
}

func TestSecondMeshCopyIsDuplicate(t *testing.T) {
	c := New(250*time.Millisecond, 16)
	if !c.Received(0, 7) {
		t.Fatal("first mesh copy not injected")
	}
	if c.Received(ms, 7) {
		t.Error("second mesh copy (from a second relay on the origin segment) injected again")
	}
}

func TestInjectedThenCapturedIsLoop(t *testing.T) {
	c := New(250*time.Millisecond, 16)
	c.Received(0, 9)
	// A relay sharing our segment injected it too; our capture sees it.
	if c.Captured(2*ms, 9) {
		t.Error("a frame injected on this segment would be forwarded again: a loop")
	}
}

func TestClientRepeatsAreRelayedAfterTheWindow(t *testing.T) {
	c := New(100*time.Millisecond, 16)
	// Receiving side: each repeat spaced beyond the window is injected.
	for i := int64(0); i < 5; i++ {
		if !c.Received(i*150*ms, 3) {
			t.Errorf("repeat %d after the window was suppressed", i)
		}
	}
	// Capturing side: a client's own repeat is forwarded even within the
	// window (only injected frames are loops).
	if !c.Captured(0, 4) || !c.Captured(10*ms, 4) {
		t.Error("client repeat within the window not forwarded")
	}
}

func TestWindowBoundary(t *testing.T) {
	c := New(100*time.Millisecond, 16)
	c.Received(0, 1)
	if c.Received(99*ms, 1) {
		t.Error("suppression ended before the window")
	}
	if !c.Received(100*ms, 1) {
		t.Error("suppression lasted beyond the window")
	}
}

func TestBoundedMemoryEvictsOldest(t *testing.T) {
	c := New(time.Hour, 4)
	for k := uint64(0); k < 10; k++ {
		c.Received(int64(k), k)
	}
	if n := c.Len(); n != 4 {
		t.Errorf("cache holds %d keys, want the bound 4", n)
	}
	if got := c.Evicted.Load(); got != 6 {
		t.Errorf("evicted %d, want 6", got)
	}
	if !c.Received(20, 0) {
		t.Error("evicted key still suppressed")
	}
	if c.Received(21, 9) {
		t.Error("recent key forgotten")
	}
}

func TestExpiryFreesEntries(t *testing.T) {
	c := New(10*time.Millisecond, 64)
	for k := uint64(0); k < 50; k++ {
		c.Received(0, k)
	}
	c.Received(time.Second.Nanoseconds(), 1000)
	if n := c.Len(); n != 1 {
		t.Errorf("%d keys after the window passed, want 1", n)
	}
}

func TestNoAllocations(t *testing.T) {
	c := New(time.Millisecond, 1024)
	now := int64(0)
	k := uint64(0)
	// Warm the map to its steady-state size first.
	for i := 0; i < 4096; i++ {
		now += 1000
		k++
		c.Captured(now, k)
	}
	if n := testing.AllocsPerRun(1000, func() {
		now += 1000
		k++
		c.Captured(now, k)
		c.Received(now, k^0xffff)
	}); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}

func BenchmarkCapturedReceived(b *testing.B) {
	c := New(250*time.Millisecond, DefaultSize)
	b.ReportAllocs()
	now := int64(0)
	for i := 0; b.Loop(); i++ {
		now += 20_000 // 50k packets/s
		c.Captured(now, uint64(i))
		c.Received(now, uint64(i)^1<<63)
	}
}
