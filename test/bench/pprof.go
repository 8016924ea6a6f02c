//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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

// profile saves a CPU profile of each relay taken while the relayed path
// carries profileRate datagrams/s, as dir/<relay>.cpu.pprof. Read them with
// `go tool pprof -top BINARY dir/relay-a.cpu.pprof`.
func profile(dir string, profileRate float64, rn *runner, p *path, relays []*relayProc) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf("CPU profiles at %.0f/s for %s into %s", profileRate, profileTime, dir)
	var wg sync.WaitGroup
	errs := make([]error, len(relays))
	for i, r := range relays {
		wg.Go(func() {
			errs[i] = fetchProfile(r.r.Host, filepath.Join(dir, r.name+".cpu.pprof"), profileTime)
		})
	}
	time.Sleep(100 * time.Millisecond) // the profiles have started
	_, err := rn.run(p, profileRate, profileTime-200*time.Millisecond, false)
	wg.Wait()
	return errors.Join(append(errs, err)...)
}

// fetchProfile asks the relay in host for a CPU profile of d and saves it.
// The connection is made from inside host's namespace: the relay listens on
// its own loopback.
func fetchProfile(host *netlab.Host, file string, d time.Duration) error {
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
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, int(d.Seconds()))
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("%s: profile: %w", host.Name, err)
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
