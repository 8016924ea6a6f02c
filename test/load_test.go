package test

// Load tests (issue 6): the readers' behaviour under sustained load, seen
// from outside. The numbers the issue sets are measured by the benchmark
// (go run ./test/bench), never here; these tests check what must hold on
// any machine: light traffic is never held back, sustained traffic is
// coalesced into fewer wake-ups and still delivered.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
)

// loadCounter counts the distinct sequence numbers a socket receives.
type loadCounter struct {
	mu   sync.Mutex
	seen map[uint64]bool
	done chan struct{}
}

func countLoad(c *net.UDPConn) *loadCounter {
	c.SetReadBuffer(8 << 20)
	lc := &loadCounter{seen: map[uint64]bool{}, done: make(chan struct{})}
	go func() {
		defer close(lc.done)
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return // closed by the test's cleanup, or the deadline below
			}
			if n >= 16 && string(buf[:8]) == "loadtest" {
				lc.mu.Lock()
				lc.seen[binary.BigEndian.Uint64(buf[8:16])] = true
				lc.mu.Unlock()
			}
		}
	}()
	return lc
}

func (lc *loadCounter) count(from, to uint64) (n int) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for i := from; i < to; i++ {
		if lc.seen[i] {
			n++
		}
	}
	return n
}

// sendPaced broadcasts datagrams from..to-1 from c to dst, burst at a time
// every period (one sendmmsg(2) each), and returns when all are sent.
func sendPaced(t *testing.T, c *net.UDPConn, dst netip.AddrPort, from, to uint64, burst int, period time.Duration) {
	t.Helper()
	sendTagged(t, c, dst, "loadtest", from, to, burst, period)
}

// sendTagged is sendPaced for 100-byte datagrams that start with tag (8
// bytes), then their sequence number and the time they were handed to the
// kernel (Unix nanoseconds), both big-endian.
func sendTagged(t *testing.T, c *net.UDPConn, dst netip.AddrPort, tag string, from, to uint64, burst int, period time.Duration) {
	t.Helper()
	pc := ipv4.NewPacketConn(c)
	msgs := make([]ipv4.Message, burst)
	for i := range msgs {
		b := make([]byte, 100)
		copy(b, tag)
		msgs[i] = ipv4.Message{Buffers: [][]byte{b}, Addr: net.UDPAddrFromAddrPort(dst)}
	}
	start := time.Now()
	for seq, k := from, 0; seq < to; k++ {
		n := min(burst, int(to-seq))
		now := uint64(time.Now().UnixNano())
		for i := range n {
			binary.BigEndian.PutUint64(msgs[i].Buffers[0][8:], seq+uint64(i))
			binary.BigEndian.PutUint64(msgs[i].Buffers[0][16:], now)
		}
		for sent := 0; sent < n; {
			m, err := pc.WriteBatch(msgs[sent:n], 0)
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			sent += m
		}
		seq += uint64(n)
		time.Sleep(time.Until(start.Add(time.Duration(k+1) * period)))
	}
}

// TestLoadCoalescing: with the default --coalesce, 200 broadcasts 5 ms apart
// all cross and neither relay's reader ever waits; then 20,000 broadcasts
// at 20k/s (20 every millisecond) cross (all but a few per cent on a busy
// machine, where the relays may also shed some as stale, counted), and
// both readers on the path (relay-a's capture, relay-b's listener)
// coalesced: they waited after batches instead of being woken for every
// datagram.
func TestLoadCoalescing(t *testing.T) {
	s := startSwarm(t)
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	lc := countLoad(srv)
	cl := broadcaster(t, s.client)
	dst := netip.AddrPortFrom(s.client.Broadcast, pvaPort)

	if got := snapshot(t, s.a).Config.CoalesceSeconds; got != 150e-6 {
		t.Errorf("relay-a: coalesce_seconds %v, want the default 150µs", got)
	}

	// Light traffic is never shed as stale, even when other programs keep
	// a relay's thread from a CPU for milliseconds: nothing waits behind a
	// late frame, so it is still sent (pipeline.Batch.ShedStale).
	const light = 200
	sendPaced(t, cl, dst, 0, light, 1, 5*time.Millisecond)
	waitCount(t, lc, 0, light, light)
	for name, r := range map[string]*labrelay.Relay{"relay-a": s.a, "relay-b": s.b} {
		c := snapshot(t, r).Coalesce
		if c.CapturePauses != 0 || c.ListenerPauses != 0 {
			t.Errorf("%s: light traffic (one broadcast every 5ms) made its readers wait: %+v", name, c)
		}
	}

	const heavy = 20_000
	sendPaced(t, cl, dst, light, light+heavy, 20, time.Millisecond)
	got := waitCount(t, lc, light, light+heavy, 0)
	a, b := snapshot(t, s.a), snapshot(t, s.b)
	t.Logf("20k/s: %d of %d crossed, %d shed as stale; relay-a capture waited %d times, relay-b listener %d times",
		got, heavy, a.Drops["stale"]+b.Drops["stale"], a.Coalesce.CapturePauses, b.Coalesce.ListenerPauses)
	// On a quiet machine nearly all cross; while other programs keep the
	// relays from a CPU for milliseconds, what waited longer than
	// --max-delay is shed as stale by design (10 % at times on the shared
	// 2-CPU VM): counted, never lost unseen.
	if stale := a.Drops["stale"] + b.Drops["stale"]; uint64(got)+stale < heavy*95/100 {
		t.Errorf("20k/s: %d of %d crossed and %d were shed as stale, want at least 95 %% accounted for", got, heavy, stale)
	}
	if a.Coalesce.CapturePauses == 0 {
		t.Error("relay-a's capture never waited at 20k/s")
	}
	if b.Coalesce.ListenerPauses == 0 {
		t.Error("relay-b's listener never waited at 20k/s")
	}
	// Each wait stands for a wake-up saved only if it is far rarer than
	// the datagrams.
	if p := a.Coalesce.CapturePauses; p > heavy/2 {
		t.Errorf("relay-a's capture waited %d times for %d datagrams: no coalescing", p, heavy)
	}
}

// TestLoadStallLosesNothing: at 20k/s, relay-b stops for 60 ms (SIGSTOP,
// as when the host's CPUs are busy elsewhere) and continues. The 1,200
// datagrams that arrived meanwhile wait in its mesh socket and are all
// relayed: no link evicts them, the kernel drops none, every broadcast
// crosses. (Before readers yielded to their consumers, the listener drained
// the backlog into its 8-batch link and evicted all but the last batches.)
// It tests the path without shedding by age ("no shedding": --max-delay=0;
// with a short --max-delay the frames that waited out the stall are shed as
// stale by design, TestStaleShedAfterStall), and with standing-queue
// shedding, which carries the stall's backlog whole: relay-b drains it
// well within --queue-interval (100 ms here, so that a CPU shared with the
// other tests' relays does not make the drain a standing queue), so it is
// a burst.
func TestLoadStallLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no shedding", []string{"--max-delay=0"}},
		{"standing-queue shedding", []string{"--queue-target=2ms", "--queue-interval=100ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) { stallLosesNothing(t, tc.args...) })
	}
}

func stallLosesNothing(t *testing.T, args ...string) {
	s := startSwarm(t, args...)
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	lc := countLoad(srv)
	cl := broadcaster(t, s.client)
	dst := netip.AddrPortFrom(s.client.Broadcast, pvaPort)
	sendPaced(t, cl, dst, 0, 100, 1, time.Millisecond) // warm up
	waitCount(t, lc, 0, 100, 100)

	const total = 20_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(400 * time.Millisecond)
		pid := s.b.Pid()
		syscall.Kill(pid, syscall.SIGSTOP)
		time.Sleep(60 * time.Millisecond)
		syscall.Kill(pid, syscall.SIGCONT)
	}()
	sendPaced(t, cl, dst, 100, 100+total, 20, time.Millisecond)
	<-done
	got := waitCount(t, lc, 100, 100+total, 0)
	b := snapshot(t, s.b)
	linkDrops := sumLinkDrops(b)
	t.Logf("%d of %d crossed; relay-b: link drops %d, mesh socket drops %d, shed %d stale and %d overload, listener paused %d times",
		got, total, linkDrops, b.MeshKernelDrops, b.Drops["stale"], b.Drops["overload"], b.Coalesce.ListenerPauses)
	if linkDrops != 0 || b.MeshKernelDrops != 0 {
		t.Errorf("relay-b dropped %d at its links and the kernel %d at its mesh socket during a 60ms stall", linkDrops, b.MeshKernelDrops)
	}
	if got != total {
		t.Errorf("%d of %d broadcasts crossed a 60ms stall of relay-b, want all", got, total)
	}
}

// waitCount waits until every sequence number from..to-1 was received, or
// none more arrive for quietWait (at most deliveryTimeout in all), and
// returns how many were; it fails the test if fewer than want arrived.
func waitCount(t *testing.T, lc *loadCounter, from, to uint64, want int) int {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	last, changed := -1, time.Now()
	for {
		n := lc.count(from, to)
		if n == int(to-from) {
			return n
		}
		if n != last {
			last, changed = n, time.Now()
		}
		if time.Since(changed) > quietWait || time.Now().After(deadline) {
			if n < want {
				t.Fatalf("%d of %d broadcasts crossed, want at least %d", n, to-from, want)
			}
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}
