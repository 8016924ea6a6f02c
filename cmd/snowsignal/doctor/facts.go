package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// Facts are what the checks learn from the system. Host fills every field
// from the machine it runs on; tests set the ones a check reads.
type Facts struct {
	// Capabilities returns the process's effective capability set
	// (CapEff of /proc/self/status).
	Capabilities func() (uint64, error)
	// Interface describes the named interface; InterfaceNames lists those
	// that exist.
	Interface      func(name string) (*Iface, error)
	InterfaceNames func() []string
	// Sysctl reads a sysctl by its dotted name, e.g. net.ipv4.conf.lo.rp_filter.
	Sysctl func(name string) (string, error)
	// BindUDP reports whether a UDP socket can bind addr (nil: free).
	BindUDP func(addr netip.AddrPort) error
	// BoundUDP lists this host's UDP sockets bound to one of ports.
	BoundUDP func(ports []uint16) ([]netip.AddrPort, error)
	// LocalAddrs lists this host's addresses (a peer set never holds them).
	LocalAddrs func() ([]netip.Addr, error)
	// LookupHost resolves a name to IPv4 addresses.
	LookupHost func(ctx context.Context, name string) ([]netip.Addr, error)
	// Probe sends one probe datagram to peer and returns the first datagram
	// that comes back within timeout, and the round-trip time.
	Probe func(ctx context.Context, peer netip.AddrPort, req []byte, timeout time.Duration, match func([]byte) bool) (reply []byte, rtt time.Duration, err error)
	// Firewall lists the host's nftables chains and rules.
	Firewall func() ([]Chain, error)
	// LegacyIPTables lists the legacy iptables tables loaded
	// (/proc/net/ip_tables_names), whose rules netlink cannot read.
	LegacyIPTables func() ([]string, error)
	// Stats asks the relay at a stats socket for its snapshot (JSON).
	Stats func(ctx context.Context, path string) ([]byte, error)
}

// Iface is what the checks need to know about an interface.
type Iface struct {
	Name string
	Up   bool
	MTU  int
	// Addrs are its IPv4 addresses, primary first, each with its
	// broadcast address (invalid when none is set).
	Addrs []IfaceAddr
}

// IfaceAddr is one IPv4 address of an interface.
type IfaceAddr struct {
	Prefix    netip.Prefix // address and prefix length, e.g. 10.0.0.1/24
	Broadcast netip.Addr
}

// snapshot is the part of a running relay's snapshot (its stats socket's
// answer, docs/OBSERVABILITY.md) that doctor reads. It is decoded here, by
// field name, so that doctor depends on the documented format only.
type snapshot struct {
	Format        int       `json:"format"`
	Version       string    `json:"version"`
	Time          time.Time `json:"time"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Config        struct {
		Interface      string   `json:"interface"`
		BroadcastPorts []uint16 `json:"broadcast_ports"`
		MeshPort       uint16   `json:"mesh_port"`
		Authenticated  bool     `json:"authenticated"`
		LocalDelivery  bool     `json:"local_delivery"`
		MeshOffload    bool     `json:"mesh_offload"`
	} `json:"config"`
	CaptureUp bool `json:"capture_up"`
	Stages    []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Restarts  uint64 `json:"restarts"`
		LastError string `json:"last_error"`
	} `json:"stages"`
	Drops map[string]uint64 `json:"drops"`
	// RecentDrops is what moved over about the last minute, kept by the
	// relay (older relays do not send it).
	RecentDrops *struct {
		Seconds float64           `json:"seconds"`
		Drops   map[string]uint64 `json:"drops"`
	} `json:"recent_drops"`
	KernelDrops     uint64 `json:"kernel_drops"`
	MeshKernelDrops uint64 `json:"mesh_kernel_drops"`
	// MeshOffload is absent from older relays' snapshots.
	MeshOffload *struct {
		Sending bool `json:"sending"`
	} `json:"mesh_offload"`
	SelfMode bool `json:"self_mode"`
	Peers    []struct {
		Addr      string     `json:"addr"`
		Sources   string     `json:"sources"`
		TxPackets uint64     `json:"tx_packets"`
		TxErrors  uint64     `json:"tx_errors"`
		RxPackets uint64     `json:"rx_packets"`
		LastHeard *time.Time `json:"last_heard"`
	} `json:"peers"`
	Neighbours     []string `json:"neighbours"`
	UnknownSources []struct {
		Addr      string `json:"addr"`
		Datagrams uint64 `json:"datagrams"`
	} `json:"unknown_sources"`
}

// snapshot reads the relay's snapshot; an error means no relay answers.
func (f Facts) snapshot(ctx context.Context, path string) (*snapshot, error) {
	if path == "" {
		return nil, fmt.Errorf("no stats socket (--stats-socket is empty)")
	}
	if f.Stats == nil {
		return nil, fmt.Errorf("no stats client")
	}
	raw, err := f.Stats(ctx, path)
	if err != nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("stats socket %s: snapshot: %w", path, err)
	}
	return &s, nil
}
