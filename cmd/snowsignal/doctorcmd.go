package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/doctor"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout/statsserver"
)

// DoctorCmd checks what the relay needs from this host and its peers. It
// takes the run command's flags and environment, so it checks exactly the
// configuration the daemon would use.
type DoctorCmd struct {
	RunCmd `embed:""`

	JSON         bool          `name:"json" group:"Doctor" help:"Print the results as one JSON document: {version, failed, results: [{check, status (ok|warn|fail), message, fix}]} (docs/OBSERVABILITY.md)."`
	Sample       time.Duration `default:"2s" group:"Doctor" help:"When a relay answers on --stats-socket, how long to watch its counters for drops that move (0: read them once)."`
	ProbeTimeout time.Duration `default:"1s" group:"Doctor" help:"How long to wait for each peer's answer to a probe on the mesh port."`
}

// errExit carries an exit status without a message: doctor has printed
// what failed.
type errExit int

func (e errExit) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Run prints one line per check and fails with exit status 1 if any check
// fails.
func (c *DoctorCmd) Run(o *stdio) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The interface is one of doctor's checks, not a reason to stop.
	run := c.RunCmd
	run.WaitForInterface = true
	rcfg, warnings, err := run.config()
	rep := &doctor.Report{Version: version}
	if err != nil {
		rep.Results = append(rep.Results, doctor.Result{Check: "config", Status: doctor.Fail, Message: err.Error(),
			Fix: "see `snowsignal run --help`"})
		rep.Failed = true
	} else {
		cfg := doctor.Config{
			Interface: rcfg.Interface, BroadcastPorts: rcfg.BroadcastPorts, MeshPort: rcfg.MeshPort, MeshBind: rcfg.MeshBind,
			Peers: rcfg.Peers, Discover: rcfg.Discover, MeshKeys: rcfg.MeshKeys, LocalDelivery: rcfg.LocalDelivery,
			AcceptAnyPeer: rcfg.AcceptAnyPeer, StatsSocket: c.StatsSocket, Sample: c.Sample, ProbeTimeout: c.ProbeTimeout,
			Version: version,
		}
		rep = doctor.Run(ctx, cfg, doctor.Host(fetchStats))
		for _, w := range warnings {
			rep.Results = append([]doctor.Result{{Check: "config", Status: doctor.Warn, Message: w}}, rep.Results...)
		}
	}
	if c.JSON {
		err = rep.WriteJSON(o.Out)
	} else {
		err = rep.WriteText(o.Out)
	}
	if err != nil {
		return err
	}
	if rep.Failed {
		return errExit(1)
	}
	return nil
}

// fetchStats asks the relay at path for its snapshot.
func fetchStats(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	return statsserver.Fetch(ctx, path, "snapshot")
}
