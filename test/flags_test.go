package test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// TestRelayRejectsBadFlags runs the binary with bad flags in a lab host:
// it exits non-zero at once with a message naming the flag at fault. (The
// full list of errors is tested in cmd/snowsignal.)
func TestRelayRejectsBadFlags(t *testing.T) {
	bin := harness.Binary(t)
	h := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm()).Host("relay-a")
	for _, tc := range []struct {
		args []string
		want []string // in the output
	}{
		{[]string{"run", "-t", "nosuch0"}, []string{"--target-interface", "nosuch0", "eth0"}},
		{[]string{"-b", "7124", "--other-relays", "10.77.0.2"}, []string{"--broadcast-port", "7124", "--mesh-port"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			out, err := h.Command(ctx, bin, tc.args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
				t.Fatalf("exit: %v, want a non-zero status\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not mention %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestRelayEmptyEnvIsUnset: the real binary, started with variables set but
// empty as compose files and manifests leave them, runs with the defaults.
func TestRelayEmptyEnvIsUnset(t *testing.T) {
	bin := harness.Binary(t)
	h := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm()).Host("relay-a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env := []string{"DISCOVERY_INTERVAL=", "RATE_LIMIT=", "DEDUP_WINDOW=", "HELLO_INTERVAL=", "TARGET_INTERFACE=",
		"REBROADCAST_DESTINATION=", "MESH_PORT=", "COALESCE=", "LOCAL_DELIVERY="}
	r, err := labrelay.Options{Env: env}.Start(ctx, bin, h, "--other-relays", "10.77.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	out, err := exec.Command(bin, "stats", "--socket", r.StatsSocket, "--json").Output()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	for _, want := range []string{`"interface": "eth0"`, `"mesh_port": 7124`, `"discovery_interval_seconds": 10`,
		`"dedup_window_seconds": 0.25`, `"hello_interval_seconds": 1`, `"rebroadcast_destination": "auto"`, `"local_delivery": true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config with empty variables lacks %s:\n%s", want, out)
		}
	}
}
