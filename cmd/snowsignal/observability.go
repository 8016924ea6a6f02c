package main

import "github.com/snowsignal/snowsignal/cmd/snowsignal/assembly"

// observability returns the settings of the stats socket, the metrics
// endpoint and the summary line, checked.
func (c *RunCmd) observability() (assembly.Observability, error) {
	o := c.observabilityConfig()
	return o, o.Validate()
}

func (c *RunCmd) observabilityConfig() assembly.Observability {
	return assembly.Observability{Version: version, Commit: commit, StatsSocket: c.StatsSocket,
		MetricsAddress: c.MetricsAddress, SummaryInterval: c.SummaryInterval}
}
