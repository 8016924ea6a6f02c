package pipeline

import "time"

// A ShedPolicy says which packets the last stage of a direction (fanout,
// inject) drops just before it sends, by how long ago the kernel received
// each one (Packet.Stamp). A packet without a stamp is never dropped.
type ShedPolicy struct {
	// MaxDelay drops, as stale, every packet older than this; 0 never does.
	MaxDelay time.Duration
	// Target and Interval bound a standing queue the way CoDel does (RFC
	// 8289): once every packet the stage sent for a whole Interval had
	// waited longer than Target, the relay receives more than it can send,
	// and from then on packets older than Target are dropped as overload,
	// until one no older is sent an Interval after the last that was. A
	// burst that drains within an Interval is carried whole. Time in which
	// the stage sends nothing (it was idle, or stopped) counts for
	// neither. Target 0 turns this off; with Interval 0 a queue over
	// Target stands at once.
	Target, Interval time.Duration
}

// A Shedder applies a ShedPolicy batch by batch. It keeps the state of one
// stage's queue, so it belongs to that stage alone.
type Shedder struct {
	maxDelay, target, interval int64 // ns
	m                          *Metrics

	// aboveSince is when the packets sent began to be older than target, 0
	// while the last one was not; overloaded is true from the Interval
	// after that until a packet within target comes an Interval after
	// lastAbove, when the last packet older than target was seen.
	aboveSince, lastAbove int64
	overloaded            bool
}

// NewShedder returns a Shedder for p that counts its drops in m.
func NewShedder(p ShedPolicy, m *Metrics) *Shedder {
	s := &Shedder{maxDelay: int64(p.MaxDelay), target: int64(p.Target), interval: int64(p.Interval), m: m}
	if s.target > 0 && s.interval <= 0 {
		s.interval = 1 // a queue over target is a standing one at once
	}
	return s
}

// Shed drops from b the packets the policy sheds and counts them (stale,
// overload). It reads the clock once: a stage calls it for each batch,
// just before sending, where a frame that is already late makes every
// frame behind it later, while a client whose search goes unanswered
// searches again.
func (s *Shedder) Shed(b *Batch) {
	if s.maxDelay <= 0 && s.target <= 0 {
		return
	}
	stale, overload := s.shed(b, time.Now().UnixNano())
	if stale > 0 {
		s.m.Drop(ReasonStale, stale)
	}
	if overload > 0 {
		s.m.Drop(ReasonOverload, overload)
	}
}

// shed is Shed at the time now (as time.Now().UnixNano()), returning what
// it dropped. Order is kept and every buffer stays in the batch, as with
// Batch.Keep.
func (s *Shedder) shed(b *Batch, now int64) (stale, overload int) {
	n := 0
	for i := range b.Pkts {
		if st := b.Pkts[i].Stamp; st != 0 {
			age := now - st
			if s.target > 0 {
				s.observe(age, now)
			}
			if s.maxDelay > 0 && age > s.maxDelay {
				stale++
				continue
			}
			if s.overloaded && age > s.target {
				overload++
				continue
			}
		}
		if i != n {
			b.Pkts[n], b.Pkts[i] = b.Pkts[i], b.Pkts[n]
		}
		n++
	}
	b.Pkts = b.Pkts[:n]
	return stale, overload
}

// observe updates the queue's state for a packet sent at now that waited
// age: the sojourn time CoDel measures.
func (s *Shedder) observe(age, now int64) {
	if age <= s.target {
		s.aboveSince = 0
		// Ended only by a packet within target: one older, after a pause,
		// is the same queue, still standing (a stopped or throttled relay).
		if s.overloaded && now-s.lastAbove > s.interval {
			s.overloaded = false
		}
		return
	}
	s.lastAbove = now
	switch {
	case s.overloaded:
	case s.aboveSince == 0:
		s.aboveSince = now
	case now-s.aboveSince >= s.interval:
		s.overloaded = true
	}
}

// Overloaded reports whether the stage is shedding a standing queue. It is
// for the stage's own goroutine and tests, like the rest of the Shedder.
func (s *Shedder) Overloaded() bool { return s.overloaded }
