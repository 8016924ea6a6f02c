package main

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

// discoveryEnv lists the environment variables these tests set or clear, so
// the caller's environment (a Swarm task with SERVICENAME, say) cannot leak
// into them.
var discoveryEnv = []string{"SERVICENAME", "DISCOVER", "DISCOVERY_INTERVAL", "OTHER_RELAYS", "TARGET_INTERFACE"}

// parseRunForDiscovery parses args (the words after "snowsignal") with env
// set, through the same normalisation and kong tags as the real command
// line, and returns the relay configuration the run command would build. The
// target interface is lo, which every namespace has.
func parseRunForDiscovery(t *testing.T, env map[string]string, args ...string) (discover, peers []string, interval time.Duration, err error) {
	t.Helper()
	for _, k := range discoveryEnv {
		v, ok := env[k]
		t.Setenv(k, v) // restores the caller's value when the test ends
		if !ok {
			os.Unsetenv(k) // kong reads a set but empty variable as a value
		}
	}
	var cli struct {
		Run RunCmd `cmd:"" default:"withargs"`
	}
	parser, err := kong.New(&cli, kong.Name("snowsignal"), kong.Exit(func(c int) { t.Fatalf("kong exited with %d", c) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(normalizeArgs(append([]string{"-t", "lo"}, args...))); err != nil {
		return nil, nil, 0, err
	}
	cfg, _, err := cli.Run.config()
	return cfg.Discover, cfg.Peers, cfg.DiscoveryInterval, err
}

func TestDiscoveryConfig(t *testing.T) {
	for _, tc := range []struct {
		name         string
		env          map[string]string
		args         []string
		wantDiscover []string
		wantPeers    []string
		wantInterval time.Duration
	}{
		{
			name:         "SERVICENAME is shorthand for tasks.NAME",
			env:          map[string]string{"SERVICENAME": "snowsignal_relay"},
			wantDiscover: []string{"tasks.snowsignal_relay"},
			wantInterval: 10 * time.Second, // the Python relay's period
		},
		{
			name:         "SERVICENAME is trimmed",
			env:          map[string]string{"SERVICENAME": " snowsignal \n"},
			wantDiscover: []string{"tasks.snowsignal"},
			wantInterval: 10 * time.Second,
		},
		{
			name:         "empty SERVICENAME is not configured (self mode)",
			env:          map[string]string{"SERVICENAME": "  "},
			wantInterval: 10 * time.Second,
		},
		{
			// The Python relay fell back to self mode here; ours combines.
			name:         "SERVICENAME and --other-relays combine",
			env:          map[string]string{"SERVICENAME": "snowsignal"},
			args:         []string{"--other-relays", "10.0.0.5", "gateway-relay"},
			wantDiscover: []string{"tasks.snowsignal"},
			wantPeers:    []string{"10.0.0.5", "gateway-relay"},
			wantInterval: 10 * time.Second,
		},
		{
			name:         "--discover, repeated and with commas",
			args:         []string{"--discover", "a.example,b.example", "--discover", "snowsignal.controls.svc.cluster.local"},
			wantDiscover: []string{"a.example", "b.example", "snowsignal.controls.svc.cluster.local"},
			wantInterval: 10 * time.Second,
		},
		{
			name:         "DISCOVER and DISCOVERY_INTERVAL from the environment",
			env:          map[string]string{"DISCOVER": "snowsignal.controls.svc.cluster.local", "DISCOVERY_INTERVAL": "3s"},
			wantDiscover: []string{"snowsignal.controls.svc.cluster.local"},
			wantInterval: 3 * time.Second,
		},
		{
			name:         "flags beat the environment",
			env:          map[string]string{"DISCOVER": "env.example", "DISCOVERY_INTERVAL": "3s"},
			args:         []string{"--discover", "flag.example", "--discovery-interval", "1s"},
			wantDiscover: []string{"flag.example"},
			wantInterval: time.Second,
		},
		{
			name:         "--discover and SERVICENAME combine, without duplicates",
			env:          map[string]string{"SERVICENAME": "snowsignal"},
			args:         []string{"--discover", "tasks.snowsignal,other.example,other.example"},
			wantDiscover: []string{"tasks.snowsignal", "other.example"},
			wantInterval: 10 * time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			discover, peers, interval, err := parseRunForDiscovery(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(discover, tc.wantDiscover) {
				t.Errorf("Discover = %q, want %q", discover, tc.wantDiscover)
			}
			if !slices.Equal(peers, tc.wantPeers) {
				t.Errorf("Peers = %q, want %q", peers, tc.wantPeers)
			}
			if interval != tc.wantInterval {
				t.Errorf("DiscoveryInterval = %v, want %v", interval, tc.wantInterval)
			}
		})
	}
}

func TestDiscoveryIntervalTooShort(t *testing.T) {
	for _, v := range []string{"500ms", "0s"} {
		_, _, _, err := parseRunForDiscovery(t, map[string]string{"SERVICENAME": "snowsignal", "DISCOVERY_INTERVAL": v})
		if err == nil || !strings.Contains(err.Error(), "--discovery-interval") || !strings.Contains(err.Error(), "1s or more") {
			t.Errorf("DISCOVERY_INTERVAL=%s: err = %v, want one naming --discovery-interval and what it allows", v, err)
		}
	}
}
