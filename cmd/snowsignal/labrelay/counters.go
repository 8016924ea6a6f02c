package labrelay

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/snowsignal/snowsignal/pipeline"
)

// Counters is what a relay counted over its life, as it logs them when it
// stops (the "relay stopped" line).
type Counters struct {
	// Stages holds each stage's counters by stage name ("capture",
	// "fanout", "inject", ...).
	Stages map[string]pipeline.StageStats
	// Drops counts dropped packets by reason name (pipeline.Reason), zeros
	// included.
	Drops map[string]uint64
}

// FinalCounters returns the counters from the relay's "relay stopped" log
// line. Call it after Stop; it waits briefly for the line if the relay is
// still writing it, and fails if the relay never logged one (it was
// killed, or crashed).
func (r *Relay) FinalCounters() (Counters, error) {
	e, err := r.WaitLog(Msg("relay stopped"), time.Second)
	if err != nil {
		return Counters{}, fmt.Errorf("labrelay: relay in %s: final counters: %w", r.Host.Name, err)
	}
	// Round-trip the parsed fields through JSON into typed values.
	raw, err := json.Marshal(map[string]any{"stages": e["stages"], "drops": e["drops"]})
	if err != nil {
		return Counters{}, fmt.Errorf("labrelay: final counters: %w", err)
	}
	var v struct {
		Stages []pipeline.StageStats `json:"stages"`
		Drops  map[string]uint64     `json:"drops"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return Counters{}, fmt.Errorf("labrelay: relay in %s: final counters: %w", r.Host.Name, err)
	}
	if v.Stages == nil {
		return Counters{}, fmt.Errorf("labrelay: relay in %s: the \"relay stopped\" line carries no counters", r.Host.Name)
	}
	c := Counters{Stages: make(map[string]pipeline.StageStats, len(v.Stages)), Drops: v.Drops}
	for _, s := range v.Stages {
		c.Stages[s.Name] = s
	}
	return c, nil
}
