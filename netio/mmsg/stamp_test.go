//go:build linux

package mmsg

import (
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopbackPair returns a UDP socket on IPv4 loopback, with SO_TIMESTAMPNS
// set if stamps, and a socket sending to it, both closed when the test ends.
func loopbackPair(t *testing.T, stamps bool) (rx, tx *net.UDPConn) {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	if stamps {
		rc, err := rx.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
		if serr != nil {
			t.Fatal(serr)
		}
	}
	tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return rx, tx
}

// TestReaderStamps: on a socket with SO_TIMESTAMPNS, every datagram of a
// Read carries the time the kernel received it, between the send and the
// read, and later datagrams are not stamped earlier; a Read without stamps
// leaves the slice alone; a socket without the option gives 0 (unknown),
// never a time.
func TestReaderStamps(t *testing.T) {
	rx, tx := loopbackPair(t, true)
	rc, _ := rx.SyscallConn()
	r := NewReader(8)
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes, stamps := make([]int, 4), make([]int64, 4)
	before := time.Now().UnixNano()
	for _, m := range []string{"a", "b", "c"} {
		if _, err := tx.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for got < 3 {
		n, _, err := r.Read(rc, bufs[got:], 0, sizes[got:], nil, stamps[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	after := time.Now().UnixNano()
	for k := range 3 {
		if stamps[k] < before || stamps[k] > after {
			t.Errorf("datagram %d stamped %d, want between the send (%d) and the read (%d)", k, stamps[k], before, after)
		}
		if k > 0 && stamps[k] < stamps[k-1] {
			t.Errorf("datagram %d stamped %d, before datagram %d (%d)", k, stamps[k], k-1, stamps[k-1])
		}
	}

	// Not asked for: the slice is not written.
	stamps[0] = -1
	tx.Write([]byte("d"))
	if n, _, err := r.Read(rc, bufs, 0, sizes, nil, nil); err != nil || n != 1 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if stamps[0] != -1 {
		t.Errorf("a Read without stamps wrote %d", stamps[0])
	}

	// Asked for on a socket without SO_TIMESTAMPNS: unknown, 0.
	rx2, tx2 := loopbackPair(t, false)
	rc2, _ := rx2.SyscallConn()
	tx2.Write([]byte("e"))
	if n, _, err := NewReader(8).Read(rc2, bufs, 0, sizes, nil, stamps); err != nil || n != 1 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if stamps[0] != 0 {
		t.Errorf("a socket without SO_TIMESTAMPNS gave stamp %d, want 0", stamps[0])
	}
}

// TestReaderStampsAllocateNothing: reading with stamps costs no allocation
// per Read once the batch has its control buffers, and the control buffers
// are described afresh for every call (a datagram after a Read of several
// still has its stamp).
func TestReaderStampsAllocateNothing(t *testing.T) {
	rx, tx := loopbackPair(t, true)
	rc, _ := rx.SyscallConn()
	r := NewReader(8)
	bufs := [][]byte{make([]byte, 64), make([]byte, 64)}
	sizes, stamps := make([]int, 2), make([]int64, 2)
	ping := []byte("ping")
	round := func() {
		stamps[0] = 0
		tx.Write(ping)
		if n, _, err := r.Read(rc, bufs, 0, sizes, nil, stamps); err != nil || n != 1 {
			t.Fatalf("Read = %d, %v", n, err)
		}
		if stamps[0] == 0 {
			t.Fatal("datagram read without its stamp")
		}
	}
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Errorf("a Read round with stamps allocates %v times", n)
	}
}

// putCmsg appends a control message of the given level and type with data
// to oob, padded as the kernel pads it.
func putCmsg(oob []byte, level, typ int32, data []byte) []byte {
	start := len(oob)
	oob = append(oob, make([]byte, unix.CmsgSpace(len(data)))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[start]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(oob[start+unix.CmsgLen(0):], data)
	return oob
}

// TestParseStamp: the timestamp is found behind another control message,
// and malformed or missing ones give 0 rather than a wrong time or a panic.
func TestParseStamp(t *testing.T) {
	ts := unix.NsecToTimespec(1_764_000_000_123_456_789)
	tsb := unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
	other := make([]byte, 4)
	both := putCmsg(putCmsg(nil, unix.SOL_IP, unix.IP_TOS, other), unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, tsb)
	short := putCmsg(nil, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, tsb[:8])
	lying := putCmsg(nil, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, tsb)
	(*unix.Cmsghdr)(unsafe.Pointer(&lying[0])).SetLen(len(lying) + 8)
	zeroLen := putCmsg(nil, unix.SOL_IP, unix.IP_TOS, other)
	(*unix.Cmsghdr)(unsafe.Pointer(&zeroLen[0])).SetLen(0)
	for _, tc := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"timestamp after another message", both, 1_764_000_000_123_456_789},
		{"timestamp alone", both[unix.CmsgSpace(len(other)):], 1_764_000_000_123_456_789},
		{"another message only", both[:unix.CmsgSpace(len(other))], 0},
		{"timestamp data cut short", short, 0},
		{"length past the buffer", lying, 0},
		{"zero length", zeroLen, 0},
		{"no control messages", nil, 0},
		{"shorter than a header", both[:4], 0},
	} {
		if got := ParseStamp(tc.oob); got != tc.want {
			t.Errorf("%s: ParseStamp = %d, want %d", tc.name, got, tc.want)
		}
	}
}
