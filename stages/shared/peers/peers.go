// Package peers holds the relay's current peer set: the relays its fan-out
// sends to and its listener accepts mesh datagrams from.
//
// The set is replaced as a whole (copy on write) by discovery and read
// lock-free by the hot path, once per batch. A Peer's counters live as long
// as the peer stays in the set, so a re-resolution that keeps a peer keeps its
// history.
package peers

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
)

// A Peer is one other relay, reached at Addr.
type Peer struct {
	// Addr is the peer's mesh address.
	Addr    netip.AddrPort
	sources atomic.Pointer[string]
	// FirstSeen is when the peer joined the set.
	FirstSeen time.Time

	TxPackets atomic.Uint64 // mesh datagrams sent to the peer
	TxBytes   atomic.Uint64
	TxErrors  atomic.Uint64 // sends the kernel refused (e.g. after ICMP port unreachable)
	RxPackets atomic.Uint64 // mesh datagrams received from the peer
	RxBytes   atomic.Uint64
	// Withheld6 counts IPv6 frames not sent to the peer because it has not
	// announced the ipv6 capability (a legacy relay, or one not heard yet).
	// They are not drops: the frame still went to the peers that can take it.
	Withheld6 atomic.Uint64
	lastHeard atomic.Int64 // unix nanoseconds

	// The peer's capabilities, from its last capabilities datagram
	// (docs/MESH-PROTOCOL.md): caps holds them with capsKnown set, capsUntil
	// is when they expire (unix ns). Written by the inbound stage, read by
	// the fan-out once per frame and peer.
	caps      atomic.Uint32
	capsUntil atomic.Int64
	capsHeard atomic.Int64 // unix ns of the last announcement
}

// capsKnown marks Peer.caps as set by an announcement.
const capsKnown = 1 << 8

// Sources says where the peer came from: "static", "self" or the
// discovered DNS name; joined with "," when several.
func (p *Peer) Sources() string {
	if s := p.sources.Load(); s != nil {
		return *s
	}
	return ""
}

// Heard records a datagram of n bytes received from the peer at now.
func (p *Peer) Heard(now int64, n int) {
	p.RxPackets.Add(1)
	p.RxBytes.Add(uint64(n))
	p.lastHeard.Store(now)
}

// LastHeard is when a datagram last arrived from the peer; zero if never.
func (p *Peer) LastHeard() time.Time {
	if ns := p.lastHeard.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SetCaps records the capabilities c the peer announced at now (unix ns),
// valid until until.
func (p *Peer) SetCaps(c mesh.Caps, now, until int64) {
	p.caps.Store(uint32(c) | capsKnown)
	p.capsUntil.Store(until)
	p.capsHeard.Store(now)
}

// Caps returns the capabilities the peer announced, if they have not expired
// at now (unix ns); none for a peer that never announced (a legacy relay).
func (p *Peer) Caps(now int64) mesh.Caps {
	if now >= p.capsUntil.Load() {
		return 0
	}
	return mesh.Caps(p.caps.Load())
}

// CapsKnown reports the peer's capabilities at now and whether they are
// current: false for a peer that never announced or whose announcement
// expired.
func (p *Peer) CapsKnown(now int64) (mesh.Caps, bool) {
	if now >= p.capsUntil.Load() || p.caps.Load()&capsKnown == 0 {
		return 0, false
	}
	return mesh.Caps(p.caps.Load()), true
}

// CapsHeard is when the peer last announced its capabilities; zero if never.
func (p *Peer) CapsHeard() time.Time {
	if ns := p.capsHeard.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// A Set is an immutable snapshot of the peers.
type Set struct {
	// Peers lists the peers in address order.
	Peers []*Peer
	// Self reports self mode: no peer was configured, so the relay sends to
	// its own interface address, as the Python relay does "for testing".
	Self   bool
	byAddr map[netip.Addr]*Peer
}

// Lookup returns the peer with IP address a, or nil.
func (s *Set) Lookup(a netip.Addr) *Peer { return s.byAddr[a] }

// Addrs lists the peers' mesh addresses.
func (s *Set) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.Peers))
	for i, p := range s.Peers {
		out[i] = p.Addr
	}
	return out
}

// A Table publishes the current Set.
type Table struct {
	cur atomic.Pointer[Set]
}

// NewTable returns a table holding an empty set.
func NewTable() *Table {
	t := &Table{}
	t.cur.Store(&Set{byAddr: map[netip.Addr]*Peer{}})
	return t
}

// Load returns the current set. It never returns nil.
func (t *Table) Load() *Set { return t.cur.Load() }

// Update replaces the set with the given addresses and where each came from,
// keeping the Peer (and its counters) of every address already present. It
// returns the addresses that joined and left.
func (t *Table) Update(addrs map[netip.AddrPort]string, self bool, now time.Time) (joined, left []netip.AddrPort) {
	old := t.Load()
	next := &Set{Self: self, byAddr: make(map[netip.Addr]*Peer, len(addrs))}
	for a, src := range addrs {
		p := old.byAddr[a.Addr()]
		if p == nil || p.Addr != a {
			p = &Peer{Addr: a, FirstSeen: now}
			joined = append(joined, a)
		}
		if p.Sources() != src {
			p.sources.Store(&src)
		}
		next.Peers = append(next.Peers, p)
		next.byAddr[a.Addr()] = p
	}
	for _, p := range old.Peers {
		if q := next.byAddr[p.Addr.Addr()]; q == nil || q.Addr != p.Addr {
			left = append(left, p.Addr)
		}
	}
	slices.SortFunc(next.Peers, func(a, b *Peer) int { return a.Addr.Compare(b.Addr) })
	slices.SortFunc(joined, netip.AddrPort.Compare)
	slices.SortFunc(left, netip.AddrPort.Compare)
	t.cur.Store(next)
	return joined, left
}
