package readout

import (
	"fmt"
	"strings"
)

// HealthError lists why a relay is not healthy.
type HealthError struct {
	Problems []string
}

func (e *HealthError) Error() string { return "unhealthy: " + strings.Join(e.Problems, "; ") }

// Health reports whether the relay the snapshot describes is healthy: every
// stage running and the capture socket up. The error says what is not.
// `snowsignal health`, the Dockerfile's HEALTHCHECK, Kubernetes probes and
// /healthz all use it.
func (s *Snapshot) Health() error {
	var problems []string
	if !s.CaptureUp {
		problems = append(problems, fmt.Sprintf("capture socket on %s is not up (interface down, gone, or not opened yet)", s.Config.Interface))
	}
	for _, st := range s.Stages {
		if st.State == "running" {
			continue
		}
		p := fmt.Sprintf("stage %s is %s", st.Name, st.State)
		if st.LastError != "" {
			p += " (last error: " + st.LastError + ")"
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return &HealthError{Problems: problems}
	}
	return nil
}
