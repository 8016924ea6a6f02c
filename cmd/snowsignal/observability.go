package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/assembly"
)

// observability checks the flags of the stats socket, the metrics endpoint
// and the summary line.
func (c *RunCmd) observability() (assembly.Observability, error) {
	o := assembly.Observability{Version: version, Commit: commit, StatsSocket: c.StatsSocket,
		MetricsAddress: c.MetricsAddress, SummaryInterval: c.SummaryInterval}
	if c.MetricsAddress != "" {
		_, port, err := net.SplitHostPort(c.MetricsAddress)
		if err != nil {
			return o, fmt.Errorf("--metrics-address: %q is not HOST:PORT (e.g. :9124 or 127.0.0.1:9124)", c.MetricsAddress)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return o, fmt.Errorf("--metrics-address: port %q is out of range (allowed: 0-65535)", port)
		}
	}
	if c.SummaryInterval != 0 && c.SummaryInterval < time.Second {
		return o, fmt.Errorf("--summary-interval: %s is too short (allowed: 0 to disable, or 1s or more)", c.SummaryInterval)
	}
	return o, nil
}
