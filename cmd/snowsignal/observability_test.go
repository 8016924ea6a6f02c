package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// obsEnv are the environment variables of the observability flags.
var obsEnv = []string{"STATS_SOCKET", "METRICS_ADDRESS", "SUMMARY_INTERVAL"}

func TestObservabilityFlags(t *testing.T) {
	for _, k := range obsEnv {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
	cleanEnv(t)
	c := parseRun(t)
	if c.StatsSocket != "/run/snowsignal/snowsignal.sock" || c.MetricsAddress != "" || c.SummaryInterval != time.Minute {
		t.Errorf("defaults: %q %q %v", c.StatsSocket, c.MetricsAddress, c.SummaryInterval)
	}
	if c := parseRun(t, "--stats-socket="); c.StatsSocket != "" {
		t.Errorf("--stats-socket= gives %q, want empty (off)", c.StatsSocket)
	}
	t.Setenv("STATS_SOCKET", "/tmp/r1.sock")
	t.Setenv("METRICS_ADDRESS", ":9124")
	t.Setenv("SUMMARY_INTERVAL", "0")
	c = parseRun(t)
	o, err := c.observability()
	if err != nil || o.StatsSocket != "/tmp/r1.sock" || o.MetricsAddress != ":9124" || o.SummaryInterval != 0 || o.Version != version {
		t.Errorf("from the environment: %+v, %v", o, err)
	}
	for _, k := range obsEnv {
		os.Unsetenv(k)
	}
	for _, tt := range []struct{ args, want string }{
		{"--metrics-address 9124", `--metrics-address: "9124" is not HOST:PORT`},
		{"--metrics-address :99999", `--metrics-address: port "99999" is out of range`},
		{"--summary-interval 500ms", "--summary-interval: 500ms is too short"},
		{"--summary-interval=-1s", "--summary-interval: -1s is too short"},
	} {
		c := parseRun(t, strings.Fields(tt.args)...)
		if _, err := c.observability(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.args, err, tt.want)
		}
	}
}
