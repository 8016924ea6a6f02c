package demo

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// TestDemoTableCountsFailures: the demo fails (non-zero exit) when a
// relayed broadcast is missing, duplicated or arrives with another source,
// or when an unrelayed one arrives.
func TestDemoTableCountsFailures(t *testing.T) {
	client := netip.MustParseAddrPort("10.77.0.11:40000")
	relayB := &netlab.Host{Name: "relay-b"}
	dst := netip.MustParseAddrPort("10.77.0.255:5076")
	other := netip.MustParseAddrPort("10.77.0.255:5077")
	sends := []demoSend{
		{"ok", dst, []byte("a"), true},
		{"missing", dst, []byte("b"), true},
		{"twice", dst, []byte("c"), true},
		{"source changed", dst, []byte("d"), true},
		{"ignored", other, []byte("e"), false},
		{"leaked", other, []byte("f"), false},
	}
	results := []demoResult{
		{copies: 1, from: client},
		{},
		{copies: 2, from: client},
		{copies: 1, from: netip.MustParseAddrPort("10.77.0.1:40000")},
		{},
		{copies: 1, from: client},
	}
	var out bytes.Buffer
	delivered, failed := printTable(&out, sends, results, client, relayB)
	if delivered != 1 || failed != 4 {
		t.Errorf("delivered %d, failed %d; want 1 and 4\n%s", delivered, failed, out.String())
	}
	if n := strings.Count(out.String(), "✗"); n != 4 {
		t.Errorf("%d rows marked ✗, want 4:\n%s", n, out.String())
	}
}

func TestDropSummary(t *testing.T) {
	if got := dropSummary(map[string]uint64{"wrong_port": 0}); got != "dropped nothing" {
		t.Errorf("got %q", got)
	}
	if got := dropSummary(map[string]uint64{"wrong_port": 2, "duplicate": 1, "replay": 0}); got != "dropped: duplicate 1, wrong_port 2" {
		t.Errorf("got %q", got)
	}
}
