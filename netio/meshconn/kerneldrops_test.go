//go:build linux

package meshconn

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// procUDPDrops returns the "drops" column of /proc/net/udp for the socket
// bound to port, in the namespace of the calling thread (run it in Do).
func procUDPDrops(port uint16) (uint64, error) {
	// /proc/net is the namespace of the process's main thread; this
	// thread's is under thread-self.
	b, err := os.ReadFile("/proc/thread-self/net/udp")
	if err != nil {
		return 0, err
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when
		// retrnsmt uid timeout inode ref pointer drops
		f := strings.Fields(line)
		if len(f) == 13 && strings.HasSuffix(f[1], suffix) {
			return strconv.ParseUint(f[12], 10, 64)
		}
	}
	return 0, fmt.Errorf("no socket on port %d in /proc/net/udp:\n%s", port, b)
}

// TestKernelDrops: a mesh socket with a small receive buffer that nobody
// reads overflows. KernelDrops reports what the kernel dropped, the same
// number /proc/net/udp shows; reading it, or the datagrams, does not reset
// it; Backlogged says whether the queue is (over half) full; every datagram sent is either read or counted as dropped (or lost
// before the socket, never more). (netio/sockmem tests the wrap of the
// kernel's 32-bit counter.)
func TestKernelDrops(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	h := l.Host("relay-a")
	c := listen(t, h)
	if d, err := c.KernelDrops(); err != nil || d != 0 {
		t.Fatalf("KernelDrops of a new socket = %d, %v; want 0", d, err)
	}
	// Listen asked for BufferSize; per socket(7) the kernel doubles this
	// value and raises it to its minimum: room for a few datagrams only.
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1024)
	}); err != nil || serr != nil {
		t.Fatalf("SO_RCVBUF: %v %v", err, serr)
	}
	tx, err := h.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const sent, size = 2000, 200
	dst := netip.MustParseAddrPort("127.0.0.1:7124")
	buf := make([]byte, size)
	for i := 0; i < sent; i++ {
		if _, err := tx.WriteToUDPAddrPort(buf, dst); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(time.Millisecond) // let the loopback backlog drain: drops belong to the socket
		}
	}

	drops, err := c.KernelDrops()
	if err != nil {
		t.Fatal(err)
	}
	var proc uint64
	if err := h.Do(func() (err error) { proc, err = procUDPDrops(7124); return err }); err != nil {
		t.Fatal(err)
	}
	if drops == 0 || drops != proc {
		t.Errorf("KernelDrops = %d, /proc/net/udp drops = %d; want the same, not 0", drops, proc)
	}
	if again, err := c.KernelDrops(); err != nil || again != drops {
		t.Errorf("second KernelDrops = %d, %v; want %d again", again, err, drops)
	}
	if n := testing.AllocsPerRun(100, func() { c.KernelDrops() }); n != 0 {
		t.Errorf("KernelDrops allocates %v times", n)
	}
	if !c.Backlogged() {
		t.Error("Backlogged = false with the receive queue overflowing")
	}

	counts, done := readAll(c)
	time.Sleep(50 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
	read := 0
	for len(counts) > 0 {
		read += <-counts
	}
	t.Logf("sent %d datagrams: read %d, kernel dropped %d", sent, read, drops)
	if read == 0 || uint64(read)+drops > sent {
		t.Errorf("sent %d: read %d and %d counted as dropped; want some read and no more than sent", sent, read, drops)
	}
	if c.Backlogged() {
		t.Error("Backlogged = true with the receive queue read empty")
	}
	if after, err := c.KernelDrops(); err != nil || after != drops {
		t.Errorf("KernelDrops after reading = %d, %v; want %d still", after, err, drops)
	}

	c.Close()
	if got, err := c.KernelDrops(); err == nil || got != drops {
		t.Errorf("KernelDrops of a closed socket = %d, %v; want the last count and an error", got, err)
	}
}
