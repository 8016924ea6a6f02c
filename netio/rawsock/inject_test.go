//go:build linux

package rawsock

import (
	"net"
	"testing"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// TestInjectWriteBatchAllocatesNothing: a batch of frames written with one
// sendmmsg(2) allocates nothing, and every frame is sent.
func TestInjectWriteBatchAllocatesNothing(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	var in *Injector
	err := l.Host("relay-a").Do(func() error {
		ifi, err := net.InterfaceByName(netlab.IfName)
		if err != nil {
			return err
		}
		in, err = ListenInject(ifi, 0x5353)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	frame := make([]byte, 60) // a minimal Ethernet frame; its content does not matter here
	for i := range 6 {
		frame[i] = 0xff
	}
	frames := [][]byte{frame, frame, frame, frame}
	var sent int
	if n := testing.AllocsPerRun(100, func() {
		n, err := in.WriteBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}); n != 0 {
		t.Errorf("WriteBatch allocates %v times", n)
	}
	if want := 101 * len(frames); sent+int(in.Dropped) != want {
		t.Errorf("sent %d and dropped %d of %d frames", sent, in.Dropped, want)
	}
}
