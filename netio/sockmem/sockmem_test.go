//go:build linux

package sockmem

import (
	"net"
	"testing"
	"time"
)

// loopbackPair returns a UDP socket on loopback with a small receive buffer
// and a socket that sends to it.
func loopbackPair(t *testing.T) (rx, tx *net.UDPConn) {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	if err := rx.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return rx, tx
}

// TestReadCountsQueueAndDrops: an unread socket's queue fills, the kernel
// drops the rest, and Read sees both; reading the queue empties it.
func TestReadCountsQueueAndDrops(t *testing.T) {
	rx, tx := loopbackPair(t)
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var r Reader
	info, err := r.Read(rc)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queued != 0 || info.Drops != 0 || info.Buffer == 0 || info.Backlogged() {
		t.Fatalf("a new socket: %+v, backlogged %v", info, info.Backlogged())
	}
	const sent = 100
	for range sent {
		if _, err := tx.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	full, err := r.Read(rc)
	if err != nil {
		t.Fatal(err)
	}
	if full.Queued == 0 || full.Drops == 0 || full.Drops >= sent || !full.Backlogged() {
		t.Errorf("after %d datagrams unread: %+v, backlogged %v; want some queued, some dropped, backlogged", sent, full, full.Backlogged())
	}
	if n := testing.AllocsPerRun(100, func() { r.Read(rc) }); n != 0 {
		t.Errorf("Read allocates %v times", n)
	}

	rx.SetReadBuffer(1 << 20)
	buf := make([]byte, 2048)
	read := 0
	for {
		rx.SetReadDeadline(timeSoon())
		if _, err := rx.Read(buf); err != nil {
			break
		}
		read++
	}
	empty, err := r.Read(rc)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Queued != 0 || empty.Backlogged() || empty.Drops != full.Drops {
		t.Errorf("after reading the queue: %+v; want nothing queued, drops still %d", empty, full.Drops)
	}
	if uint64(read)+full.Drops != sent {
		t.Errorf("read %d and %d dropped, of %d sent", read, full.Drops, sent)
	}
}

// TestReadCountsAcrossTheWrap: the kernel's counter is 32 bits wide; the
// Reader's goes on.
func TestReadCountsAcrossTheWrap(t *testing.T) {
	rx, tx := loopbackPair(t)
	rc, _ := rx.SyscallConn()
	var r Reader
	// As if the kernel's counter had been 16 short of wrapping at the last
	// read, and has wrapped since.
	r.last, r.drops = 1<<32-16, 1<<32-16
	for range 100 {
		tx.Write(make([]byte, 100))
	}
	info, err := r.Read(rc)
	if err != nil {
		t.Fatal(err)
	}
	if info.Drops <= 1<<32 {
		t.Errorf("Drops = %d, want past 2^32", info.Drops)
	}
}

// TestReadClosed: a closed socket gives an error and the last count.
func TestReadClosed(t *testing.T) {
	rx, _ := loopbackPair(t)
	rc, _ := rx.SyscallConn()
	var r Reader
	r.drops = 7
	rx.Close()
	if info, err := r.Read(rc); err == nil || info.Drops != 7 {
		t.Errorf("Read of a closed socket = %+v, %v; want Drops 7 and an error", info, err)
	}
}

func timeSoon() time.Time { return time.Now().Add(20 * time.Millisecond) }
