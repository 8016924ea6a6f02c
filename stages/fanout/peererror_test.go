//go:build linux

package fanout

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPeerErrorCountsThePeerAtFault: an error the mesh socket reads from its
// error queue is counted against the peer it names, in the stage's errors
// and under send_error; an error for an address outside the peer set counts
// no peer; a peer's errors are logged once per peerErrorLogEvery.
func TestPeerErrorCountsThePeerAtFault(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:7124"), netip.MustParseAddrPort("10.0.0.2:7124")
	tbl := peers.NewTable()
	tbl.Update(map[netip.AddrPort]string{a: "static", b: "static"}, false, time.Now())
	m := pipeline.NewMetrics()
	var logs bytes.Buffer
	s := &Stage{peers: tbl, c: m.Stage("fanout"), m: m, log: zerolog.New(&logs)}

	refused := meshconn.PeerError{Dst: b, From: b.Addr(), Err: unix.ECONNREFUSED, Origin: unix.SO_EE_ORIGIN_ICMP, Type: 3, Code: 3}
	for i := 0; i < 3; i++ {
		s.peerError(refused)
	}
	s.peerError(meshconn.PeerError{Dst: netip.MustParseAddrPort("10.0.0.9:7124"), Err: unix.EHOSTUNREACH})
	s.peerError(meshconn.PeerError{Dst: netip.MustParseAddrPort("10.0.0.1:9999"), Err: unix.ECONNREFUSED}) // a's host, another port

	set := tbl.Load()
	if got := set.Lookup(b.Addr()).TxErrors.Load(); got != 3 {
		t.Errorf("peer %s: %d errors, want 3", b, got)
	}
	if got := set.Lookup(a.Addr()).TxErrors.Load(); got != 0 {
		t.Errorf("peer %s: %d errors, want 0", a, got)
	}
	if got := s.c.Errors.Load(); got != 5 {
		t.Errorf("stage errors %d, want 5", got)
	}
	if got := m.Drops(pipeline.ReasonSendError); got != 5 {
		t.Errorf("send_error drops %d, want 5", got)
	}
	if n := strings.Count(logs.String(), "peer refuses mesh datagrams"); n != 1 {
		t.Errorf("logged the refusals %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"peer":"10.0.0.2:7124"`) || !strings.Contains(logs.String(), `"tx_errors":1`) {
		t.Errorf("log line does not name the peer and its count:\n%s", logs.String())
	}
	if n := testing.AllocsPerRun(100, func() { s.peerError(refused) }); n != 0 {
		t.Errorf("counting a peer's error allocates %v times", n)
	}
}
