// Package ratelimit bounds how many packets per second each source may push
// through the relay, so that one misbehaving client (or peer) cannot turn
// the mesh into an amplifier: every captured broadcast is sent to every peer
// and re-broadcast on every segment.
//
// A Limiter keeps a token bucket per source address in a fixed-size table.
// The outbound filter stage keys it by the IP source of the captured frame
// (a client), the inbound rewrite stage by the mesh datagram's source (a
// peer relay). Memory is bounded whatever the number of sources: the table
// is set-associative (a source hashes to one set of a few entries), and a
// new source takes the entry of its set that was seen least recently.
// Forgetting that entry loses little: the longer a source has been idle,
// the fuller its bucket has grown, and a new entry starts full anyway. So
// churn (many sources, some spoofed) can only make the limit more lenient
// for a source whose entry is evicted, never drop a well-behaved source.
//
// The hot path allocates nothing and reads the clock once per batch: the
// stage calls Now when a batch arrives and passes the result to Allow for
// each packet. A per-source limit cannot stop a flood from spoofed,
// ever-changing source addresses; the bounded, dropping link behind each
// socket reader (pipeline.QueueReaderSize) is what bounds that.
package ratelimit

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/snowsignal/snowsignal/stages/shared/splitmix"
)

// MinBurst is the smallest bucket: a source may always send this many
// packets back to back, however low the rate. EPICS clients search for all
// their channels at once when they start (pvAccess and Channel Access pack
// dozens of names per datagram), so a burst of 128 datagrams lets a client
// connecting thousands of channels through, and it covers two full batches
// (pipeline.MaxBatch) of a reader.
const MinBurst = 128

// DefaultSize is the number of sources a Limiter tracks by default: 4096
// entries of 32 bytes, 128 KiB per limiter.
const DefaultSize = 4096

// MaxRate is the highest rate accepted, in packets per second: far above
// what one relay forwards, and low enough that a token costs at least
// 100 ns, so integer nanosecond arithmetic stays exact enough.
const MaxRate = 10_000_000

// ways is the number of entries per set. Eight keeps the search for a key a
// short scan of one or two cache lines, and eviction close to true LRU.
const ways = 8

// Config describes a Limiter.
type Config struct {
	// Rate is how many packets per second a source may send, sustained;
	// 1 to MaxRate.
	Rate int
	// Burst is how many packets a source may send back to back after being
	// idle. Zero means max(Rate, MinBurst).
	Burst int
	// Size is how many sources are tracked at once; zero means DefaultSize.
	// It is rounded up to a power of two, at least 8.
	Size int
	// Clock returns monotonic nanoseconds. Nil means time elapsed since New,
	// read from Go's monotonic clock, so wall-clock steps (NTP, an operator
	// setting the date) neither refill nor freeze the buckets. Tests inject
	// their own.
	Clock func() int64
}

// A Limiter holds one token bucket per source. Now and Allow must be called
// from one goroutine (the stage that owns the limiter); Sources and Dropped
// may be called from any goroutine at the same time.
type Limiter struct {
	cost    int64 // nanoseconds of refill per token: 1e9/Rate
	max     int64 // bucket capacity in nanoseconds: Burst tokens
	rate    int
	burst   int
	clock   func() int64
	seed    uint64
	setMask uint64
	entries []entry

	dropped atomic.Uint64
	evicted atomic.Uint64
}

// entry is one source's bucket. The key and the drop count are atomic
// because Sources reads them from another goroutine; tokens and last are
// only touched by the owning stage.
type entry struct {
	key     atomic.Uint64 // 0: free; else 1<<32 | IPv4 address, or an IPv6 address's hash (keyOf)
	dropped atomic.Uint64 // packets of this source dropped since it took the entry
	// hi and lo are an IPv6 source's address, for Sources (the key is a
	// hash); written before the key is published.
	hi, lo atomic.Uint64
	tokens int64 // credit in nanoseconds; a packet costs Limiter.cost
	last   int64 // when the source was last seen, clock nanoseconds
}

// New returns a Limiter, or an error naming the field of cfg at fault.
func New(cfg Config) (*Limiter, error) {
	if cfg.Rate < 1 || cfg.Rate > MaxRate {
		return nil, fmt.Errorf("ratelimit: rate %d packets/s is out of range (allowed: 1 to %d)", cfg.Rate, MaxRate)
	}
	burst := cfg.Burst
	if burst == 0 {
		burst = max(cfg.Rate, MinBurst)
	}
	if burst < 1 || burst > MaxRate {
		return nil, fmt.Errorf("ratelimit: burst %d is out of range (allowed: 1 to %d)", burst, MaxRate)
	}
	size := cfg.Size
	if size == 0 {
		size = DefaultSize
	}
	if size < 0 || size > 1<<24 {
		return nil, errors.New("ratelimit: size out of range (allowed: 1 to 16777216)")
	}
	sets := 1
	for sets*ways < size {
		sets <<= 1
	}
	clock := cfg.Clock
	if clock == nil {
		start := time.Now()
		clock = func() int64 { return int64(time.Since(start)) }
	}
	cost := int64(time.Second) / int64(cfg.Rate)
	return &Limiter{
		cost: cost, max: int64(burst) * cost, rate: cfg.Rate, burst: burst, clock: clock,
		// A random seed keeps senders from aiming many sources at one set.
		seed: rand.Uint64(), setMask: uint64(sets - 1), entries: make([]entry, sets*ways),
	}, nil
}

// Rate is the sustained rate in packets per second.
func (l *Limiter) Rate() int { return l.rate }

// Burst is the bucket size in packets.
func (l *Limiter) Burst() int { return l.burst }

// Size is the number of sources tracked at once.
func (l *Limiter) Size() int { return len(l.entries) }

// Now reads the limiter's clock. Call it once per batch and pass the result
// to Allow for each packet of the batch.
func (l *Limiter) Now() int64 { return l.clock() }

// Allow takes a token from src's bucket at time now (from Now) and reports
// whether there was one. A source not in the table takes the entry of its set
// seen least recently, with a full bucket. IPv6 sources (--ipv6) have
// buckets of their own as IPv4 ones do.
func (l *Limiter) Allow(now int64, src netip.Addr) bool {
	k := keyOf(src)
	base := int(splitmix.Mix(k^l.seed)&l.setMask) * ways
	set := l.entries[base : base+ways : base+ways]
	var victim *entry
	var victimKey uint64
	for i := range set {
		e := &set[i]
		ek := e.key.Load()
		if ek == k {
			return l.take(e, now)
		}
		// Prefer a free entry, then the one seen least recently.
		if victim == nil || victimKey != 0 && (ek == 0 || e.last < victim.last) {
			victim, victimKey = e, ek
		}
	}
	if victimKey != 0 {
		l.evicted.Add(1)
	}
	// Reset the count before publishing the key, so Sources never credits
	// the old source's drops to the new one (it re-reads the key).
	victim.dropped.Store(0)
	if a := src.Unmap(); a.Is6() {
		b := a.As16()
		victim.hi.Store(binary.BigEndian.Uint64(b[:8]))
		victim.lo.Store(binary.BigEndian.Uint64(b[8:]))
	}
	victim.key.Store(k)
	victim.tokens, victim.last = l.max, now
	return l.take(victim, now)
}

// take refills e for the time since it was last seen and spends a token.
func (l *Limiter) take(e *entry, now int64) bool {
	if d := now - e.last; d > 0 {
		e.tokens = min(e.tokens+d, l.max)
	}
	e.last = max(e.last, now)
	if e.tokens < l.cost {
		e.dropped.Add(1)
		l.dropped.Add(1)
		return false
	}
	e.tokens -= l.cost
	return true
}

// Dropped is the number of packets refused since New, over all sources.
func (l *Limiter) Dropped() uint64 { return l.dropped.Load() }

// Evicted is the number of times a source lost its entry to another source.
// A steady rise means the table is smaller than the set of active sources.
func (l *Limiter) Evicted() uint64 { return l.evicted.Load() }

// Source is one tracked source's drop count.
type Source struct {
	Addr    netip.Addr `json:"addr"`
	Dropped uint64     `json:"dropped"`
}

// Sources returns the tracked sources that had packets dropped, most drops
// first. A source's count restarts from zero when it loses its entry, so
// Dropped, not the sum of these, is the total.
func (l *Limiter) Sources() []Source {
	var out []Source
	for i := range l.entries {
		e := &l.entries[i]
		k := e.key.Load()
		d := e.dropped.Load()
		if k == 0 || d == 0 || e.key.Load() != k {
			continue // free, clean, or taken over while we read it
		}
		if k&key6 != 0 {
			var a [16]byte
			binary.BigEndian.PutUint64(a[:8], e.hi.Load())
			binary.BigEndian.PutUint64(a[8:], e.lo.Load())
			if e.key.Load() != k {
				continue // taken over while we read the address
			}
			out = append(out, Source{Addr: netip.AddrFrom16(a), Dropped: d})
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(k))
		out = append(out, Source{Addr: netip.AddrFrom4(a), Dropped: d})
	}
	slices.SortFunc(out, func(a, b Source) int {
		if c := cmp.Compare(b.Dropped, a.Dropped); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// key6 marks the key of an IPv6 source: IPv4 keys stay below 1<<33.
const key6 = 1 << 63

// keyOf maps an address to a non-zero table key: 1<<32 | the address for
// IPv4, and for IPv6 key6 | 63 bits of a hash of the address (two sources
// share a bucket only on a 63-bit collision).
func keyOf(a netip.Addr) uint64 {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		h := splitmix.Mix(binary.BigEndian.Uint64(b[:8]) ^ splitmix.Mix(binary.BigEndian.Uint64(b[8:])))
		return key6 | h>>1
	}
	if !a.Is4() {
		return 1 << 32 // shares the key of 0.0.0.0, which no valid source has
	}
	b := a.As4()
	return 1<<32 | uint64(binary.BigEndian.Uint32(b[:]))
}
