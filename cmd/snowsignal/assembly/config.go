package assembly

import (
	"net/netip"
	"time"

	"github.com/snowsignal/snowsignal/stages/discovery"
	"github.com/snowsignal/snowsignal/stages/rewrite"
)

// DefaultMark is the SO_MARK of the inject socket: "SNOW" in ASCII. It only
// needs to differ from marks other software on the host puts on frames
// leaving the target interface.
const DefaultMark = 0x534e4f57

// Config is everything a relay is built from. It is a plain value: the
// command line fills it, tests build it directly. Default returns the
// daemon's defaults and Validate checks one (validate.go).
type Config struct {
	// Interface is the target interface for capture, mesh and injection.
	Interface string
	// BroadcastPorts are the UDP ports whose broadcasts are relayed.
	BroadcastPorts []uint16
	// MeshPort is the UDP port relays exchange mesh datagrams on.
	MeshPort uint16
	// MeshBind is the address the mesh socket binds to. When invalid: the
	// dual-stack [::] if the mesh may use IPv6 (MeshIPv6, an IPv6 address
	// among Peers, or an interface without IPv4 but with a global or ULA
	// IPv6 address), else 0.0.0.0, as before IPv6.
	MeshBind netip.Addr
	// MeshIPv6 runs the mesh over IPv6 as well as IPv4 (--mesh-ipv6): the
	// mesh socket is dual-stack and discovery takes AAAA records too. An
	// IPv6 --other-relays address or an interface without IPv4 implies it.
	MeshIPv6 bool
	// Peers are the static peers (--other-relays): IP addresses or names.
	Peers []string
	// Discover are DNS names whose addresses are peers (--discover, SERVICENAME).
	Discover []string
	// DiscoveryInterval is how often names are resolved again.
	DiscoveryInterval time.Duration
	// Resolver resolves peer names; nil uses the system resolver.
	Resolver discovery.Resolver
	// RebroadcastDestination is the IP destination policy for injected frames.
	RebroadcastDestination rewrite.DestMode
	// DedupWindow is how long a datagram is remembered to suppress loops and
	// duplicates; zero disables suppression.
	DedupWindow time.Duration
	// HelloInterval is how often the relay announces itself to other relays
	// on its segment; zero disables hellos, and with them the sharing of
	// injections between relays on one segment.
	HelloInterval time.Duration
	// AcceptAnyPeer admits mesh datagrams from any source.
	AcceptAnyPeer bool
	// MeshKeys, when not empty, switch the mesh to the authenticated format:
	// send with the first key, accept either.
	MeshKeys [][]byte
	// Mark is the inject socket's SO_MARK; DefaultMark when zero.
	Mark uint32
	// LocalDelivery also delivers injected broadcasts to this host's own
	// sockets (servers on the relay's host).
	LocalDelivery bool
	// WaitForInterface keeps retrying when the interface does not exist yet,
	// instead of failing at start.
	WaitForInterface bool
	// Observability configures the stats socket, the metrics endpoint, the
	// summary log line and the build information (observability.go).
	Observability Observability
	// RateLimit is how many packets per second each client (IP source of a
	// captured broadcast) may have forwarded to the mesh; zero disables the
	// limit. The burst is max(RateLimit, ratelimit.MinBurst).
	RateLimit int
	// PeerRateLimit is how many frames per second each peer (source of mesh
	// datagrams) may have injected on our segment; zero means RateLimit's.
	// A peer forwards the broadcasts of every client on its segment, so this
	// is usually set higher than RateLimit.
	PeerRateLimit int
	// IPv6 also relays IPv6 UDP datagrams sent to the link-scope multicast
	// groups of IPv6Groups, on the same BroadcastPorts: an IPv6 client's
	// "broadcast" search (docs/IPV6.md). Off, nothing IPv6 is captured or
	// injected.
	IPv6 bool
	// IPv6Groups are the groups relayed with IPv6, each in ff02::/16 and
	// without a zone; empty means DefaultIPv6Group alone.
	IPv6Groups []netip.Addr
	// Coalesce is how long a socket reader waits after each batch while
	// batches keep coming faster than one every two Coalesce, so that one
	// wake-up carries several datagrams (pipeline.Coalescer); zero never
	// waits.
	Coalesce time.Duration
	// MaxDelay is how long a frame may wait in this relay, from the
	// kernel's receive time to the last stage before it is sent (fanout,
	// inject); older frames are dropped as stale. A storm then costs the
	// searches the relay cannot carry, not tens of milliseconds on every
	// one behind them. Zero never sheds.
	MaxDelay time.Duration
	// QueueTarget and QueueInterval shed a standing queue early, the way
	// CoDel does (pipeline.ShedPolicy): once every frame sent for
	// QueueInterval had waited longer than QueueTarget, frames older than
	// QueueTarget are dropped as overload until a fresher one is sent a
	// QueueInterval after the last older one. A burst that drains within
	// QueueInterval is carried whole; a storm the relay cannot carry costs
	// what it cannot carry, not tens of milliseconds on everything behind
	// it. QueueTarget zero (the default) turns this off; QueueInterval zero
	// means DefaultQueueInterval.
	QueueTarget, QueueInterval time.Duration
	// MeshOffload lets the mesh socket segment runs of datagrams to a peer
	// and read peers' runs coalesced (netio/meshconn, offload.go).
	MeshOffload bool
}
