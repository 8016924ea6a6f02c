package test

import (
	"encoding/json"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// dashboardPanel is the part of a Grafana panel the test reads.
type dashboardPanel struct {
	ID      int                     `json:"id"`
	Type    string                  `json:"type"`
	Title   string                  `json:"title"`
	Targets []struct{ Expr string } `json:"targets"`
	Panels  []dashboardPanel        `json:"panels"`
}

// metricName finds the metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:snowsignal|process|go)_[a-z0-9_]+\b`)

// TestDashboardMetricsExist parses deploy/grafana-dashboard.json and checks
// that every metric its queries and variables use is in a real /metrics
// scrape of a running relay with a peer and a datagram from a non-peer (so
// that the per-peer and per-source series exist).
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string           `json:"title"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json is not JSON: %v", err)
	}
	var exprs []string
	ids := map[int]bool{}
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}
	var names []string
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("only %d metric names in the dashboard's queries: %v", len(names), names)
	}

	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	a := harness.StartT(t, bin, l.Host("relay-a"), "--other-relays", "10.77.0.2", "--metrics-address", obsMetricsAddr)
	harness.StartT(t, bin, l.Host("relay-b"), "--other-relays", "10.77.0.1")
	c := listen(t, l.Host("client"), "0.0.0.0:0")
	send(t, c, []byte("SS from a stranger"), netip.MustParseAddrPort("10.77.0.1:7124"))
	var fams map[string]bool
	obsWait(t, "unknown source counted", func() bool {
		fams = map[string]bool{}
		for n := range obsScrape(t, a.Host) {
			fams[n] = true
		}
		return fams["snowsignal_unknown_source_datagrams_total"]
	})
	for _, n := range names {
		if !fams[n] {
			t.Errorf("the dashboard queries %s, which a relay's /metrics does not have", n)
		}
	}
}
