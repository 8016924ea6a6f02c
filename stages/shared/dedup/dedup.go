// Package dedup suppresses loops and duplicate deliveries in a mesh with any
// number of relays per segment.
//
// Every datagram is identified by a 64-bit hash of what stays the same from
// end to end: IP source and destination, UDP ports and payload, but not TTL,
// IP ID, checksums or MAC addresses, which relays change (netio/frame.Key).
// The cache remembers each key for a window (--dedup-window) together with
// how this relay met it:
//
//   - captured: a client on our segment sent it. A mesh copy of it arriving
//     later (from another relay on our segment that captured it too) is a
//     duplicate and is never injected back onto the segment it came from.
//   - injected: it came over the mesh and we put it on our segment. A second
//     mesh copy (several relays on the origin segment forwarded it) is a
//     duplicate; capturing it on our segment (another relay on our segment
//     injected it too) is a loop and is not forwarded again.
//
// A client that sends the same datagram again is forwarded again by the
// relays on its segment (only injected frames are loops there), but the
// receiving relays treat a copy within the window as a duplicate: end to
// end, a repeat within the window is suppressed, and once the window has
// passed it is relayed again. Memory is
// bounded: entries expire in insertion order from a ring, and when the ring is
// full the oldest entry is evicted early.
package dedup

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWindow is long enough to cover a mesh round trip with queueing and
// short enough that EPICS clients' retries (tens to hundreds of ms apart)
// that follow a lost first search are still relayed.
const DefaultWindow = 250 * time.Millisecond

// DefaultSize bounds the number of keys remembered: 50k datagrams/s during a
// 250 ms window is 12.5k keys. Above that rate the oldest keys leave early
// (counted in Evicted). The map and ring are allocated whole at start, about
// 1 MiB; four times this cost 3.5 MiB of every relay's memory for rates a
// relay on one core does not reach.
const DefaultSize = 1 << 14

type state uint8

const (
	captured state = 1 << iota
	injected
)

type entry struct {
	exp int64 // unix nanoseconds
	st  state
}

type slot struct {
	key uint64
	exp int64
}

// A Cache is safe for concurrent use by the outbound and inbound pipelines.
type Cache struct {
	window int64

	mu   sync.Mutex
	m    map[uint64]entry
	ring []slot
	head int // oldest
	n    int

	// Evicted counts entries dropped before their window ended because the
	// cache was full.
	Evicted atomic.Uint64
}

// New returns a cache remembering keys for window, at most size at a time.
func New(window time.Duration, size int) *Cache {
	if size < 1 {
		size = 1
	}
	return &Cache{window: int64(window), m: make(map[uint64]entry, size), ring: make([]slot, size)}
}

// Window is how long a key is remembered.
func (c *Cache) Window() time.Duration { return time.Duration(c.window) }

// Captured records a datagram captured on our segment at now (unix ns) and
// reports whether to forward it to the mesh: false when it is one we, or
// another relay on our segment, injected within the window.
func (c *Cache) Captured(now int64, key uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	e, ok := c.m[key]
	if ok && e.st&injected != 0 {
		return false
	}
	c.put(now, key, e.st|captured)
	return true
}

// Received records a datagram that arrived over the mesh at now and reports
// whether to inject it: false when it was captured on our segment or already
// injected within the window.
func (c *Cache) Received(now int64, key uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if _, ok := c.m[key]; ok {
		return false
	}
	c.put(now, key, injected)
	return true
}

// Len is the number of keys remembered.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *Cache) put(now int64, key uint64, st state) {
	exp := now + c.window
	if c.n == len(c.ring) {
		c.pop()
		c.Evicted.Add(1)
	}
	c.ring[(c.head+c.n)%len(c.ring)] = slot{key: key, exp: exp}
	c.n++
	c.m[key] = entry{exp: exp, st: st}
}

// expire forgets keys whose window has passed. Slots leave the ring in the
// order they entered it, which is expiry order because the window is fixed.
func (c *Cache) expire(now int64) {
	for c.n > 0 && c.ring[c.head].exp <= now {
		c.pop()
	}
}

func (c *Cache) pop() {
	s := c.ring[c.head]
	c.head = (c.head + 1) % len(c.ring)
	c.n--
	// A refreshed key has a newer slot further on: only its last slot deletes it.
	if e, ok := c.m[s.key]; ok && e.exp == s.exp {
		delete(c.m, s.key)
	}
}
