//go:build linux

package listener

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/netio/meshconn/meshconntest"
	"github.com/snowsignal/snowsignal/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The relay's socket and the fake both are what the listener reads.
var (
	_ Conn = (*meshconn.Conn)(nil)
	_ Conn = (*meshconntest.Conn)(nil)
)

// rig is a listener on a fake mesh socket, sending into a link of its own.
type rig struct {
	conn *meshconntest.Conn
	pool *pipeline.Pool
	out  *pipeline.Link
	m    *pipeline.Metrics
	c    *pipeline.StageCounters
	s    *Stage
	done chan error
	stop context.CancelFunc
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{conn: meshconntest.New(256), pool: pipeline.NewPool(100), m: pipeline.NewMetrics(), done: make(chan error, 1)}
	r.out = pipeline.NewLink("listener->rewrite", 8, pipeline.Drop, r.pool)
	r.c = r.m.Stage("listener")
	r.s = New(r.conn, r.pool, r.out, r.c, r.m, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// next returns the next batch the listener passed on.
func (r *rig) next(t *testing.T) *pipeline.Batch {
	t.Helper()
	select {
	case b := <-r.out.C():
		return b
	case <-time.After(2 * time.Second):
		t.Fatal("no batch from the listener within 2s")
		return nil
	}
}

// TestListenerPassesDatagramsWithTheirSenders: datagrams the socket reads
// leave the stage in order, each at Headroom with its bytes and sender; a
// datagram larger than the pool's buffers is counted under too_big and
// nothing else; the stage's In counts what it read.
func TestListenerPassesDatagramsWithTheirSenders(t *testing.T) {
	r := newRig(t)
	a, b := netip.MustParseAddrPort("10.0.0.1:7124"), netip.MustParseAddrPort("[fd00::2]:7124")
	want := []meshconntest.Datagram{{Addr: a, Data: []byte("SSfirst")}, {Addr: b, Data: []byte("SSsecond")}}
	r.conn.Deliver(a, want[0].Data)
	r.conn.Deliver(a, bytes.Repeat([]byte{'x'}, 101)) // one byte more than a buffer holds
	r.conn.Deliver(b, want[1].Data)

	var got []meshconntest.Datagram
	for len(got) < len(want) {
		batch := r.next(t)
		for i := range batch.Pkts {
			p := &batch.Pkts[i]
			if p.Off != pipeline.Headroom {
				t.Errorf("packet at offset %d, want %d", p.Off, pipeline.Headroom)
			}
			got = append(got, meshconntest.Datagram{Addr: p.Addr, Data: append([]byte(nil), p.Bytes()...)})
		}
		r.pool.Put(batch)
	}
	for i := range want {
		if got[i].Addr != want[i].Addr || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Errorf("datagram %d = %s %q, want %s %q", i, got[i].Addr, got[i].Data, want[i].Addr, want[i].Data)
		}
	}
	if n := r.m.Drops(pipeline.ReasonTooBig); n != 1 {
		t.Errorf("too_big drops = %d, want 1", n)
	}
	if st := r.c.Stats(); st.In != 2 {
		t.Errorf("listener in = %d, want 2", st.In)
	}
}

// TestListenerStopsOnCancel: cancelling the context unblocks the read with
// a deadline (the socket stays open for the fan-out) and Run returns the
// context's error.
func TestListenerStopsOnCancel(t *testing.T) {
	r := newRig(t)
	r.stop()
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel = %v, want context.Canceled", err)
		}
		r.done <- err // for the cleanup
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestListenerFailsWithTheSocket: a read error that is not shutdown ends
// Run with that error, for the supervisor to restart the stage.
func TestListenerFailsWithTheSocket(t *testing.T) {
	r := newRig(t)
	r.conn.SetReadDeadline(time.Now())
	select {
	case err := <-r.done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("Run after a read error = %v, want that error", err)
		}
		r.done <- err
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after a read error")
	}
}

// TestListenerReadAllocatesNothing: reading datagrams from the socket into
// a pooled batch allocates nothing per batch.
func TestListenerReadAllocatesNothing(t *testing.T) {
	const runs = 100
	conn := meshconntest.New((runs + 1) * pipeline.MaxBatch)
	from := netip.MustParseAddrPort("10.0.0.1:7124")
	for range (runs + 1) * pipeline.MaxBatch { // a full batch a run, and AllocsPerRun warms up once
		conn.Deliver(from, []byte("SSframe"))
	}
	pool := pipeline.NewPool(100)
	s := New(conn, pool, nil, nil, nil, nil)
	b := pool.Get()
	if allocs := testing.AllocsPerRun(runs, func() {
		b.Pkts = b.Pkts[:0]
		if n, _, full, err := s.read(b); err != nil || n != pipeline.MaxBatch || !full || b.Pkts[n-1].Addr != from {
			t.Fatalf("read %d datagrams, %v", n, err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per batch read, want 0", allocs)
	}
	pool.Put(b)
}

// TestListenerKeepsReceiveTimes: each datagram leaves the stage with the
// time the socket says the kernel received it, or 0 when it gave none, so
// the inject stage can tell which waited too long.
func TestListenerKeepsReceiveTimes(t *testing.T) {
	r := newRig(t)
	from := netip.MustParseAddrPort("10.0.0.1:7124")
	stamps := []int64{1_764_000_000_000_000_001, 0, 1_764_000_000_000_000_003}
	for i, st := range stamps {
		r.conn.DeliverAt(from, []byte{'S', 'S', byte('0' + i)}, st)
	}
	var got []int64
	for len(got) < len(stamps) {
		b := r.next(t)
		for i := range b.Pkts {
			got = append(got, b.Pkts[i].Stamp)
		}
		r.pool.Put(b)
	}
	for i := range stamps {
		if got[i] != stamps[i] {
			t.Errorf("datagram %d has stamp %d, want %d", i, got[i], stamps[i])
		}
	}
}
