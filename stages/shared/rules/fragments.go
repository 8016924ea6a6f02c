package rules

import (
	"net/netip"

	"github.com/snowsignal/snowsignal/netio/frame"
)

// Fragments remembers datagrams whose first fragment was relayed, so their
// later fragments, which carry no UDP header and so no port, can be matched
// to them. It is used by one goroutine and bounded in size.
type Fragments struct {
	m    map[fragID]int64 // expiry, unix ns
	ring []fragID
	next int
}

// fragID ties a fragment to its datagram: the 16-bit IPv4 identification or
// the 32-bit IPv6 one (frame.FragmentID); the addresses tell the families
// apart.
type fragID struct {
	src, dst netip.Addr
	id       uint32
}

// NewFragments returns a tracker for up to size datagrams at a time.
func NewFragments(size int) *Fragments {
	return &Fragments{m: make(map[fragID]int64, size), ring: make([]fragID, size)}
}

// Add starts following the datagram f is the first fragment of, until exp.
func (t *Fragments) Add(exp int64, f *frame.Frame) {
	id := fragID{f.Src, f.Dst, f.FragmentID()}
	if _, ok := t.m[id]; !ok {
		// Overwrite the oldest slot: bounded memory beats following a
		// thousand-and-first concurrent fragmented datagram.
		delete(t.m, t.ring[t.next])
		t.ring[t.next] = id
		t.next = (t.next + 1) % len(t.ring)
	}
	t.m[id] = exp
}

// Match reports whether f is a later fragment of a datagram being followed.
func (t *Fragments) Match(now int64, f *frame.Frame) bool {
	exp, ok := t.m[fragID{f.Src, f.Dst, f.FragmentID()}]
	return ok && exp > now
}
