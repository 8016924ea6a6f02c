//go:build linux

package rawsock

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// TestCaptureStamps: per packet(7), a packet socket takes SO_TIMESTAMPNS
// as a UDP socket does; the capture socket sets it, and every frame read
// carries the time the kernel received it, between its send and its read.
func TestCaptureStamps(t *testing.T) {
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
	before := time.Now().UnixNano()
	for range 3 {
		if _, err := cl.WriteToUDPAddrPort([]byte("search"), netip.MustParseAddrPort("10.77.0.255:5076")); err != nil {
			t.Fatal(err)
		}
	}
	bufs, sizes, stamps := make([][]byte, 8), make([]int, 8), make([]int64, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	got := 0
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for got < 3 {
		n, _, err := c.ReadBatch(bufs[got:], 0, sizes[got:], stamps[got:])
		if err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
		got += n
	}
	after := time.Now().UnixNano()
	for k := range got {
		if stamps[k] < before || stamps[k] > after {
			t.Errorf("frame %d stamped %d, want between the send (%d) and the read (%d)", k, stamps[k], before, after)
		}
	}
}
