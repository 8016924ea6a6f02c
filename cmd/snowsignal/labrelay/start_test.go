package labrelay_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// TestStartStop runs two relays in a lab: both get ready, have their own
// stats socket paths, and exit 0 on SIGTERM.
func TestStartStop(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	a := harness.StartT(t, bin, l.Host("relay-a"), "--other-relays", "10.77.0.2")
	b := harness.StartT(t, bin, l.Host("relay-b"), "--other-relays", "10.77.0.1")
	if labrelay.HasStatsSocketFlag(context.Background(), bin, l.Host("relay-a")) {
		if a.StatsSocket == "" || a.StatsSocket == b.StatsSocket {
			t.Errorf("stats sockets %q and %q, want two distinct paths", a.StatsSocket, b.StatsSocket)
		}
		for _, r := range []*labrelay.Relay{a, b} {
			if fi, err := os.Stat(r.StatsSocket); err != nil || fi.Mode().Type() != os.ModeSocket {
				t.Errorf("%s: stats socket %s: %v, %v", r.Host.Name, r.StatsSocket, fi, err)
			}
		}
	} else if a.StatsSocket != "" {
		t.Errorf("StatsSocket %q for a binary without --stats-socket", a.StatsSocket)
	}
	if _, err := a.WaitLog(labrelay.Msg("relay starting"), time.Second); err != nil {
		t.Errorf("relay-a: %v", err)
	}
	for _, r := range []*labrelay.Relay{a, b} {
		if err := r.Stop(); err != nil {
			t.Errorf("%s: stop: %v", r.Host.Name, err)
		}
		select {
		case <-r.Done():
		default:
			t.Errorf("%s: Done not closed after Stop", r.Host.Name)
		}
		if _, err := r.WaitLog(labrelay.Msg("relay stopped"), time.Second); err != nil {
			t.Errorf("%s: %v", r.Host.Name, err)
		}
		if c, err := r.FinalCounters(); err != nil || c.Stages["capture"].State == "" {
			t.Errorf("%s: final counters %+v, %v", r.Host.Name, c, err)
		}
		if r.StatsSocket != "" {
			if _, err := os.Stat(filepath.Dir(r.StatsSocket)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the stats socket's folder is left after exit: %v", r.Host.Name, err)
			}
		}
	}
}

// TestStartFailsFast: a relay that exits at start makes Start return its
// exit status and output at once, not after the ready timeout.
func TestStartFailsFast(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	start := time.Now()
	_, err := labrelay.Start(context.Background(), bin, l.Host("relay-a"), "--mesh-port", "0")
	if err == nil {
		t.Fatal("Start succeeded with --mesh-port 0")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("err = %v, want an exit error with a non-zero status", err)
	}
	if !strings.Contains(err.Error(), "--mesh-port") {
		t.Errorf("error does not show the relay's message naming the flag: %v", err)
	}
	if d := time.Since(start); d > labrelay.DefaultReadyTimeout/2 {
		t.Errorf("Start took %s to notice the exit", d)
	}
}
