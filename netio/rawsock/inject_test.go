//go:build linux

package rawsock

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/internal/nstest"
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

// TestInjectSocketReceivesNothing: the kernel hooks no receive handler for
// the inject socket (/proc/net/packet: protocol 0, not running), so frames
// arriving on the interface cost it nothing; the capture socket beside it,
// bound to ETH_P_ALL, is hooked, which shows the test tells them apart.
func TestInjectSocketReceivesNothing(t *testing.T) {
	ns := nstest.New(t)
	var in *Injector
	var capt *Capture
	var table []byte
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(nstest.IfA)
		if err != nil {
			return err
		}
		if in, err = ListenInject(ifi, 0x5353); err != nil {
			return err
		}
		if capt, err = ListenCapture(ifi, FilterConfig{Ports: []uint16{5076}}); err != nil {
			return err
		}
		// /proc/net follows the reading thread's namespace.
		table, err = os.ReadFile("/proc/thread-self/net/packet")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	defer capt.Close()
	rows := map[uint64][2]string{} // inode: protocol, running
	for _, line := range strings.Split(string(table), "\n")[1:] {
		// sk RefCnt Type Proto Iface R Rmem User Inode
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		ino, _ := strconv.ParseUint(f[8], 10, 64)
		rows[ino] = [2]string{f[3], f[5]}
	}
	for _, s := range []struct {
		name          string
		rc            syscall.RawConn
		proto, hooked string
	}{{"inject", in.rc, "0000", "0"}, {"capture", capt.rc, "0003", "1"}} {
		ino := inode(t, s.rc)
		got, ok := rows[ino]
		if !ok {
			t.Fatalf("%s socket (inode %d) not in /proc/net/packet:\n%s", s.name, ino, table)
		}
		if got != [2]string{s.proto, s.hooked} {
			t.Errorf("%s socket: protocol %s, running %s; want %s, %s", s.name, got[0], got[1], s.proto, s.hooked)
		}
	}
}

// inode is the inode number of rc's socket, as /proc/net lists it.
func inode(t *testing.T, rc syscall.RawConn) uint64 {
	t.Helper()
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatalf("fstat: %v %v", err, serr)
	}
	return st.Ino
}
