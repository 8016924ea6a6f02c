//go:build linux

package locals

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWatcherSeesSocketsOnRelayedPorts: in a namespace of its own,
// no socket is bound to the relayed ports until one is, over IPv4 or IPv6
// (which may be dual-stack); a socket on another port does not count.
func TestWatcherSeesSocketsOnRelayedPorts(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	h := l.Host("relay-b")
	w := New([]uint16{5076, 5064}, zerolog.Nop())
	look := func() bool {
		t.Helper()
		var found bool
		if err := h.Do(func() (err error) { found, err = w.look(); return err }); err != nil {
			t.Fatal(err)
		}
		return found
	}
	if look() {
		t.Fatal("a listener found in a namespace with no socket")
	}
	other, err := h.ListenUDP("0.0.0.0:7124")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if look() {
		t.Error("a socket on the mesh port counted as a listener on a relayed port")
	}
	for _, addr := range []string{"0.0.0.0:5064", "[::]:5076"} {
		var c net.PacketConn
		err := h.Do(func() (err error) { c, err = net.ListenPacket("udp", addr); return err })
		if err != nil {
			t.Fatal(err)
		}
		if !look() {
			t.Errorf("a socket on %s not found", addr)
		}
		c.Close()
		if look() {
			t.Errorf("the socket on %s still found after it was closed", addr)
		}
	}
}

// TestWatcherFailsOpen: when the kernel cannot list sockets, the
// watcher says listeners are present (every frame is copied, as without
// it) and warns once.
func TestWatcherFailsOpen(t *testing.T) {
	var logs bytes.Buffer
	w := New([]uint16{5076}, zerolog.New(&logs))
	calls := 0
	w.dump = func(uint8) ([]*netlink.Socket, error) {
		calls++
		return nil, unix.ENOENT
	}
	w.present.Store(false)
	w.every = 10 * time.Millisecond
	w.Active()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(3 * Every)
	for !w.Present() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if !w.Present() {
		t.Error("listeners not reported present when the kernel cannot list sockets")
	}
	if n := strings.Count(logs.String(), "cannot list"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs.String())
	}
}

// TestWatcherLooksOnlyWhileInjecting: an idle relay does not look,
// and reports listeners present (not known); once frames are injected it
// looks at the next tick and reports what it found.
func TestWatcherLooksOnlyWhileInjecting(t *testing.T) {
	w := New([]uint16{5076}, zerolog.Nop())
	w.every = 10 * time.Millisecond
	var calls atomic.Int32
	w.dump = func(uint8) ([]*netlink.Socket, error) {
		calls.Add(1)
		return []*netlink.Socket{{ID: netlink.SocketID{SourcePort: 7124}}}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(10 * w.every)
	if n := calls.Load(); n != 0 || !w.Present() {
		t.Fatalf("idle: %d looks, present %v; want none, and present (not known)", n, w.Present())
	}
	deadline := time.Now().Add(time.Second)
	for w.Present() && time.Now().Before(deadline) {
		w.Active()
		time.Sleep(w.every / 2)
	}
	if w.Present() || calls.Load() == 0 {
		t.Errorf("injecting, with only a socket on another port: %d looks, present %v; want looks and not present", calls.Load(), w.Present())
	}
	// Idle again: not known any more.
	for !w.Present() && time.Now().Before(deadline.Add(time.Second)) {
		time.Sleep(w.every)
	}
	if !w.Present() {
		t.Error("idle again, listeners still reported absent")
	}
}
