//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// A relayProc is one snowsignal process running in a lab host, started by
// the test harness, and the process /proc is read for.
type relayProc struct {
	name string
	bin  string
	r    *labrelay.Relay
	pid  int
}

// startRelay starts `bin run args...` in host, with env added to this
// process's environment, and returns once it is ready (labrelay.Start: its
// sockets are open, and it has its own stats socket if the binary has the
// flag). `ip netns exec` execs the program in place, so the child's pid is
// the relay's own; startRelay checks that it is.
func startRelay(ctx context.Context, name, bin string, host *netlab.Host, env []string, args ...string) (*relayProc, error) {
	r, err := labrelay.Options{Env: env}.Start(ctx, bin, host, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &relayProc{name: name, bin: bin, r: r, pid: r.Pid()}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	if err != nil || filepath.Base(exe) != filepath.Base(bin) {
		p.stop()
		return nil, fmt.Errorf("%s: pid %d is %q, not %s: its CPU time would not be the relay's", name, p.pid, exe, bin)
	}
	return p, nil
}

// alive reports whether the process still runs.
func (p *relayProc) alive() bool {
	select {
	case <-p.r.Done():
		return false
	default:
		return true
	}
}

func (p *relayProc) label() string   { return p.name }
func (p *relayProc) inProcess() bool { return false }

// check returns an error with the end of its log if the relay has exited.
func (p *relayProc) check() error {
	if p.alive() {
		return nil
	}
	return fmt.Errorf("%s exited during the run (%v):\n%s", p.name, p.r.ExitErr(), tail(p.output(), 4096))
}

// output is everything the relay has logged.
func (p *relayProc) output() string { return p.r.Output() }

// sample reads the process's CPU time and memory.
func (p *relayProc) sample() (procSample, error) {
	s, err := readProc(p.pid)
	if err != nil {
		select {
		case <-p.r.Done():
			return s, fmt.Errorf("%s exited (%v); its log ends:\n%s", p.name, p.r.ExitErr(), tail(p.output(), 4096))
		case <-time.After(100 * time.Millisecond):
		}
		return s, fmt.Errorf("%s: %w", p.name, err)
	}
	return s, nil
}

// statsJSON asks the relay for its `snowsignal stats --json` snapshot.
func (p *relayProc) statsJSON() (map[string]any, error) {
	if p.r.StatsSocket == "" {
		return nil, errors.New("no stats socket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.bin, "stats", "--json", "--socket", p.r.StatsSocket).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: stats: %w", p.name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("%s: stats: %w", p.name, err)
	}
	return m, nil
}

// stop ends the relay as an operator would (SIGTERM; the harness kills it
// if it has not exited in time) and returns how it exited.
func (p *relayProc) stop() error {
	if err := p.r.Stop(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}

// problems returns the relay's log lines at warning level or above.
func (p *relayProc) problems() []string {
	var out []string
	for _, line := range strings.Split(p.output(), "\n") {
		if strings.Contains(line, `"level":"warn`) || strings.Contains(line, `"level":"error`) ||
			strings.Contains(line, `"level":"fatal`) || strings.Contains(line, "panic") {
			out = append(out, line)
		}
	}
	return out
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// dropCounters walks a stats snapshot and returns every non-zero number
// whose key path mentions a drop or a pause, e.g. "drops.duplicate",
// "links[capture->decode].dropped_packets" or "coalesce.listener_pauses"
// (a reader that waited its coalescing window). The walk does not depend on the
// exact schema, which another part of the project owns.
func dropCounters(v any) map[string]float64 {
	out := map[string]float64{}
	var walk func(path string, v any, hot bool)
	walk = func(path string, v any, hot bool) {
		switch x := v.(type) {
		case map[string]any:
			label := ""
			if n, ok := x["name"].(string); ok {
				label = "[" + n + "]"
			}
			for k, e := range x {
				lk := strings.ToLower(k)
				walk(strings.TrimPrefix(path+label+"."+k, "."), e, hot || strings.Contains(lk, "drop") || strings.Contains(lk, "pause"))
			}
		case []any:
			for _, e := range x {
				walk(path, e, hot)
			}
		case float64:
			if hot && x != 0 {
				out[path] = x
			}
		}
	}
	walk("", v, false)
	return out
}
