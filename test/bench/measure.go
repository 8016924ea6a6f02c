//go:build linux

package main

import (
	"fmt"
	"runtime"
	"slices"
	"time"
)

// A path is one way from a sender to a receiver: direct (one segment, no
// relay: the physical path) or relayed (the clients, a relay pair, the
// server), through whichever relays run at the time.
type path struct {
	name   string
	snd    *sender
	rcv    *receiver
	relays []relay // whose CPU the path costs; none for direct
}

func (p *path) close() {
	p.snd.close()
	p.rcv.close()
}

// A relay is one relay of a pair whose CPU the benchmark measures: a
// SnowSignal process, or a reference relay running in this process.
type relay interface {
	label() string
	sample() (procSample, error)
	// inProcess reports whether the relay's CPU time is part of this
	// process's own.
	inProcess() bool
	// check returns an error if the relay has died.
	check() error
}

// stepResult is one bounded run of one path at one offered rate.
type stepResult struct {
	Offered float64 // datagrams/s asked for
	Send    sendResult
	Recv    recvResult
	CPU     []cpuDelta // per relay of the path
	Wall    time.Duration
	// Foreign is the share of the host's CPU time that neither this
	// program nor the relays used during the step: other programs
	// competing for the CPUs make the step's numbers worse than the
	// relay's own.
	Foreign float64
	// Own is the CPU time of this program (sender and receivers) during
	// the step: on the direct path, per datagram, a floor for what one
	// relay hop (a wake-up, a receive and a send) can cost on this host.
	Own time.Duration
	// HostBusy is how many of the host's CPUs were busy on average during
	// the step, with everything: sender, receiver, relays, the kernel's
	// forwarding, other programs. Near runtime.NumCPU() the machine, not
	// any one relay, is the limit.
	HostBusy float64
	// Rounds is how many interleaved rounds the step was pooled from
	// (measureRounds); 0 for a step run in one piece.
	Rounds int
}

// Delivered is the fraction of the datagrams sent that arrived.
func (s stepResult) Delivered() float64 {
	n := s.Send.Sent + s.Send.Errors
	if n == 0 {
		return 0
	}
	return float64(s.Recv.Got) / float64(n)
}

// Achieved is the rate the sender managed.
func (s stepResult) Achieved() float64 { return s.Send.Rate() }

// senderLimited reports whether the sender fell short of the offered rate:
// then the step measured the sender, not the path.
func (s stepResult) senderLimited() bool { return s.Achieved() < keepsPace*s.Offered }

// CPUPerDatagram is the CPU time all relays of the path spent per datagram
// sent, in seconds, from schedstat; ok is false for a path without relays.
func (s stepResult) CPUPerDatagram() (sec float64, ok bool) {
	if len(s.CPU) == 0 || s.Send.Sent == 0 {
		return 0, false
	}
	var t cpuDelta
	for _, c := range s.CPU {
		t = t.add(c)
	}
	return float64(t.RunNS) / 1e9 / float64(s.Send.Sent), true
}

// runner runs steps, numbering them so that late datagrams of one step are
// not counted in the next.
type runner struct {
	step  uint32
	quiet time.Duration // how long the receiver may stay silent before a step ends
	idle  []relay       // every relay running, to tell CPU time used by the benchmark from the rest
	// waitBudget is how long, over the whole run, steps may wait for other
	// programs to leave the CPUs alone (see waitQuiet).
	waitBudget time.Duration
	trace      func(format string, args ...any)
}

// run offers rate datagrams/s on p for d and waits for the tail to arrive.
func (rn *runner) run(p *path, rate float64, d time.Duration, latency bool) (stepResult, error) {
	rn.waitQuiet()
	rn.step++
	n := max(1, int(rate*d.Seconds()))
	res := stepResult{Offered: rate}
	before := make([]procSample, len(p.relays))
	for i, r := range p.relays {
		s, err := r.sample()
		if err != nil {
			return res, err
		}
		before[i] = s
	}
	h0, err := readHostCPU()
	if err != nil {
		return res, err
	}
	own0 := ownTicks()
	self0 := selfCPU()
	idle0 := make([]uint64, len(rn.idle))
	for i, r := range rn.idle {
		if s, err := r.sample(); err == nil {
			idle0[i] = s.Ticks
		}
	}
	t0 := time.Now()
	p.rcv.begin(rn.step, n, latency)
	res.Send = p.snd.run(rn.step, rate, n, 2*d+time.Second)
	p.rcv.settle(res.Send.Sent, rn.quiet, 2*time.Second)
	res.Recv = p.rcv.end()
	res.Wall = time.Since(t0)
	ours := ownTicks() - own0
	res.Own = selfCPU() - self0
	for i, r := range p.relays {
		s, err := r.sample()
		if err != nil {
			return res, err
		}
		res.CPU = append(res.CPU, s.sub(before[i]))
		if r.inProcess() {
			res.Own -= time.Duration(res.CPU[i].RunNS)
		} else {
			ours += res.CPU[i].Ticks
		}
		if err := r.check(); err != nil {
			return res, err
		}
	}
	for i, r := range rn.idle {
		// Relays that are not on this path idle along: theirs is ours too.
		if s, err := r.sample(); err == nil && !r.inProcess() && !slices.Contains(p.relays, r) {
			ours += s.Ticks - idle0[i]
		}
	}
	if h1, err := readHostCPU(); err == nil && h1.Total > h0.Total {
		busy := h1.Busy - h0.Busy
		res.HostBusy = float64(busy) / float64(h1.Total-h0.Total) * float64(runtime.NumCPU())
		res.Foreign = max(0, float64(busy)-float64(ours)) / float64(h1.Total-h0.Total)
	}
	if rn.trace != nil {
		cpu := "-"
		if c, ok := res.CPUPerDatagram(); ok {
			per := float64(max(1, res.Send.Sent))
			cpu = fmt.Sprintf("%.1f µs/dgram (", c*1e6)
			for i, d := range res.CPU {
				if i > 0 {
					cpu += " + "
				}
				cpu += fmt.Sprintf("%.1f µs %.1f sw, waited %.0f ms/s", float64(d.RunNS)/1e3/per, float64(d.Switches)/per,
					float64(d.WaitNS)/1e6/res.Wall.Seconds())
			}
			cpu += ")"
		}
		rn.trace("  %-8s offered %7.0f/s sent %7.0f/s delivered %7.3f %%  dup %d stale %d  relay CPU %s  bench CPU %.1f µs/dgram  CPUs busy %.2f  other load %.0f %%",
			p.name, rate, res.Achieved(), 100*res.Delivered(), res.Recv.Dup, res.Recv.Stale, cpu,
			float64(res.Own.Nanoseconds())/1e3/float64(max(1, res.Send.Sent)), res.HostBusy, 100*res.Foreign)
	}
	return res, nil
}

// Waiting for a quiet host: before a step, other programs may use at most
// quietShare of the CPUs over quietProbe; a step waits at most quietMax.
const (
	quietShare = 0.15
	quietProbe = 200 * time.Millisecond
	quietMax   = 5 * time.Second
)

// waitQuiet delays the next step while other programs (a compiler, another
// test run) keep the CPUs busy, within the runner's wait budget, so that the
// step measures the relay and not the neighbours. Steps still record the
// other load they met (stepResult.Foreign).
func (rn *runner) waitQuiet() {
	start := time.Now()
	for rn.waitBudget > 0 && time.Since(start) < quietMax {
		h0, err := readHostCPU()
		if err != nil {
			return
		}
		ours := ownTicks()
		for _, r := range rn.idle {
			if s, err := r.sample(); err == nil && !r.inProcess() {
				ours += s.Ticks
			}
		}
		time.Sleep(quietProbe)
		h1, err := readHostCPU()
		if err != nil || h1.Total <= h0.Total {
			return
		}
		ours = ownTicks() - ours
		for _, r := range rn.idle {
			if s, err := r.sample(); err == nil && !r.inProcess() {
				ours += s.Ticks
			}
		}
		foreign := (float64(h1.Busy-h0.Busy) - float64(ours)) / float64(h1.Total-h0.Total)
		if foreign < quietShare {
			break
		}
		if rn.trace != nil && time.Since(start) < quietProbe*2 {
			rn.trace("  waiting for other programs to leave the CPUs (%.0f %% busy)", 100*foreign)
		}
	}
	if waited := time.Since(start); rn.waitBudget > 0 {
		rn.waitBudget -= waited
	}
}

// keepsPace is the share of the offered rate a sender must achieve for a
// step to have measured the path rather than the sender.
const keepsPace = 0.95

// ceiling finds the sender's limit on p: it offers the rates in turn, each
// for d, until the sender achieves less than keepsPace of one, and returns
// the highest rate it achieved and every step. Bounded: len(rates) steps.
func (rn *runner) ceiling(p *path, rates []float64, d, pause time.Duration) (float64, []stepResult, error) {
	var best float64
	var steps []stepResult
	for _, rate := range rates {
		s, err := rn.run(p, rate, d, false)
		if err != nil {
			return 0, steps, err
		}
		steps = append(steps, s)
		best = max(best, s.Achieved())
		time.Sleep(pause)
		if s.Achieved() < keepsPace*rate {
			break
		}
	}
	return best, steps, nil
}

// latencyStats are percentiles of one-way latencies.
type latencyStats struct {
	N                  int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
	ok                 bool
}

func latencies(ns []int64) latencyStats {
	if len(ns) == 0 {
		return latencyStats{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	q := func(p float64) time.Duration { return time.Duration(s[min(len(s)-1, int(p*float64(len(s))))]) }
	var sum int64
	for _, v := range s {
		sum += v
	}
	return latencyStats{
		N: len(s), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: time.Duration(s[len(s)-1]),
		Mean: time.Duration(sum / int64(len(s))), ok: true,
	}
}
