// Package segment lets several relays share one segment without delivering
// a broadcast more than once.
//
// Every relay broadcasts a small hello on its segment to the mesh port every
// interval. Relays hear the hellos of the relays in their own broadcast
// domain (their neighbours) and of no others, because broadcasts stop at the
// segment's edge: that is exactly the set that would otherwise inject the same
// datagram twice. Two rules follow:
//
//   - a mesh datagram from a neighbour carries a frame captured on our own
//     segment, so it is never injected here;
//   - of the relays on a segment, exactly one injects a given datagram: the
//     one whose address scores highest for the datagram's key (rendezvous
//     hashing), which spreads the work and needs no election messages. When a
//     neighbour falls silent for Expiry, the others take over its share.
//
// Hellos use the mesh port, never a broadcast port, so EPICS servers do not
// see them, and Python relays (whose mesh socket is bound to a unicast
// address) never receive them.
package segment

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/stages/shared/splitmix"
)

// HelloMagic starts a hello body.
const HelloMagic = "SH"

// HelloLen is the length of a hello body: magic (2), version (1), flags (1),
// relay id (4), the MAC address the relay injects with (6), padding (2).
const HelloLen = 16

// helloVersion is the hello body format version.
const helloVersion = 1

// PutHello writes a hello body for relay id, injecting with mac, into b,
// which must hold HelloLen bytes, and returns the body.
func PutHello(b []byte, id uint32, mac [6]byte) []byte {
	b = b[:HelloLen]
	clear(b)
	copy(b, HelloMagic)
	b[2] = helloVersion
	b[4], b[5], b[6], b[7] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	copy(b[8:14], mac[:])
	return b
}

// PutHelloCaps writes a hello body as PutHello does, announcing caps in its
// flags byte (mesh.SetHelloCaps): relays that predate it send 0 there and
// ignore it.
func PutHelloCaps(b []byte, id uint32, mac [6]byte, caps mesh.Caps) []byte {
	b = PutHello(b, id, mac)
	mesh.SetHelloCaps(b, caps)
	return b
}

// ParseHello reports whether b is a hello body, which relay sent it and the
// MAC address its injected frames carry.
func ParseHello(b []byte) (id uint32, mac [6]byte, ok bool) {
	if len(b) < HelloLen || string(b[:2]) != HelloMagic || b[2] != helloVersion {
		return 0, mac, false
	}
	copy(mac[:], b[8:14])
	return uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]), mac, true
}

// IsHello reports whether b starts like a hello body. A relayed frame never
// does: it starts with the broadcast MAC ff:ff.
func IsHello(b []byte) bool { return len(b) >= 2 && string(b[:2]) == HelloMagic }

// A Table knows this relay's neighbours: the relays on its segment.
type Table struct {
	id     uint32
	expiry time.Duration

	mu   sync.Mutex
	self netip.Addr
	seen map[netip.Addr]neighbour

	snap atomic.Pointer[snapshot]

	// Hellos counts hellos received from neighbours.
	Hellos atomic.Uint64
}

type neighbour struct {
	last int64 // unix ns of the last hello
	mac  [6]byte
	caps mesh.Caps // from the hello's flags byte
}

type snapshot struct {
	macs     [][6]byte
	self     netip.Addr
	members  []uint64 // address hashes of self and neighbours
	members6 []uint64 // those of self and the neighbours that announced mesh.CapIPv6
	selfH    uint64
	addrs    []netip.Addr
	caps     []mesh.Caps // per addrs
}

// NewTable returns a table for relay id; neighbours silent for expiry are
// forgotten.
func NewTable(id uint32, expiry time.Duration) *Table {
	t := &Table{id: id, expiry: expiry, seen: map[netip.Addr]neighbour{}}
	t.snap.Store(&snapshot{})
	return t
}

// ID is this relay's id, carried in its hellos.
func (t *Table) ID() uint32 { return t.id }

// SetSelf records this relay's own address on the segment.
func (t *Table) SetSelf(a netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.self != a {
		t.self = a
		t.publish()
	}
}

// Heard records a hello from relay id at addr, injecting with mac, at now
// (unix ns) and reports whether addr is a new neighbour. Our own hellos are
// ignored. It is HeardCaps for a hello without capabilities.
func (t *Table) Heard(now int64, addr netip.Addr, id uint32, mac [6]byte) bool {
	return t.HeardCaps(now, addr, id, mac, 0)
}

// HeardCaps records a hello as Heard does, with the capabilities its flags
// byte announced (mesh.HelloCaps).
func (t *Table) HeardCaps(now int64, addr netip.Addr, id uint32, mac [6]byte, caps mesh.Caps) bool {
	if id == t.id {
		return false
	}
	t.Hellos.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	old, known := t.seen[addr]
	t.seen[addr] = neighbour{last: now, mac: mac, caps: caps}
	if !known || old.mac != mac || old.caps != caps {
		t.publish()
	}
	return !known
}

// Expire forgets neighbours not heard from since now-expiry and returns them.
func (t *Table) Expire(now int64) (gone []netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, n := range t.seen {
		if now-n.last > int64(t.expiry) {
			delete(t.seen, a)
			gone = append(gone, a)
		}
	}
	if len(gone) > 0 {
		t.publish()
	}
	return gone
}

// publish rebuilds the lock-free snapshot; t.mu must be held.
func (t *Table) publish() {
	s := &snapshot{self: t.self, selfH: addrHash(t.self)}
	for a := range t.seen {
		s.addrs = append(s.addrs, a)
	}
	slices.SortFunc(s.addrs, netip.Addr.Compare)
	for _, a := range s.addrs {
		s.macs = append(s.macs, t.seen[a].mac)
		s.caps = append(s.caps, t.seen[a].caps)
	}
	s.members = append(s.members, s.selfH)
	s.members6 = append(s.members6, s.selfH)
	for i, a := range s.addrs {
		s.members = append(s.members, addrHash(a))
		if s.caps[i].Has(mesh.CapIPv6) {
			s.members6 = append(s.members6, addrHash(a))
		}
	}
	t.snap.Store(s)
}

// Neighbours lists the relays currently heard on this segment.
func (t *Table) Neighbours() []netip.Addr { return slices.Clone(t.snap.Load().addrs) }

// NeighbourCaps returns the capabilities neighbour a announced in its last
// hello (none for an unknown address).
func (t *Table) NeighbourCaps(a netip.Addr) mesh.Caps {
	s := t.snap.Load()
	for i, n := range s.addrs {
		if n == a {
			return s.caps[i]
		}
	}
	return 0
}

// IsNeighbour reports whether a is a relay on this segment.
func (t *Table) IsNeighbour(a netip.Addr) bool {
	s := t.snap.Load()
	for _, n := range s.addrs {
		if n == a {
			return true
		}
	}
	return false
}

// IsNeighbourMAC reports whether mac is the MAC a neighbour injects with.
// A captured frame from it is that neighbour's injection (or a client on its
// host, which the neighbour captures and forwards itself): forwarding it
// again would send a frame back towards the segment it came from.
func (t *Table) IsNeighbourMAC(mac [6]byte) bool {
	for _, m := range t.snap.Load().macs {
		if m == mac {
			return true
		}
	}
	return false
}

// Owner reports whether this relay is the one on its segment that injects
// the datagram with the given key, which must be the same on every relay
// (netio/frame.StableKey, not the seeded Key).
func (t *Table) Owner(key uint64) bool {
	s := t.snap.Load()
	return owner(s.members, s.selfH, key)
}

// Owner6 is Owner for an IPv6 frame: the choice ranges over this relay and
// the neighbours whose hello announced mesh.CapIPv6 only, so that a
// neighbour that cannot inject IPv6 frames is never the one chosen.
func (t *Table) Owner6(key uint64) bool {
	s := t.snap.Load()
	return owner(s.members6, s.selfH, key)
}

func owner(members []uint64, selfH, key uint64) bool {
	if len(members) <= 1 {
		return true
	}
	best, bestH := uint64(0), uint64(0)
	for _, h := range members {
		if sc := splitmix.Mix(key ^ h); sc > best || (sc == best && h > bestH) {
			best, bestH = sc, h
		}
	}
	return bestH == selfH
}

// addrHash is a member's score seed. Every relay of a segment must compute
// the same value for a given address; IPv4 values are those of the first
// version (its relays are still in meshes), IPv6 ones (relays without IPv4,
// whose hellos come from their IPv6 address) mix both halves.
func addrHash(a netip.Addr) uint64 {
	if !a.IsValid() {
		return 0
	}
	if a = a.Unmap(); a.Is6() {
		b := a.As16()
		var hi, lo uint64
		for i := 0; i < 8; i++ {
			hi, lo = hi<<8|uint64(b[i]), lo<<8|uint64(b[8+i])
		}
		return splitmix.Mix(splitmix.Mix(hi) ^ lo ^ 2<<40)
	}
	b := a.As4()
	return splitmix.Mix(uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]) | 1<<40)
}
