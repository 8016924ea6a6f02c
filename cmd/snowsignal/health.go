package main

import (
	"context"
	"fmt"
)

// HealthCmd checks a running relay, for container health checks and
// Kubernetes probes: exit status 0 when every stage runs and the capture
// socket is up, 1 with the reason otherwise.
type HealthCmd struct {
	Socket string `env:"STATS_SOCKET" default:"/run/snowsignal/snowsignal.sock" placeholder:"PATH" help:"The relay's stats socket (its --stats-socket)."`
}

// Run queries the relay and reports its health.
func (c *HealthCmd) Run(o *stdio) error {
	s, _, err := fetchSnapshot(context.Background(), c.Socket)
	if err != nil {
		return err
	}
	if err := s.Health(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.Out, "ok: %d stages running, capturing on %s, %d peers\n", len(s.Stages), s.Config.Interface, len(s.Peers))
	return err
}
