package insight

import (
	"cmp"
	"slices"
)

// buckets is how many time slices a window is cut into. Counts older than
// the window leave one slice at a time, so "the last minute" is between 50
// and 60 seconds with a one-minute window.
const buckets = 6

// probe is how many slots a key may sit away from its home slot. A new key
// that finds no free slot among them replaces the one with the fewest
// counts in the window: lookups and insertions cost O(probe), never a scan.
const probe = 8

// maxKeyLen bounds the bytes stored per key; longer names (no real PV name
// is this long) are stored cut, and told apart by their hash.
const maxKeyLen = 256

// entry is one key's counts in the window's slices.
type entry struct {
	key    string // empty: a free slot
	hash   uint64
	last   int64 // the slice number of the newest count
	counts [buckets]uint32
}

// sum is the entry's count over the window ending with slice now.
func (e *entry) sum(now int64) uint64 {
	if e.key == "" || e.last <= now-buckets {
		return 0
	}
	var n uint64
	for i := max(e.last-buckets+1, now-buckets+1, 0); i <= e.last; i++ {
		n += uint64(e.counts[i%buckets])
	}
	return n
}

// advance moves the entry to slice now, clearing the slices that left the
// window since its last count.
func (e *entry) advance(now int64) {
	if now <= e.last {
		return
	}
	if now-e.last >= buckets {
		e.counts = [buckets]uint32{}
	} else {
		for i := e.last + 1; i <= now; i++ {
			e.counts[i%buckets] = 0
		}
	}
	e.last = now
}

// A table counts keys (PV names, client addresses) over a sliding window in
// a fixed number of slots: memory is bounded whatever the traffic, and
// counting a key already present allocates nothing. It is approximate the
// way Space-Saving is: under more distinct keys than slots, rarely seen keys
// replace each other, and a key replaced and seen again starts from zero,
// while frequent keys stay. It is not safe for concurrent use.
type table struct {
	slots   []entry
	mask    uint64
	evicted uint64
}

// newTable returns a table of at least size slots (a power of two).
func newTable(size int) *table {
	n := probe
	for n < size {
		n <<= 1
	}
	return &table{slots: make([]entry, n), mask: uint64(n - 1)}
}

// add counts key, whose hash is h, n times in slice now. It allocates only
// when the key is new to the table.
func (t *table) add(h uint64, key []byte, now int64, n uint32) {
	if len(key) > maxKeyLen {
		key = key[:maxKeyLen]
	}
	var victim *entry
	var victimSum uint64
	for i := range uint64(probe) {
		e := &t.slots[(h+i)&t.mask]
		if e.key == "" {
			victim = e
			break
		}
		if e.hash == h && e.key == string(key) {
			e.advance(now)
			e.counts[now%buckets] += n
			return
		}
		if s := e.sum(now); victim == nil || s < victimSum || (s == victimSum && e.last < victim.last) {
			victim, victimSum = e, s
		}
	}
	if victim.key != "" {
		t.evicted++
	}
	*victim = entry{key: string(key), hash: h, last: now}
	victim.counts[now%buckets] = n
}

// Top is one entry of a top list.
type Top struct {
	// Name is the PV name, or the client's address.
	Name string `json:"name"`
	// Count is how often it was seen in the window.
	Count uint64 `json:"count"`
}

// top returns the k keys counted most in the window ending with slice now,
// most first (ties by name), each key passed through name.
func (t *table) top(now int64, k int, name func(string) string) []Top {
	var out []Top
	for i := range t.slots {
		if s := t.slots[i].sum(now); s > 0 {
			out = append(out, Top{Name: name(t.slots[i].key), Count: s})
		}
	}
	slices.SortFunc(out, func(a, b Top) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(out) > k {
		out = out[:k:k]
	}
	return out
}

// len is the number of keys held.
func (t *table) len() int {
	n := 0
	for i := range t.slots {
		if t.slots[i].key != "" {
			n++
		}
	}
	return n
}
