//go:build linux

package meshconn

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// putErrQueueEntry fills q as recvmsg(MSG_ERRQUEUE) would for an ICMP port
// unreachable from 10.0.0.9 about a datagram sent to 10.0.0.9:7124.
func putErrQueueEntry(q *errQueue, level, typ int32) {
	name := (*unix.RawSockaddrInet4)(unsafe.Pointer(&q.name))
	*name = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{10, 0, 0, 9}}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&name.Port))[:], 7124)
	clear(q.oob[:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&q.oob[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(sizeofSockExtendedErr + unix.SizeofSockaddrInet4))
	ee := (*unix.SockExtendedErr)(unsafe.Pointer(&q.oob[unix.SizeofCmsghdr]))
	*ee = unix.SockExtendedErr{Errno: uint32(unix.ECONNREFUSED), Origin: unix.SO_EE_ORIGIN_ICMP, Type: 3, Code: 3}
	off := (*unix.RawSockaddrInet4)(unsafe.Pointer(&q.oob[unix.SizeofCmsghdr+sizeofSockExtendedErr]))
	*off = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{10, 0, 0, 9}}
	q.hdr.SetControllen(unix.CmsgSpace(sizeofSockExtendedErr + unix.SizeofSockaddrInet4))
}

func TestParseErrQueueEntry(t *testing.T) {
	var q errQueue
	putErrQueueEntry(&q, unix.SOL_IP, unix.IP_RECVERR)
	got, ok := q.parse()
	want := PeerError{Dst: netip.MustParseAddrPort("10.0.0.9:7124"), From: netip.MustParseAddr("10.0.0.9"),
		Err: unix.ECONNREFUSED, Origin: unix.SO_EE_ORIGIN_ICMP, Type: 3, Code: 3}
	if !ok || got != want {
		t.Errorf("parse = %+v, %v; want %+v", got, ok, want)
	}
	if n := testing.AllocsPerRun(100, func() { q.parse() }); n != 0 {
		t.Errorf("parse allocates %v times", n)
	}

	// The same over IPv6: an ICMPv6 port unreachable (type 1, code 4).
	dst := netip.MustParseAddrPort("[fd00:77::9]:7124")
	mmsg.PutSockaddr(&q.name, dst)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&q.oob[0]))
	h.Level, h.Type = unix.SOL_IPV6, unix.IPV6_RECVERR
	h.SetLen(unix.CmsgLen(sizeofSockExtendedErr + unix.SizeofSockaddrInet6))
	ee := (*unix.SockExtendedErr)(unsafe.Pointer(&q.oob[unix.SizeofCmsghdr]))
	*ee = unix.SockExtendedErr{Errno: uint32(unix.ECONNREFUSED), Origin: unix.SO_EE_ORIGIN_ICMP6, Type: 1, Code: 4}
	mmsg.PutSockaddr((*unix.RawSockaddrInet6)(unsafe.Pointer(&q.oob[unix.SizeofCmsghdr+sizeofSockExtendedErr])), dst)
	q.hdr.SetControllen(unix.CmsgSpace(sizeofSockExtendedErr + unix.SizeofSockaddrInet6))
	want6 := PeerError{Dst: dst, From: dst.Addr(), Err: unix.ECONNREFUSED, Origin: unix.SO_EE_ORIGIN_ICMP6, Type: 1, Code: 4}
	if got, ok := q.parse(); !ok || got != want6 {
		t.Errorf("parse over IPv6 = %+v, %v; want %+v", got, ok, want6)
	}

	putErrQueueEntry(&q, unix.SOL_SOCKET, unix.SO_TIMESTAMP) // another control message
	if got, ok := q.parse(); ok {
		t.Errorf("parse of a control message without IP_RECVERR = %+v", got)
	}
	putErrQueueEntry(&q, unix.SOL_IP, unix.IP_RECVERR)
	(*unix.Cmsghdr)(unsafe.Pointer(&q.oob[0])).SetLen(len(q.oob) + 1) // longer than the buffer
	if got, ok := q.parse(); ok {
		t.Errorf("parse of a truncated control message = %+v", got)
	}
}

// errLog collects the PeerErrors a Conn reports.
type errLog struct {
	mu   sync.Mutex
	errs []PeerError
}

func (l *errLog) add(e PeerError) {
	l.mu.Lock()
	l.errs = append(l.errs, e)
	l.mu.Unlock()
}

func (l *errLog) get() []PeerError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]PeerError(nil), l.errs...)
}

// listen opens a mesh socket in h's namespace, closed when the test ends.
func listen(t *testing.T, h *netlab.Host) *Conn {
	t.Helper()
	var c *Conn
	err := h.Do(func() (err error) {
		c, err = Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 7124))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll runs ReadBatch until the socket is closed or its deadline passes,
// like the listener stage, and reports the packets read.
func readAll(c *Conn) (n <-chan int, done <-chan error) {
	count, fin := make(chan int, 1024), make(chan error, 1)
	go func() {
		bufs, sizes, addrs := newBufs(64)
		for {
			n, _, err := c.ReadBatch(bufs, 0, sizes, addrs)
			if n > 0 {
				count <- n
			}
			if err != nil {
				fin <- err
				return
			}
		}
	}()
	return count, fin
}

// newBufs returns n buffers to read datagrams into, with room for their
// lengths and senders.
func newBufs(n int) ([][]byte, []int, []netip.AddrPort) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	return bufs, make([]int, n), make([]netip.AddrPort, n)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: not within 2s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSendAttributesICMPErrorsToThePeer sends rounds of datagrams to a live
// peer and a dead one (no socket on the mesh port: its host answers ICMP
// port unreachable). Every datagram to the live peer must arrive, none may be
// counted as failed, and every error must name the dead peer: the pending
// error an ICMP message leaves on the socket must neither cost nor be blamed
// on the next datagram, whoever consumes it, a send or the listener.
func TestSendAttributesICMPErrorsToThePeer(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	c := listen(t, l.Host("relay-a"))
	var log errLog
	c.OnPeerError(log.add)
	live, err := l.Host("server").ListenUDP("0.0.0.0:7124")
	if err != nil {
		t.Fatal(err)
	}
	liveAddr := netip.MustParseAddrPort("10.77.0.21:7124")

	// Each case bounces off its own dead host: the kernel rate-limits ICMP
	// errors per destination (a burst of 6, then one a second).
	for _, tc := range []struct {
		name     string
		dead     netip.AddrPort
		listener bool
	}{
		{"sends only", netip.MustParseAddrPort("10.77.0.11:7124"), false},
		{"with listener", netip.MustParseAddrPort("10.77.0.2:7124"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.listener {
				_, done := readAll(c)
				defer func() {
					c.SetReadDeadline(time.Now())
					<-done
					c.SetReadDeadline(time.Time{})
				}()
			}
			before := len(log.get())
			// Each round ends with a datagram to the dead peer and starts
			// with one to the live peer: the error the last one leaves
			// pending is reported on the first of the next round.
			const rounds, perRound = 12, 8
			payload := make([]byte, 32)
			bufs, to := make([][]byte, perRound), make([]netip.AddrPort, perRound)
			for i := range perRound {
				bufs[i], to[i] = payload, liveAddr
			}
			to[perRound-1] = tc.dead
			for r := 0; r < rounds; r++ {
				failed, err := c.WriteBatch(bufs, to, func(i int, err error) { t.Errorf("round %d: datagram %d refused: %v", r, i, err) })
				if err != nil || failed != 0 {
					t.Fatalf("round %d: Send = %d failed, %v", r, failed, err)
				}
				time.Sleep(3 * time.Millisecond) // the ICMP errors come back
			}
			want := rounds * (perRound - 1)
			buf := make([]byte, 64)
			for got := 0; got < want; got++ {
				live.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, _, err := live.ReadFrom(buf); err != nil {
					t.Fatalf("live peer got %d of %d datagrams: %v", got, want, err)
				}
			}
			waitFor(t, "an ICMP error", func() bool { return len(log.get()) > before })
			for _, e := range log.get()[before:] {
				w := PeerError{Dst: tc.dead, From: tc.dead.Addr(), Err: unix.ECONNREFUSED, Origin: unix.SO_EE_ORIGIN_ICMP, Type: 3, Code: 3}
				if e != w {
					t.Errorf("error %+v, want %+v", e, w)
				}
			}
			t.Logf("%d errors reported for %d datagrams to the dead peer", len(log.get())-before, rounds)
			var left int
			c.rc.Control(func(fd uintptr) { left = c.errq.drain(fd) })
			if left != 0 {
				t.Errorf("%d errors left in the queue", left)
			}
		})
	}
}

// cpuTime returns the CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestListenerDoesNotSpinOnICMPErrors: while the listener waits in
// ReadBatch, ICMP errors arrive (EPOLLERR). It must read them, go back to
// sleep, and still receive the next datagram.
func TestListenerDoesNotSpinOnICMPErrors(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	c := listen(t, l.Host("relay-a"))
	var log errLog
	c.OnPeerError(log.add)
	count, done := readAll(c)
	for i := 0; i < 4; i++ {
		if err := c.WriteTo([]byte("hello?"), netip.MustParseAddrPort("10.77.0.11:7124")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "an ICMP error", func() bool { return len(log.get()) > 0 })

	start, cpu0 := time.Now(), cpuTime(t)
	time.Sleep(300 * time.Millisecond)
	cpu, wall := cpuTime(t)-cpu0, time.Since(start)
	if cpu > wall/5 {
		t.Errorf("used %s of CPU in %s while idle with errors reported: spinning?", cpu, wall)
	}

	peer, err := l.Host("client").ListenUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo([]byte("data"), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 7124}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-count:
		if n != 1 {
			t.Errorf("read %d datagrams, want 1", n)
		}
	case err := <-done:
		t.Fatalf("ReadBatch failed: %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("the datagram sent after the errors was not read")
	}
	c.SetReadDeadline(time.Now())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadBatch after the deadline: %v", err)
	}
}

// TestReadStalled drives the fallback ReadBatch uses when Go's poller
// fails reads after an EPOLLERR-only event: it reads queued errors and
// waiting datagrams, and otherwise waits a bounded time without spinning.
func TestReadStalled(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	c := listen(t, l.Host("relay-a"))
	var log errLog
	c.OnPeerError(log.add)
	bufs, sizes, addrs := newBufs(64)
	c.r.Start(bufs, 0, sizes, addrs)
	read := func() int {
		n, _, err := c.r.Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	start, cpu0 := time.Now(), cpuTime(t)
	if err := c.readStalled(); err != nil {
		t.Fatal(err)
	}
	wall, cpu := time.Since(start), cpuTime(t)-cpu0
	if n := read(); n != 0 || wall < 40*time.Millisecond || wall > time.Second || cpu > wall/2 {
		t.Errorf("with nothing to read: %d packets after %s (%s CPU), want 0 after ~%s asleep", n, wall, cpu, stallPoll)
	}

	// An ICMP error is queued (WriteTo drains nothing: no error is pending
	// when it sends), then a datagram arrives.
	if err := c.WriteTo([]byte("x"), netip.MustParseAddrPort("10.77.0.11:7124")); err != nil {
		t.Fatal(err)
	}
	peer, err := l.Host("client").ListenUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := peer.WriteTo([]byte("data"), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 7124}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the datagram", func() bool {
		if err := c.readStalled(); err != nil {
			t.Fatal(err)
		}
		return read() == 1
	})
	if got := bufs[0][:sizes[0]]; string(got) != "data" || len(log.get()) != 1 || log.get()[0].Err != syscall.ECONNREFUSED {
		t.Errorf("read %q with errors %+v; want \"data\" and one ECONNREFUSED", got, log.get())
	}
}

// TestSendAndReadAllocateNothing: a round of Send and ReadBatch, with an
// ICMP error to read on every round (a datagram to a closed port of this
// host: the kernel does not rate-limit ICMP on loopback), allocates nothing.
func TestSendAndReadAllocateNothing(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	c := listen(t, l.Host("relay-a"))
	var errs int
	c.OnPeerError(func(PeerError) { errs++ }) // read in this goroutine only: Send and ReadBatch run here
	payload := make([]byte, 100)
	out := [][]byte{payload, payload}
	to := []netip.AddrPort{
		netip.MustParseAddrPort("10.77.0.1:7124"), // this socket
		netip.MustParseAddrPort("10.77.0.1:7999"), // nobody
	}
	bufs, sizes, addrs := newBufs(64)
	round := func() {
		if failed, err := c.WriteBatch(out, to, nil); err != nil || failed != 0 {
			t.Fatalf("WriteBatch: %d failed, %v", failed, err)
		}
		if _, _, err := c.ReadBatch(bufs, 0, sizes, addrs); err != nil {
			t.Fatal(err)
		}
	}
	round() // warm up
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Errorf("a round allocates %v times", n)
	}
	if errs < 100 {
		t.Errorf("%d ICMP errors read in 201 rounds, want most of them", errs)
	}
}
