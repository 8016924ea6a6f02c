package ratelimit

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a hand-moved clock for Config.Clock.
type clock struct{ ns int64 }

func (c *clock) now() int64              { return c.ns }
func (c *clock) advance(d time.Duration) { c.ns += int64(d) }

func newT(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	c := &clock{ns: 1_000_000}
	cfg.Clock = c.now
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

// allowN offers n packets from src at the limiter's current time and
// returns how many it let through.
func allowN(l *Limiter, src netip.Addr, n int) int {
	now := l.Now()
	ok := 0
	for range n {
		if l.Allow(now, src) {
			ok++
		}
	}
	return ok
}

var (
	client1 = netip.MustParseAddr("10.77.0.11")
	client2 = netip.MustParseAddr("10.77.0.12")
)

func TestBurstThenRate(t *testing.T) {
	l, c := newT(t, Config{Rate: 10, Burst: 5})
	if got := allowN(l, client1, 8); got != 5 {
		t.Fatalf("first burst: %d of 8 allowed, want the burst of 5", got)
	}
	if l.Dropped() != 3 {
		t.Errorf("Dropped = %d, want 3", l.Dropped())
	}
	c.advance(99 * time.Millisecond) // 0.99 token
	if got := allowN(l, client1, 1); got != 0 {
		t.Errorf("after 99 ms at 10/s: %d allowed, want 0", got)
	}
	c.advance(time.Millisecond) // the 100 ms that make a token
	if got := allowN(l, client1, 3); got != 1 {
		t.Errorf("after 100 ms at 10/s: %d allowed, want 1", got)
	}
	c.advance(time.Hour) // refills to the burst, not beyond
	if got := allowN(l, client1, 20); got != 5 {
		t.Errorf("after an hour idle: %d allowed, want the burst of 5", got)
	}
	// Sustained: one second at 10/s lets 10 through, in 10 ms steps.
	c.advance(time.Second)
	allowN(l, client1, 100) // empty the bucket
	got := 0
	for range 100 {
		c.advance(10 * time.Millisecond)
		got += allowN(l, client1, 1)
	}
	if got != 10 {
		t.Errorf("one second at 10/s offered 100/s: %d allowed, want 10", got)
	}
}

func TestSourcesAreIndependent(t *testing.T) {
	l, _ := newT(t, Config{Rate: 1, Burst: 2})
	if got := allowN(l, client1, 10); got != 2 {
		t.Errorf("client1: %d allowed, want 2", got)
	}
	if got := allowN(l, client2, 3); got != 2 {
		t.Errorf("client2 after client1 emptied its bucket: %d allowed, want 2", got)
	}
	want := []Source{{client1, 8}, {client2, 1}}
	if got := l.Sources(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Sources = %v, want %v", got, want)
	}
}

func TestDefaultBurst(t *testing.T) {
	for _, tc := range []struct{ rate, want int }{{1, MinBurst}, {MinBurst, MinBurst}, {1000, 1000}} {
		l, _ := newT(t, Config{Rate: tc.rate})
		if l.Burst() != tc.want {
			t.Errorf("rate %d: Burst() = %d, want %d", tc.rate, l.Burst(), tc.want)
		}
		if got := allowN(l, client1, tc.want+50); got != tc.want {
			t.Errorf("rate %d: %d allowed at once, want %d", tc.rate, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{Rate: 0}, {Rate: -1}, {Rate: MaxRate + 1}, {Rate: 1, Burst: -1}, {Rate: 1, Size: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	l, err := New(Config{Rate: 5, Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() != 128 || l.Rate() != 5 {
		t.Errorf("Size() = %d, Rate() = %d; want 128, 5", l.Size(), l.Rate())
	}
}

// TestEvictsLeastRecentlySeen fills a one-set table and checks that a new
// source takes the entry of the source seen least recently, which then
// starts over with a full bucket, while the others keep their state.
func TestEvictsLeastRecentlySeen(t *testing.T) {
	l, c := newT(t, Config{Rate: 1, Burst: 1, Size: ways})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	for i := range ways {
		c.advance(time.Millisecond)
		allowN(l, addr(i), 2) // one allowed, one dropped: every bucket empty
	}
	c.advance(time.Millisecond)
	allowN(l, addr(0), 1) // addr(0) is now the most recently seen; addr(1) the least
	if l.Evicted() != 0 {
		t.Fatalf("Evicted = %d before the table was full", l.Evicted())
	}
	if got := allowN(l, addr(ways), 1); got != 1 {
		t.Fatalf("new source: %d allowed, want 1 (a full bucket)", got)
	}
	if l.Evicted() != 1 {
		t.Errorf("Evicted = %d, want 1", l.Evicted())
	}
	for _, s := range l.Sources() {
		if s.Addr == addr(1) {
			t.Errorf("addr(1) still tracked after eviction: %v", l.Sources())
		}
	}
	// addr(1) comes back with a fresh, full bucket (evicting addr(2) now);
	// addr(0) kept its empty one.
	if got := allowN(l, addr(1), 1); got != 1 {
		t.Errorf("evicted source back: %d allowed, want 1", got)
	}
	if got := allowN(l, addr(0), 1); got != 0 {
		t.Errorf("kept source: %d allowed, want 0 (its bucket is still empty)", got)
	}
}

// TestTableBounded offers many more sources than the table holds.
func TestTableBounded(t *testing.T) {
	l, c := newT(t, Config{Rate: 1, Burst: 1, Size: 64})
	for i := range 10_000 {
		c.advance(time.Microsecond)
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !l.Allow(l.Now(), a) {
			t.Fatalf("source %d, new, was refused", i)
		}
		l.Allow(l.Now(), a)
	}
	if n := len(l.Sources()); n > l.Size() {
		t.Errorf("%d sources tracked in a table of %d", n, l.Size())
	}
	if l.Evicted() != 10_000-64 {
		t.Errorf("Evicted = %d, want %d", l.Evicted(), 10_000-64)
	}
}

// TestIPv6SourcesAreIndependent: each IPv6 client (--ipv6) has its own
// bucket and is listed by its address; an IPv4-mapped address is its IPv4
// address.
func TestIPv6SourcesAreIndependent(t *testing.T) {
	l, _ := newT(t, Config{Rate: 1, Burst: 1})
	v6a, v6b := netip.MustParseAddr("fd00:77::11"), netip.MustParseAddr("fd00:77::12")
	if got := allowN(l, v6a, 3) + allowN(l, v6b, 2); got != 2 {
		t.Errorf("two IPv6 sources: %d allowed, want 2 (one each)", got)
	}
	want := []Source{{v6a, 2}, {v6b, 1}}
	if got := l.Sources(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Sources = %v, want %v", got, want)
	}
	allowN(l, client1, 1)
	if got := allowN(l, netip.AddrFrom16(client1.As16()), 1); got != 0 {
		t.Errorf("::ffff:%s: %d allowed, want 0 (same bucket as %s)", client1, got, client1)
	}
	if keyOf(v6a) == keyOf(v6b) || keyOf(v6a)&key6 == 0 || keyOf(client1)&key6 != 0 {
		t.Errorf("keys %x %x %x: IPv6 keys must differ and carry key6, IPv4 ones not", keyOf(v6a), keyOf(v6b), keyOf(client1))
	}
}

func TestDefaultClockIsMonotonic(t *testing.T) {
	l, err := New(Config{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := l.Now()
	time.Sleep(time.Millisecond)
	if b := l.Now(); b-a < int64(time.Millisecond) {
		t.Errorf("clock moved %d ns over a 1 ms sleep", b-a)
	}
}

func TestAllowAllocatesNothing(t *testing.T) {
	l, c := newT(t, Config{Rate: 1000, Size: 64})
	i := 0
	allocs := testing.AllocsPerRun(10_000, func() {
		c.advance(time.Microsecond)
		i++
		// Known sources, new sources and evictions, allowed and refused.
		l.Allow(l.Now(), client1)
		l.Allow(l.Now(), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	})
	if allocs != 0 {
		t.Errorf("Allow allocates %v times per call", allocs)
	}
}

// TestSourcesWhileAllowing runs Sources against a busy Allow; -race checks
// that the two may run at once.
func TestSourcesWhileAllowing(t *testing.T) {
	l, err := New(Config{Rate: 1, Burst: 1, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			l.Allow(l.Now(), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8 % 4), byte(i)}))
		}
	})
	for range 200 {
		for _, s := range l.Sources() {
			if !s.Addr.Is4() || s.Dropped == 0 {
				t.Errorf("bad source %v", s)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkAllow(b *testing.B) {
	l, err := New(Config{Rate: 1000})
	if err != nil {
		b.Fatal(err)
	}
	now := l.Now()
	addrs := make([]netip.Addr, 256)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow(now, addrs[i&255])
	}
}
