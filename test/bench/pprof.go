//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// debugAddr is where each relay serves net/http/pprof (--debug-address)
// when profiles are asked for: loopback of its own namespace.
const debugAddr = "127.0.0.1:6060"

// profileTime is how long profiles are taken for.
const profileTime = 5 * time.Second

// profile diagnoses both SnowSignal relays while the relayed path carries
// profileRate datagrams/s, into dir (the receive queues are sampled before,
// by sampleQueues, for the reference pair too): a CPU profile of each
// (<relay>.cpu.pprof, 5 s), a runtime trace of each (<relay>.trace, 2 s),
// their stats snapshots before and after the traced run
// (<relay>.stats-before.json, .stats-after.json), and, when strace is
// installed, `strace -c -f` of each over a third run (<relay>.strace; it
// slows the relay, so that run's delivery means nothing). Read them with
// `go tool pprof -top BINARY dir/relay-a.cpu.pprof` and
// `go tool trace dir/relay-b.trace`.
func profile(dir string, profileRate float64, rn *runner, p *path, relays []*relayProc) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf("CPU profiles at %.0f/s for %s into %s", profileRate, profileTime, dir)
	if err := underLoad(rn, p, profileRate, profileTime, relays, func(r *relayProc) error {
		return fetchDebug(r.r.Host, filepath.Join(dir, r.name+".cpu.pprof"), "profile", profileTime)
	}); err != nil {
		return err
	}
	logf("runtime traces at %.0f/s for %s", profileRate, traceTime)
	for _, r := range relays {
		if err := saveStats(r, filepath.Join(dir, r.name+".stats-before.json")); err != nil {
			return err
		}
	}
	if err := underLoad(rn, p, profileRate, traceTime, relays, func(r *relayProc) error {
		return fetchDebug(r.r.Host, filepath.Join(dir, r.name+".trace"), "trace", traceTime)
	}); err != nil {
		return err
	}
	for _, r := range relays {
		if err := saveStats(r, filepath.Join(dir, r.name+".stats-after.json")); err != nil {
			return err
		}
	}
	if err := perfSched(dir, profileRate, rn, p); err != nil {
		logf("perf sched: %v", err)
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		logf("no strace installed: no system call counts")
		return nil
	}
	logf("strace -c -f at %.0f/s for %s", profileRate, traceTime)
	return underLoad(rn, p, profileRate, traceTime, relays, func(r *relayProc) error {
		ctx, cancel := context.WithTimeout(context.Background(), traceTime+5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, strace, "-c", "-f", "-p", fmt.Sprint(r.pid), "-o", filepath.Join(dir, r.name+".strace"))
		if err := cmd.Start(); err != nil {
			return err
		}
		time.Sleep(traceTime)
		// strace detaches and writes its summary when interrupted, and
		// may then report the signal as its exit status.
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil && !isExit(err) {
			return err
		}
		return nil
	})
}

// perfSched records the scheduler of the whole host with `perf sched
// record -a` while p carries rate datagrams/s, and saves `perf sched
// latency` (per task: run time, switches, wake-up delays) as
// dir/sched-latency.txt, when perf is installed and works here.
func perfSched(dir string, rate float64, rn *runner, p *path) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return errors.New("not installed")
	}
	logf("perf sched record -a at %.0f/s for %s", rate, traceTime)
	data := filepath.Join(dir, "sched.data")
	ctx, cancel := context.WithTimeout(context.Background(), traceTime+10*time.Second)
	defer cancel()
	rec := exec.CommandContext(ctx, perf, "sched", "record", "-a", "-o", data)
	var out bytes.Buffer
	rec.Stdout, rec.Stderr = &out, &out
	if err := rec.Start(); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	_, runErr := rn.run(p, rate, traceTime-200*time.Millisecond, true)
	_ = rec.Process.Signal(os.Interrupt)
	if err := rec.Wait(); err != nil && !isExit(err) {
		return fmt.Errorf("record: %v: %s", err, tail(out.String(), 512))
	}
	lat, err := exec.CommandContext(ctx, perf, "sched", "latency", "-i", data, "--sort", "max").CombinedOutput()
	if err != nil {
		return fmt.Errorf("latency: %v: %s", err, tail(string(lat), 512))
	}
	if err := os.WriteFile(filepath.Join(dir, "sched-latency.txt"), lat, 0o644); err != nil {
		return err
	}
	return runErr
}

// isExit reports whether err only says how a program exited.
func isExit(err error) bool {
	var e *exec.ExitError
	return errors.As(err, &e)
}

// traceTime is how long runtime traces and strace run.
const traceTime = 2 * time.Second

// underLoad runs fn for every relay at once while p carries rate
// datagrams/s for d.
func underLoad(rn *runner, p *path, rate float64, d time.Duration, relays []*relayProc, fn func(*relayProc) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(relays))
	for i, r := range relays {
		wg.Go(func() { errs[i] = fn(r) })
	}
	time.Sleep(100 * time.Millisecond) // the collection has started
	_, err := rn.run(p, rate, d-200*time.Millisecond, true)
	wg.Wait()
	return errors.Join(append(errs, err)...)
}

// saveStats writes the relay's `snowsignal stats --json` snapshot to file.
func saveStats(r *relayProc, file string) error {
	st, err := r.statsJSON()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// fetchDebug asks the relay in host for /debug/pprof/<what> over d (a CPU
// profile or a runtime trace) and saves it.
// The connection is made from inside host's namespace: the relay listens on
// its own loopback.
func fetchDebug(host *netlab.Host, file, what string, d time.Duration) error {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := host.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: d + 10*time.Second}
	url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%g", debugAddr, what, d.Seconds())
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", host.Name, what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: profile: %s: %s", host.Name, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("%s: profile: %w", host.Name, err)
	}
	return f.Close()
}
