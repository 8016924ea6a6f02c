//go:build linux

package capture

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/netio/rawsock"
	"github.com/snowsignal/snowsignal/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log sink safe for the stage's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCaptureFollowsItsInterface runs the capture stage in relay-a's
// namespace while its eth0 goes down and up (the stage keeps its socket and
// captures again), is removed (Run fails, as it must for the supervisor to
// restart it), and is made again while a new Run waits for it.
func TestCaptureFollowsItsInterface(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	h := l.Host("relay-a")
	pool := pipeline.NewPool(2048)
	m := pipeline.NewMetrics()
	out := pipeline.NewLink("capture->decode", 64, pipeline.Drop, pool)
	var logs syncBuffer
	s := New(Config{Interface: netlab.IfName, Filter: rawsock.FilterConfig{Ports: []uint16{5076}}}, pool, out, m.Stage("capture"), m, nil, zerolog.New(&logs))
	cl, err := l.Host("client").BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context) <-chan error {
		done := make(chan error, 1)
		go func() { done <- h.Do(func() error { return s.Run(ctx) }) }()
		return done
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: not within 2s\n%s", what, logs.String())
			}
		}
	}
	// captures sends broadcasts until one comes out of the stage.
	captures := func(what string) {
		t.Helper()
		waitFor(what, func() bool {
			cl.WriteToUDPAddrPort([]byte("search"), netip.MustParseAddrPort("10.77.0.255:5076"))
			select {
			case b := <-out.C():
				pool.Put(b)
				return true
			case <-time.After(20 * time.Millisecond):
				return false
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx)
	waitFor("up", s.Up)
	captures("at start")

	if err := h.SetLink(false); err != nil {
		t.Fatal(err)
	}
	waitFor("down", func() bool { return !s.Up() })
	if err := h.SetLink(true); err != nil {
		t.Fatal(err)
	}
	waitFor("up again", s.Up)
	captures("after link up")

	rl, err := h.RemoveLink()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interface removed") {
			t.Errorf("Run after eth0 was removed: %v, want an interface removed error", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run went on with its interface removed")
	}

	done = run(ctx) // as the supervisor does
	waitFor("waiting log", func() bool { return strings.Contains(logs.String(), "interface does not exist; waiting for it") })
	if err := rl.Restore(); err != nil {
		t.Fatal(err)
	}
	waitFor("up on the new eth0", s.Up)
	captures("on the new eth0")

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestCaptureJoinsIPv6Groups: with the IPv6 filter, the stage joins its
// groups on the interface while it runs (the kernel lists the membership,
// which sends MLD reports) and leaves them when it stops; meanwhile it
// captures a search to one of them.
func TestCaptureJoinsIPv6Groups(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm6())
	h := l.Host("relay-a")
	group := netip.MustParseAddr("ff02::1:3")
	pool := pipeline.NewPool(2048)
	m := pipeline.NewMetrics()
	out := pipeline.NewLink("capture->decode", 64, pipeline.Drop, pool)
	var logs syncBuffer
	s := New(Config{Interface: netlab.IfName, Filter: rawsock.FilterConfig{Ports: []uint16{5076}, IPv6: true,
		IPv6Groups: []netip.Addr{group}}}, pool, out, m.Stage("capture"), m, nil, zerolog.New(&logs))
	member := func() bool {
		var in bool
		err := h.Do(func() error {
			b, err := os.ReadFile("/proc/thread-self/net/igmp6")
			in = strings.Contains(string(b), "ff020000000000000000000000010003")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	if member() {
		t.Fatal("ff02::1:3 joined before the stage runs")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Do(func() error { return s.Run(ctx) }) }()
	for end := time.Now().Add(2 * time.Second); !s.Up() || !member(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			cancel()
			t.Fatalf("not capturing and joined within 2s\n%s", logs.String())
		}
	}
	cl, err := l.Host("client").ListenUDP6("[fd00:77::11]:0")
	if err != nil {
		t.Fatal(err)
	}
	err = l.Host("client").Do(func() error {
		_, err := cl.WriteToUDPAddrPort([]byte("search"), netip.AddrPortFrom(group.WithZone(netlab.IfName), 5076))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-out.C():
		if len(b.Pkts) != 1 || b.Pkts[0].Len != 14+40+8+6 {
			t.Errorf("captured %d frames, want the one search", len(b.Pkts))
		}
		pool.Put(b)
	case <-time.After(2 * time.Second):
		t.Error("the search to ff02::1:3 was not captured")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if member() {
		t.Error("ff02::1:3 still joined after the stage stopped")
	}
}
