//go:build linux

package assembly

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/pipeline"
)

// inNamespaceEnv tells a re-executed test binary that it runs inside a lab
// host's namespace and must play the relay.
const inNamespaceEnv = "SNOWSIGNAL_RELAY_TEST_IN_NAMESPACE"

// TestRunInNamespace runs a whole relay in this process, in a lab host's
// namespace: the test binary runs itself there (`ip netns exec`), since a
// relay's goroutines run on any thread and only a process started in a
// namespace has all its threads there. The relay captures a broadcast sent on
// its host and forwards it to a peer whose relay is not running: the ICMP
// port unreachable is counted against that peer. Then Run returns within a
// second of its context ending, and no goroutine is left.
func TestRunInNamespace(t *testing.T) {
	if os.Getenv(inNamespaceEnv) != "" {
		runInNamespace(t)
		return
	}
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	cmd := l.Host("relay-a").Command(t.Context(), os.Args[0], "-test.run=^TestRunInNamespace$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRunInNamespace") {
		t.Fatalf("in relay-a's namespace: %v\n%s", err, out)
	}
	t.Logf("in relay-a's namespace:\n%s", out)
}

func runInNamespace(t *testing.T) {
	defer goleak.VerifyNone(t)
	dead := netip.MustParseAddrPort("10.77.0.2:7124") // relay-b's host, no relay running
	r, err := New(Config{Interface: netlab.IfName, BroadcastPorts: []uint16{5076}, MeshPort: dead.Port(),
		Peers: []string{dead.Addr().String()}, DiscoveryInterval: 10 * time.Second, DedupWindow: 250 * time.Millisecond,
		HelloInterval: 100 * time.Millisecond}, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	client, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rc, _ := client.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) })
	var errs uint64
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		if set := r.Peers.Load(); len(set.Peers) == 1 && set.Peers[0].Addr == dead {
			if errs = set.Peers[0].TxErrors.Load(); errs > 0 {
				break
			}
		}
		client.WriteToUDPAddrPort([]byte("search"), netip.MustParseAddrPort("10.77.0.255:5076"))
		time.Sleep(20 * time.Millisecond)
	}
	snap := r.Snapshot()
	fan, _ := snap.Stage("fanout")
	if errs == 0 || fan.Errors < errs || snap.Drops[pipeline.ReasonSendError.String()] < errs {
		t.Errorf("peer %s: %d send errors, fanout errors %d, send_error drops %d; want > 0 and the others at least as many",
			dead, errs, fan.Errors, snap.Drops[pipeline.ReasonSendError.String()])
	}
	if cap, _ := snap.Stage("capture"); cap.Out == 0 || !snap.CaptureUp {
		t.Errorf("capture passed on %d frames, up %v", cap.Out, snap.CaptureUp)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within a second of its context ending")
	}
	for _, st := range r.Metrics.Stages() {
		if st.State != "stopped" || st.Restarts != 0 {
			t.Errorf("stage %s: %s after %d restarts (%s)", st.Name, st.State, st.Restarts, st.LastError)
		}
	}
}
