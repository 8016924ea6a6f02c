// Package insight watches the EPICS traffic the relay carries: which PV
// names are searched for, by which clients, and which servers announce
// themselves, over the last minute. It observes the packets the filter stage
// (outbound) and the rewrite stage (inbound) pass on, never changes them, and
// never decides anything: a payload it cannot decode is still relayed.
//
// Memory is bounded (fixed tables, see table) and the steady state allocates
// nothing: a name is hashed from the packet's bytes and a string is made only
// when a name new to the table enters it.
package insight

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snowsignal/snowsignal/netio/epics"
)

// Defaults for Config.
const (
	DefaultNames    = 1024
	DefaultClients  = 256
	DefaultServers  = 256
	DefaultWindow   = time.Minute
	DefaultTop      = 10
	DefaultLogBurst = 20
)

// Config sizes an Insight. Zero fields take the defaults.
type Config struct {
	// Names, Clients and Servers are how many PV names, searching clients
	// and beaconing servers are tracked at once.
	Names, Clients, Servers int
	// Window is how far back the top lists look.
	Window time.Duration
	// Top is the length of each top list.
	Top int
	// LogBurst is how many debug lines of each kind ("relayed", "dropped",
	// "pv search") each direction may log per second; the rest are counted
	// and reported in the next line's "suppressed" field.
	LogBurst int
}

// Direction is which way a packet crosses the relay.
type Direction uint8

// Directions.
const (
	// Outbound packets were captured on this segment and go to the mesh.
	Outbound Direction = iota
	// Inbound packets came from the mesh and are injected on this segment.
	Inbound
	numDirections
)

// String returns "outbound" or "inbound", the stable label value.
func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// counters are one direction's totals since start.
type counters struct {
	pvaSearches, pvaBeacons, caSearches, caBeacons atomic.Uint64
	names, replies, malformed, other               atomic.Uint64
}

// Counters are one direction's totals since start, in a snapshot.
type Counters struct {
	// PVASearches counts PVAccess search request messages.
	PVASearches uint64 `json:"pva_searches"`
	// PVABeacons counts PVAccess server beacons.
	PVABeacons uint64 `json:"pva_beacons"`
	// CASearches counts Channel Access search requests (one per name).
	CASearches uint64 `json:"ca_searches"`
	// CABeacons counts Channel Access server beacons (CA_PROTO_RSRV_IS_UP).
	CABeacons uint64 `json:"ca_beacons"`
	// Names counts PV names searched for, both protocols.
	Names uint64 `json:"names"`
	// Replies counts search replies (servers answering) seen on a relayed port.
	Replies uint64 `json:"replies"`
	// Malformed counts datagrams that started like EPICS but did not decode.
	Malformed uint64 `json:"malformed"`
	// Other counts datagrams that are not EPICS at all.
	Other uint64 `json:"other"`
}

func (c *counters) snapshot() Counters {
	return Counters{
		PVASearches: c.pvaSearches.Load(), PVABeacons: c.pvaBeacons.Load(),
		CASearches: c.caSearches.Load(), CABeacons: c.caBeacons.Load(),
		Names: c.names.Load(), Replies: c.replies.Load(), Malformed: c.malformed.Load(), Other: c.other.Load(),
	}
}

// Stats is a snapshot of what the insight saw.
type Stats struct {
	// WindowSeconds is how far back the top lists look.
	WindowSeconds float64 `json:"window_seconds"`
	// Outbound and Inbound are the totals since start of each direction.
	Outbound Counters `json:"outbound"`
	Inbound  Counters `json:"inbound"`
	// TopNames are the PV names searched for most in the window.
	TopNames []Top `json:"top_names"`
	// TopClients are the clients (IP sources) that searched most in the
	// window, counted in PV names.
	TopClients []Top `json:"top_clients"`
	// TopServers are the servers that sent the most beacons in the window,
	// as the address they announce (or their IP source when they announce
	// none).
	TopServers []Top `json:"top_servers"`
	// Tracked is how many names, clients and servers the tables hold.
	Tracked Tracked `json:"tracked"`
}

// Tracked says how full the bounded tables are and how often a key had to
// make room for another: many evictions mean more distinct names than slots.
type Tracked struct {
	Names           int    `json:"names"`
	Clients         int    `json:"clients"`
	Servers         int    `json:"servers"`
	NameEvictions   uint64 `json:"name_evictions"`
	ClientEvictions uint64 `json:"client_evictions"`
}

// An Insight keeps the EPICS statistics of one relay. Its methods are safe
// for concurrent use; each direction observes through its own Observer.
type Insight struct {
	cfg    Config
	seed   maphash.Seed
	start  time.Time
	bucket time.Duration

	count [numDirections]counters

	mu      sync.Mutex
	names   *table
	clients *table
	servers *table
}

// New returns an empty Insight.
func New(cfg Config) *Insight {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Names, DefaultNames)
	def(&cfg.Clients, DefaultClients)
	def(&cfg.Servers, DefaultServers)
	def(&cfg.Top, DefaultTop)
	def(&cfg.LogBurst, DefaultLogBurst)
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	return &Insight{cfg: cfg, seed: maphash.MakeSeed(), start: time.Now(), bucket: cfg.Window / buckets,
		names: newTable(cfg.Names), clients: newTable(cfg.Clients), servers: newTable(cfg.Servers)}
}

// slice is the window slice number of the instant now.
func (in *Insight) slice(now time.Time) int64 { return int64(now.Sub(in.start) / in.bucket) }

// Stats returns the totals and the top lists as of now.
func (in *Insight) Stats() Stats {
	now := in.slice(time.Now())
	s := Stats{WindowSeconds: in.cfg.Window.Seconds(),
		Outbound: in.count[Outbound].snapshot(), Inbound: in.count[Inbound].snapshot()}
	in.mu.Lock()
	defer in.mu.Unlock()
	s.TopNames = in.names.top(now, in.cfg.Top, func(k string) string { return k })
	s.TopClients = in.clients.top(now, in.cfg.Top, addrName)
	s.TopServers = in.servers.top(now, in.cfg.Top, addrName)
	s.Tracked = Tracked{Names: in.names.len(), Clients: in.clients.len(), Servers: in.servers.len(),
		NameEvictions: in.names.evicted, ClientEvictions: in.clients.evicted}
	return s
}

// addrKey encodes an address and port as a table key: 4 bytes for an IPv4
// address alone, 6 with the port; 16 and 18 for an IPv6 one (--ipv6). The
// lengths tell the families apart.
func addrKey(buf *[18]byte, ap netip.AddrPort, withPort bool) []byte {
	a := ap.Addr().Unmap()
	n := 4
	if a.Is6() {
		b := a.As16()
		n = copy(buf[:], b[:])
	} else {
		var b [4]byte
		if a.Is4() {
			b = a.As4()
		}
		copy(buf[:], b[:])
	}
	if !withPort {
		return buf[:n]
	}
	buf[n], buf[n+1] = byte(ap.Port()>>8), byte(ap.Port())
	return buf[:n+2]
}

// addrName renders a key made by addrKey.
func addrName(k string) string {
	n := 4
	if len(k) >= 16 {
		n = 16
	}
	a, _ := netip.AddrFromSlice([]byte(k[:n]))
	if len(k) == n+2 {
		return netip.AddrPortFrom(a, uint16(k[n])<<8|uint16(k[n+1])).String()
	}
	return a.String()
}

// record adds one decoded datagram from src, seen at now, to the totals and
// the tables.
func (in *Insight) record(dir Direction, d *epics.Datagram, err error, src netip.AddrPort, now time.Time) {
	c := &in.count[dir]
	switch {
	case err == epics.ErrNotPVA || err == epics.ErrNotCA:
		if d.Searches == 0 && d.Beacons == 0 {
			c.other.Add(1)
			return
		}
		c.malformed.Add(1)
	case err != nil:
		c.malformed.Add(1)
	}
	if d.Replies > 0 {
		c.replies.Add(uint64(d.Replies))
	}
	if d.Searches == 0 && d.Beacons == 0 {
		return
	}
	names := d.Names() + d.Dropped
	c.names.Add(uint64(names))
	if d.Proto == epics.PVA {
		c.pvaSearches.Add(uint64(d.Searches))
		c.pvaBeacons.Add(uint64(d.Beacons))
	} else {
		c.caSearches.Add(uint64(d.Searches))
		c.caBeacons.Add(uint64(d.Beacons))
	}

	slice := in.slice(now)
	var kb [18]byte
	in.mu.Lock()
	defer in.mu.Unlock()
	if names > 0 {
		k := addrKey(&kb, src, false)
		in.clients.add(maphash.Bytes(in.seed, k), k, slice, uint32(names))
		for i := range d.Names() {
			n := d.Name(i)
			in.names.add(maphash.Bytes(in.seed, n), n, slice, 1)
		}
	}
	if d.Beacons > 0 {
		server := d.Server
		if !server.Addr().IsValid() || server.Addr().IsUnspecified() {
			// "::" or 0.0.0.0 announce "the address you got this from".
			server = netip.AddrPortFrom(src.Addr(), server.Port())
		}
		k := addrKey(&kb, server, true)
		in.servers.add(maphash.Bytes(in.seed, k), k, slice, uint32(d.Beacons))
	}
}
