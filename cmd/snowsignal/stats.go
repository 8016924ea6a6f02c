package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout/statsserver"
)

// StatsCmd prints a running relay's counters.
type StatsCmd struct {
	Socket   string        `env:"STATS_SOCKET" default:"/run/snowsignal/snowsignal.sock" placeholder:"PATH" help:"The relay's stats socket (its --stats-socket)."`
	JSON     bool          `name:"json" help:"Print the whole snapshot as one JSON document (field names: docs/OBSERVABILITY.md)."`
	Watch    bool          `short:"w" help:"Refresh in place with per-second rates, like top, until Ctrl-C."`
	Interval time.Duration `default:"1s" help:"Refresh interval of --watch."`
}

// fetchTimeout bounds one query of the stats socket.
const fetchTimeout = 5 * time.Second

// fetchSnapshot asks the relay at path for a snapshot and checks that this
// binary reads its format. It returns the decoded snapshot and its JSON.
func fetchSnapshot(ctx context.Context, path string) (readout.Snapshot, json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	raw, err := statsserver.Fetch(ctx, path, "snapshot")
	if err != nil {
		return readout.Snapshot{}, nil, err
	}
	var s readout.Snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return readout.Snapshot{}, nil, fmt.Errorf("socket %s: snapshot: %w", path, err)
	}
	if s.Format != readout.SnapshotFormat {
		return readout.Snapshot{}, nil, fmt.Errorf("version mismatch: the relay at %s sends snapshot format %d, this snowsignal (%s) reads format %d (use the snowsignal binary the relay runs)",
			path, s.Format, version, readout.SnapshotFormat)
	}
	return s, raw, nil
}

// Run prints the snapshot once, or refreshes it until interrupted.
func (c *StatsCmd) Run(o *stdio) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.Watch {
		if c.JSON {
			return fmt.Errorf("--json and --watch: choose one")
		}
		if c.Interval < 100*time.Millisecond {
			return fmt.Errorf("--interval: %s is too short (allowed: 100ms or more)", c.Interval)
		}
		return c.watch(ctx, o)
	}
	s, raw, err := fetchSnapshot(ctx, c.Socket)
	if err != nil {
		return err
	}
	if c.JSON {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	}
	return renderStats(o.Out, &s, nil)
}

// ANSI sequences: move the cursor home and clear the screen.
const clearScreen = "\x1b[H\x1b[2J"

// watch redraws the table every interval until ctx is done. A failed query
// is shown in place of the table, and retried: the relay may be restarting.
func (c *StatsCmd) watch(ctx context.Context, o *stdio) error {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	var prev *readout.Snapshot
	for {
		s, _, err := fetchSnapshot(ctx, c.Socket)
		fmt.Fprint(o.Out, clearScreen)
		if err != nil {
			fmt.Fprintf(o.Out, "%s  (retrying every %s; Ctrl-C to quit)\n", err, c.Interval)
			prev = nil
		} else {
			if err := renderStats(o.Out, &s, prev); err != nil {
				return err
			}
			prev = &s
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
