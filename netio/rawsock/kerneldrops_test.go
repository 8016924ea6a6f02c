//go:build linux

package rawsock

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// TestCaptureCountsKernelDrops: a capture socket nobody reads overflows;
// KernelDrops reports what the kernel dropped (PACKET_STATISTICS), keeps the
// count across calls although the kernel resets it on every read, and every
// frame sent is either read or counted as dropped (or lost before the
// socket, never more).
func TestCaptureCountsKernelDrops(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	var c *Capture
	err := l.Host("relay-a").Do(func() error {
		ifi, err := net.InterfaceByName(netlab.IfName)
		if err != nil {
			return err
		}
		c, err = ListenCapture(ifi, FilterConfig{Ports: []uint16{5076}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := l.Host("client").BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	// Far more than the socket's buffer (DefaultReadBuffer, doubled by the
	// kernel, at most twice rmem_max) holds: a frame of this size costs it
	// about 2.3 KiB.
	const sent, size = 12000, 1400
	dst := netip.MustParseAddrPort("10.77.0.255:5076")
	buf := make([]byte, size)
	for i := 0; i < sent; i++ {
		if _, err := cl.WriteToUDPAddrPort(buf, dst); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			time.Sleep(time.Millisecond) // let the veth backlog drain: drops belong to the socket
		}
	}
	drops, err := c.KernelDrops()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.KernelDrops(); err != nil || again != drops {
		t.Errorf("second KernelDrops = %d, %v; want %d again", again, err, drops)
	}

	bufs, sizes := make([][]byte, 64), make([]int, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	read := 0
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := c.ReadBatch(bufs, 0, sizes)
		read += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("sent %d frames: read %d, kernel dropped %d", sent, read, drops)
	if drops == 0 || read == 0 || uint64(read)+drops > sent {
		t.Errorf("sent %d: read %d and %d counted as dropped; want both > 0 and no more than sent", sent, read, drops)
	}
}
