//go:build linux

package main

import (
	"fmt"
	"time"
)

// Interleaved rounds for the light step. On this VM the CPU a wake-up costs
// drifts by a third within a minute (neighbours, steal time), and the 1k/s
// figures of paths measured one after another, seconds apart, moved with
// it: the same pair's ratio to the reference swung from 1.2 to 2.3 between
// runs. So with rounds > 1 the light step is measured in rounds: in each,
// every path carries its share of the step, its pair started for it and
// stopped after, in an order that rotates from round to round; each path's
// rounds are then pooled (CPU summed, latencies merged). A drift now
// touches every path alike, and the ratios of one run measure the relays,
// not the minute each was measured in.

// roundPath is one path of the rounds: start starts its relay pair and
// returns the relays and how to stop them; nil for the direct path.
type roundPath struct {
	name  string
	start func() ([]relay, func(), error)
}

// Each pair's warm-up before its share of a round: at 20k/s, as before the
// light step of a whole path (measureRelays), then a rest like the idle
// phase that precedes it there, shorter.
const (
	roundWarmUp = 300 * time.Millisecond
	roundRest   = 500 * time.Millisecond
)

// measureRounds measures st on every path in rounds interleaved rounds of
// st.D/rounds each and returns each path's pooled step.
func measureRounds(rn *runner, direct, relayed *path, paths []roundPath, st planStep, rounds int) (map[string]stepResult, error) {
	d := st.D / time.Duration(rounds)
	steps := map[string][]stepResult{}
	for round := range rounds {
		logf("light step, round %d of %d: %s on each path", round+1, rounds, d)
		for k := range paths {
			rp := paths[(round+k)%len(paths)]
			s, err := roundStep(rn, direct, relayed, rp, st.Rate, d)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", rp.name, round+1, err)
			}
			steps[rp.name] = append(steps[rp.name], s)
		}
	}
	pooled := map[string]stepResult{}
	for name, ss := range steps {
		pooled[name] = poolSteps(ss)
	}
	return pooled, nil
}

// roundStep runs one path's share of a round.
func roundStep(rn *runner, direct, relayed *path, rp roundPath, rate float64, d time.Duration) (stepResult, error) {
	if rp.start == nil {
		direct.name = rp.name
		return rn.run(direct, rate, d, true)
	}
	rs, stop, err := rp.start()
	if err != nil {
		return stepResult{}, err
	}
	defer stop()
	relayed.name, relayed.relays, rn.idle = rp.name, rs, rs
	defer func() { relayed.relays, rn.idle = nil, nil }()
	if err := waitRelayed(rn, relayed); err != nil {
		return stepResult{}, err
	}
	if _, err := rn.run(relayed, 20e3, roundWarmUp, false); err != nil {
		return stepResult{}, err
	}
	time.Sleep(roundRest)
	return rn.run(relayed, rate, d, true)
}

// poolSteps adds up the rounds of one path as one step: counts, CPU and
// time summed, latencies merged, the shares of the host's CPU weighted by
// each round's length.
func poolSteps(ss []stepResult) stepResult {
	var p stepResult
	for _, s := range ss {
		p.Offered = s.Offered
		p.Rounds++
		p.Send.Sent += s.Send.Sent
		p.Send.Errors += s.Send.Errors
		p.Send.Elapsed += s.Send.Elapsed
		p.Send.Wakeups += s.Send.Wakeups
		p.Recv.Got += s.Recv.Got
		p.Recv.Dup += s.Recv.Dup
		p.Recv.Stale += s.Recv.Stale
		p.Recv.Foreign += s.Recv.Foreign
		p.Recv.Latencies = append(p.Recv.Latencies, s.Recv.Latencies...)
		p.Recv.Arrivals = append(p.Recv.Arrivals, s.Recv.Arrivals...)
		for i, c := range s.CPU {
			if i < len(p.CPU) {
				p.CPU[i] = p.CPU[i].add(c)
			} else {
				p.CPU = append(p.CPU, c)
			}
		}
		p.Foreign += s.Foreign * s.Wall.Seconds()
		p.HostBusy += s.HostBusy * s.Wall.Seconds()
		p.Wall += s.Wall
		p.Own += s.Own
	}
	if w := p.Wall.Seconds(); w > 0 {
		p.Foreign /= w
		p.HostBusy /= w
	}
	return p
}
