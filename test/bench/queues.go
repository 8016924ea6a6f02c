//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// truesize is the kernel memory one 100-byte search takes in a receive
// queue of the lab's sockets (capture and mesh alike), measured with
// SO_MEMINFO on kernel 6.18: queued bytes divided by it are frames.
const truesize = 832

// queueStats is what a socket's receive queue held over a run, in bytes of
// kernel memory.
type queueStats struct {
	Name      string
	Max, Mean uint64
	Samples   int
}

// queuePeriod is how often sampleQueues looks.
const queuePeriod = 10 * time.Millisecond

// sampleQueues runs p at rate for d and meanwhile reads, every queuePeriod,
// how much the relays' receive queues hold: relay-a's packet sockets
// (/proc/net/packet Rmem, the capture socket being the one that queues)
// and relay-b's mesh socket (/proc/net/udp rx_queue). It writes the result
// to dir/<name>.queues.txt and returns it. The kernel's queues are where a
// backlog waits before a reader takes it; SnowSignal's own links hold the
// rest, which its stats show as they are when read.
func sampleQueues(dir, name string, rate float64, d time.Duration, rn *runner, p *path, l *netlab.Lab) ([]queueStats, error) {
	qs := []queueStats{{Name: "relay-a capture socket"}, {Name: "relay-b mesh socket"}}
	read := []func() (uint64, error){
		func() (uint64, error) { return nsQueue(l.Host("relay-a"), "packet", packetRmem) },
		func() (uint64, error) { return nsQueue(l.Host("relay-b"), "udp", udpRxQueue(meshPort)) },
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(queuePeriod)
		defer t.Stop()
		var sums [2]uint64
		for {
			select {
			case <-stop:
				for i := range qs {
					if qs[i].Samples > 0 {
						qs[i].Mean = sums[i] / uint64(qs[i].Samples)
					}
				}
				done <- nil
				return
			case <-t.C:
			}
			for i, f := range read {
				v, err := f()
				if err != nil {
					continue
				}
				qs[i].Max = max(qs[i].Max, v)
				sums[i] += v
				qs[i].Samples++
			}
		}
	}()
	_, err := rn.run(p, rate, d, true)
	close(stop)
	<-done
	if err != nil {
		return qs, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s at %.0f/s offered, %s: receive queues sampled every %s (%d bytes per 100-byte frame)\n", name, rate, d, queuePeriod, truesize)
	for _, q := range qs {
		fmt.Fprintf(&b, "%-24s max %8d bytes = %5d frames = %6.1f ms; mean %8d bytes = %5d frames = %6.1f ms (%d samples)\n",
			q.Name, q.Max, q.Max/truesize, float64(q.Max/truesize)/rate*1e3, q.Mean, q.Mean/truesize, float64(q.Mean/truesize)/rate*1e3, q.Samples)
	}
	logf("%s", strings.TrimSpace(b.String()))
	return qs, os.WriteFile(filepath.Join(dir, name+".queues.txt"), []byte(b.String()), 0o644)
}

// nsQueue reads /proc/thread-self/net/<file> in host's namespace and
// returns what parse finds in it.
func nsQueue(h *netlab.Host, file string, parse func(string) (uint64, error)) (uint64, error) {
	var n uint64
	err := h.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/" + file)
		if err != nil {
			return err
		}
		n, err = parse(string(b))
		return err
	})
	return n, err
}

// packetRmem returns the largest Rmem of the packet sockets in the text of
// /proc/net/packet: "sk RefCnt Type Proto Iface R Rmem User Inode".
func packetRmem(text string) (uint64, error) {
	var most uint64
	lines := strings.Split(text, "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		v, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc net packet: %q: %w", line, err)
		}
		most = max(most, v)
	}
	return most, nil
}

// udpRxQueue returns a parser of /proc/net/udp for the rx_queue (hex
// bytes) of the socket on local port port.
func udpRxQueue(port uint16) func(string) (uint64, error) {
	want := fmt.Sprintf(":%04X", port)
	return func(text string) (uint64, error) {
		lines := strings.Split(text, "\n")
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx_queue:rx_queue ...
			if len(f) < 5 || !strings.HasSuffix(f[1], want) {
				continue
			}
			_, rx, ok := strings.Cut(f[4], ":")
			if !ok {
				return 0, fmt.Errorf("proc net udp: %q", f[4])
			}
			return strconv.ParseUint(rx, 16, 64)
		}
		return 0, fmt.Errorf("proc net udp: no socket on port %d", port)
	}
}
