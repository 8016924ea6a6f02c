package mmsg

import (
	"bytes"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/pipeline"
)

// TestRecvCollectSkipsTruncated reads three datagrams in one recvmmsg, the
// middle one too large for its buffer, and checks that Collect keeps the
// other two in order with no gap and no copy.
func TestRecvCollectSkipsTruncated(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	pool := pipeline.NewPool(64)
	msgs := [][]byte{bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 100), bytes.Repeat([]byte{3}, 20)}
	for _, m := range msgs {
		if _, err := unix.Write(fds[1], m); err != nil {
			t.Fatal(err)
		}
	}
	b := pool.Get()
	mm := NewBatch(4)
	b.Pkts = b.Pkts[:cap(b.Pkts)-4] // leave 4 free slots
	start := mm.Prepare(b, false)
	n, err := mm.Recv(uintptr(fds[0]), unix.MSG_TRUNC)
	if err != nil || n != 3 {
		t.Fatalf("Recv = %d, %v; want 3 datagrams", n, err)
	}
	if trunc := mm.Collect(b, start, n, false); trunc != 1 {
		t.Errorf("truncated = %d, want 1", trunc)
	}
	if len(b.Pkts) != start+2 {
		t.Fatalf("collected %d packets, want 2", len(b.Pkts)-start)
	}
	for i, want := range [][]byte{msgs[0], msgs[2]} {
		if got := b.Pkts[start+i].Bytes(); !bytes.Equal(got, want) {
			t.Errorf("packet %d = %x, want %x", i, got, want)
		}
	}
	if _, err := mm.Recv(uintptr(fds[0]), 0); err != unix.EAGAIN {
		t.Errorf("Recv on an empty socket = %v, want EAGAIN", err)
	}
}

func TestSendAllocatesNothing(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	mm := NewBatch(8)
	buf := make([]byte, 32)
	rbuf := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		mm.Reset()
		mm.Add(buf, netip.AddrPort{})
		mm.Send(uintptr(fds[1]), 0)
		unix.Read(fds[0], rbuf)
	}); n != 0 {
		t.Errorf("%v allocations per send", n)
	}
}
