package test

// The mesh socket's segmentation offload (netio/meshconn, offload.go): in a
// burst, relay-a sends its datagrams to relay-b as segmented messages and
// relay-b reads them coalesced, and still every search arrives once, as
// sent.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestMeshOffloadCarriesBursts: 40 bursts of 50 searches (sendmmsg, as a
// storm reaches the capture socket) cross two relays, in the legacy mesh
// format and the authenticated one (whose sealed datagrams are segmented
// the same way): each of the 2,000 reaches the server exactly once with
// its 100 bytes unchanged; relay-a's counters show runs sent as segmented
// messages of several datagrams each, and relay-b's show datagrams that
// arrived coalesced, none refused.
func TestMeshOffloadCarriesBursts(t *testing.T) {
	t.Run("legacy", func(t *testing.T) { testMeshOffload(t) })
	t.Run("authenticated", func(t *testing.T) {
		_, file := secKey(t)
		testMeshOffload(t, "--mesh-key-file", file)
	})
}

func testMeshOffload(t *testing.T, args ...string) {
	s := startSwarm(t, args...)
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	srv.SetReadBuffer(8 << 20)
	var mu sync.Mutex
	seen := map[uint64]int{}
	bad := 0
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := srv.Read(buf)
			if err != nil {
				return // closed by the test's cleanup
			}
			if n < 16 || string(buf[:8]) != "offload1" {
				continue
			}
			seq := binary.BigEndian.Uint64(buf[8:16])
			mu.Lock()
			seen[seq]++
			// sendTagged fills bytes 16-23 with the send time and leaves
			// the rest zero.
			if n != 100 || !bytes.Equal(buf[24:n], make([]byte, 100-24)) {
				bad++
			}
			mu.Unlock()
		}
	}()
	cl := broadcaster(t, s.client)
	dst := netip.AddrPortFrom(s.client.Broadcast, pvaPort)
	if auth := snapshot(t, s.a).Config.Authenticated; auth != (len(args) > 0) {
		t.Fatalf("relay-a authenticated = %v with %q", auth, args)
	}
	a0, b0 := snapshot(t, s.a).MeshOffload, snapshot(t, s.b).MeshOffload
	if !a0.Sending || !b0.Receiving {
		t.Fatalf("offload off from the start: relay-a %+v, relay-b %+v", a0, b0)
	}

	const total = 2000
	sendTagged(t, cl, dst, "offload1", 0, total, 50, 5*time.Millisecond)
	count := func() (got, dups int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range seen {
			got++
			dups += n - 1
		}
		return got, dups
	}
	for deadline := time.Now().Add(deliveryTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, _ := count(); got == total {
			break
		}
	}
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show
	got, dups := count()
	a, b := snapshot(t, s.a).MeshOffload, snapshot(t, s.b).MeshOffload
	t.Logf("relay-a: %d datagrams in %d segmented messages; relay-b: %d coalesced", a.SegmentedDatagrams-a0.SegmentedDatagrams,
		a.SegmentedMessages-a0.SegmentedMessages, b.CoalescedDatagrams-b0.CoalescedDatagrams)
	if got != total || dups != 0 {
		t.Errorf("the server received %d of %d searches, %d twice or more", got, total, dups)
	}
	mu.Lock()
	if bad != 0 {
		t.Errorf("%d searches arrived altered", bad)
	}
	mu.Unlock()
	msgs, dgrams := a.SegmentedMessages-a0.SegmentedMessages, a.SegmentedDatagrams-a0.SegmentedDatagrams
	if msgs == 0 || dgrams < 2*msgs || dgrams > total {
		t.Errorf("relay-a sent %d datagrams in %d segmented messages; want some, of 2 or more each", dgrams, msgs)
	}
	if c := b.CoalescedDatagrams - b0.CoalescedDatagrams; c == 0 || c > total {
		t.Errorf("relay-b read %d datagrams coalesced, want some of the %d", c, total)
	}
	for reason, n := range snapshot(t, s.b).Drops {
		if n != 0 {
			t.Errorf("relay-b dropped %d as %s", n, reason)
		}
	}
}

// TestNoMeshOffload: with --no-mesh-offload a burst still crosses whole,
// and neither relay segments or coalesces anything.
func TestNoMeshOffload(t *testing.T) {
	s := startSwarm(t, "--no-mesh-offload")
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", pvaPort))
	srv.SetReadBuffer(8 << 20)
	got := make(chan int, 1)
	go func() {
		buf, n := make([]byte, 2048), 0
		defer func() { got <- n }()
		srv.SetReadDeadline(time.Now().Add(3 * time.Second))
		for n < 500 {
			if _, err := srv.Read(buf); err != nil {
				return
			}
			n++
		}
	}()
	sendTagged(t, broadcaster(t, s.client), netip.AddrPortFrom(s.client.Broadcast, pvaPort), "offload0", 0, 500, 50, 5*time.Millisecond)
	if n := <-got; n != 500 {
		t.Errorf("the server received %d of 500 searches", n)
	}
	a, b := snapshot(t, s.a), snapshot(t, s.b)
	if a.MeshOffload.Sending || b.MeshOffload.Receiving || a.MeshOffload.SegmentedMessages != 0 || b.MeshOffload.CoalescedDatagrams != 0 || a.Config.MeshOffload {
		t.Errorf("with --no-mesh-offload: relay-a %+v (config %v), relay-b %+v", a.MeshOffload, a.Config.MeshOffload, b.MeshOffload)
	}
}
