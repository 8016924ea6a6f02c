package harness

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/test/lab"
)

func TestLogBufferParsesAndWaits(t *testing.T) {
	b := newLogBuffer()
	pr, pw := io.Pipe()
	go b.readFrom(pr, nil)
	go func() {
		io.WriteString(pw, `{"level":"info","stage":"capture","message":"capturing"}`+"\n")
		io.WriteString(pw, "snowsignal: error: --mesh-port: 0 is out of range\n")
		time.Sleep(20 * time.Millisecond) // the waiter below must see a later line too
		io.WriteString(pw, `{"level":"info","stage":"inject","message":"injecting"}`+"\n")
		pw.Close()
	}()
	e, err := b.wait(Msg("injecting", "stage", "inject"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e["level"] != "info" {
		t.Errorf("level = %v, want info", e["level"])
	}
	if _, err := b.wait(Msg("capturing", "stage", "inject"), 2*time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("wait for a line never written after EOF: %v, want ErrExited", err)
	}
	all := b.all()
	if len(all) != 3 || all[1]["raw"] != "snowsignal: error: --mesh-port: 0 is out of range" {
		t.Errorf("entries = %v", all)
	}
	if got := b.text(); strings.Count(got, "\n") != 3 {
		t.Errorf("text = %q", got)
	}
}

func TestLogBufferWaitTimesOut(t *testing.T) {
	b := newLogBuffer()
	start := time.Now()
	_, err := b.wait(Level("error"), 50*time.Millisecond)
	if err == nil || errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("timeout took %s", d)
	}
}

func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"--stats-socket", "/x"}, "/x", true},
		{[]string{"-t", "eth0", "--stats-socket=/y"}, "/y", true},
		{[]string{"--stats-socket"}, "", false},
		{[]string{"--", "--stats-socket=/z"}, "", false},
		{nil, "", false},
	} {
		got, ok := flagValue(tc.args, "--stats-socket")
		if got != tc.want || ok != tc.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}

// TestStartStop runs two relays in a lab: both get ready, have their own
// stats socket paths, and exit 0 on SIGTERM.
func TestStartStop(t *testing.T) {
	bin := Binary(t)
	l := lab.NewSwarmT(t, lab.TwoSegmentSwarm())
	a := StartT(t, bin, l.Host("relay-a"), "--other-relays", "10.77.0.2")
	b := StartT(t, bin, l.Host("relay-b"), "--other-relays", "10.77.0.1")
	if hasStatsSocketFlag(context.Background(), bin, l.Host("relay-a")) {
		if a.StatsSocket == "" || a.StatsSocket == b.StatsSocket {
			t.Errorf("stats sockets %q and %q, want two distinct paths", a.StatsSocket, b.StatsSocket)
		}
		for _, r := range []*Relay{a, b} {
			if fi, err := os.Stat(r.StatsSocket); err != nil || fi.Mode().Type() != os.ModeSocket {
				t.Errorf("%s: stats socket %s: %v, %v", r.Host.Name, r.StatsSocket, fi, err)
			}
		}
	} else if a.StatsSocket != "" {
		t.Errorf("StatsSocket %q for a binary without --stats-socket", a.StatsSocket)
	}
	if _, err := a.WaitLog(Msg("relay starting"), time.Second); err != nil {
		t.Errorf("relay-a: %v", err)
	}
	for _, r := range []*Relay{a, b} {
		if err := r.Stop(); err != nil {
			t.Errorf("%s: stop: %v", r.Host.Name, err)
		}
		select {
		case <-r.Done():
		default:
			t.Errorf("%s: Done not closed after Stop", r.Host.Name)
		}
		if _, err := r.WaitLog(Msg("relay stopped"), time.Second); err != nil {
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
	bin := Binary(t)
	l := lab.NewSwarmT(t, lab.TwoSegmentSwarm())
	start := time.Now()
	_, err := Start(context.Background(), bin, l.Host("relay-a"), "--mesh-port", "0")
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
	if d := time.Since(start); d > DefaultReadyTimeout/2 {
		t.Errorf("Start took %s to notice the exit", d)
	}
}
