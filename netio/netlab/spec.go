package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Spec describes a lab. It is plain data: build it in a literal, or start from
// TwoSegmentSwarm or TwoSubnetRouted and change it.
type Spec struct {
	// Subnet is the one IPv4 subnet of a Swarm lab, shared by every segment.
	// It must be left zero for a Routed lab, whose subnets are per segment.
	Subnet netip.Prefix
	// Segments in order. A Swarm lab needs at least one (two to be
	// interesting); a Routed lab at least one.
	Segments []SegmentSpec
	// IPv6, if valid, is a /64 (a ULA such as fd00:77::/64) shared by every
	// host of a Swarm lab, as Subnet is: IPv6 is then on in the hosts'
	// namespaces (without duplicate address detection, so addresses are
	// usable at once), each host has a link-local address and one of IPv6
	// (see Host.IP6), and the switch drops UDP to IPv6 multicast between
	// segments as it drops IPv4 broadcasts. Zero leaves IPv6 off everywhere,
	// so the wire carries only the frames a test makes and ARP.
	IPv6 netip.Prefix
}

// DefaultIPv6 is the ULA prefix of the test vectors' IPv6 lab: a host
// 10.77.0.11 gets fd00:77::11 (see Host.IP6).
var DefaultIPv6 = netip.MustParsePrefix("fd00:77::/64")

// TwoSegmentSwarm6 is TwoSegmentSwarm with IPv6 on, in DefaultIPv6:
//
//	segment a: client fd00:77::11, relay-a fd00:77::1
//	segment b: server fd00:77::21, relay-b fd00:77::2
func TwoSegmentSwarm6() Spec {
	s := TwoSegmentSwarm()
	s.IPv6 = DefaultIPv6
	return s
}

// ip6For gives a host its IPv6 address in p: the last byte of its IPv4
// address, written in decimal, as the low 16 bits in hex (10.77.0.11 in
// fd00:77::/64 is fd00:77::11), so the two addresses read alike. The last
// byte is unique in a Swarm lab's subnet of /24 or longer; longer subnets
// (/8 to /23) add the byte before it (10.77.1.11 is fd00:77::1:11).
func ip6For(p netip.Prefix, v4 netip.Addr) netip.Addr {
	b := p.Masked().Addr().As16()
	a := v4.As4()
	hex := func(d byte) uint16 { return uint16(d/100)<<8 | uint16(d/10%10)<<4 | uint16(d%10) }
	lo, hi := hex(a[3]), hex(a[2])
	b[12], b[13], b[14], b[15] = byte(hi>>8), byte(hi), byte(lo>>8), byte(lo)
	return netip.AddrFrom16(b)
}

// SegmentSpec describes one segment: a broadcast domain.
type SegmentSpec struct {
	// Name of the segment, e.g. "a". It appears in Host.Segment and in the
	// names of bridge ports. Letters, digits, '-' and '_'; at most 15 bytes.
	Name string
	// Subnet of the segment in a Routed lab; zero in a Swarm lab.
	Subnet netip.Prefix
	// Gateway is the router's address on this segment in a Routed lab. When
	// zero, the first usable address of Subnet (e.g. 10.1.0.1) is used.
	Gateway netip.Addr
	// Hosts on the segment, in order.
	Hosts []HostSpec
}

// HostSpec describes one host (one network namespace with one eth0).
type HostSpec struct {
	// Name of the host, unique in the lab, e.g. "client" or "relay-a".
	// Letters, digits, '-' and '_'; at most 32 bytes; "switch" and "router"
	// are reserved for the lab's own namespaces.
	Name string
	// Addr is the host's fixed IPv4 address. When zero, the host gets the
	// lowest free address of its subnet, counting up from the first usable
	// one, after every fixed address (and gateway) has been taken.
	Addr netip.Addr
}

// HostNames is a shorthand for hosts with allocated addresses.
func HostNames(names ...string) []HostSpec {
	hs := make([]HostSpec, len(names))
	for i, n := range names {
		hs[i] = HostSpec{Name: n}
	}
	return hs
}

// TwoSegmentSwarm is the Swarm lab of the test vectors: one subnet
// 10.77.0.0/24 over two segments, with a client and a relay on segment "a"
// and a server and a relay on segment "b".
//
//	segment a: client 10.77.0.11, relay-a 10.77.0.1
//	segment b: server 10.77.0.21, relay-b 10.77.0.2
func TwoSegmentSwarm() Spec {
	return Spec{
		Subnet: netip.MustParsePrefix("10.77.0.0/24"),
		Segments: []SegmentSpec{
			{Name: "a", Hosts: []HostSpec{
				{Name: "client", Addr: netip.MustParseAddr("10.77.0.11")},
				{Name: "relay-a", Addr: netip.MustParseAddr("10.77.0.1")},
			}},
			{Name: "b", Hosts: []HostSpec{
				{Name: "server", Addr: netip.MustParseAddr("10.77.0.21")},
				{Name: "relay-b", Addr: netip.MustParseAddr("10.77.0.2")},
			}},
		},
	}
}

// TwoSubnetRouted is a Routed lab with the same host names as
// TwoSegmentSwarm on two subnets joined by a router at 10.1.0.1 and 10.2.0.1.
//
//	segment a (10.1.0.0/24): client 10.1.0.11, relay-a 10.1.0.2
//	segment b (10.2.0.0/24): server 10.2.0.21, relay-b 10.2.0.2
func TwoSubnetRouted() Spec {
	return Spec{
		Segments: []SegmentSpec{
			{Name: "a", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Hosts: []HostSpec{
				{Name: "client", Addr: netip.MustParseAddr("10.1.0.11")},
				{Name: "relay-a", Addr: netip.MustParseAddr("10.1.0.2")},
			}},
			{Name: "b", Subnet: netip.MustParsePrefix("10.2.0.0/24"), Hosts: []HostSpec{
				{Name: "server", Addr: netip.MustParseAddr("10.2.0.21")},
				{Name: "relay-b", Addr: netip.MustParseAddr("10.2.0.2")},
			}},
		},
	}
}

// plan is a validated Spec with every name and address decided.
type plan struct {
	routed   bool
	ipv6     netip.Prefix // the hosts' IPv6 /64; zero: IPv6 off
	segments []segPlan
	hosts    []hostPlan
}

type segPlan struct {
	name    string
	subnet  netip.Prefix
	gateway netip.Addr // routed only
	bridge  string     // bridge name in the switch namespace
	group   uint32     // interface group of the segment's switch ports (1...)
	rtPort  string     // routed only: switch-side port of the router's interface
	rtIf    string     // routed only: the router's interface
}

type hostPlan struct {
	name   string
	seg    int
	addr   netip.Addr
	addr6  netip.Addr // zero: IPv6 off
	port   string     // switch-side veth
	mac    net.HardwareAddr
	subnet netip.Prefix
}

const (
	maxHostName = 32
	maxIfName   = 15 // IFNAMSIZ - 1
)

func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// makePlan validates spec and decides every name and address.
func makePlan(spec Spec, routed bool) (*plan, error) {
	p := &plan{routed: routed}
	if len(spec.Segments) == 0 {
		return nil, errors.New("lab: spec has no segments")
	}
	if routed && spec.Subnet.IsValid() {
		return nil, errors.New("lab: a routed spec has one subnet per segment; leave Spec.Subnet zero")
	}
	if spec.IPv6.IsValid() {
		if routed {
			return nil, errors.New("lab: IPv6 is for Swarm labs only; leave Spec.IPv6 zero")
		}
		if !spec.IPv6.Addr().Is6() || spec.IPv6.Addr().Is4In6() || spec.IPv6.Bits() != 64 {
			return nil, fmt.Errorf("lab: spec IPv6 prefix %v: want an IPv6 /64", spec.IPv6)
		}
		p.ipv6 = spec.IPv6.Masked()
	}
	var shared *addrPool
	if !routed {
		var err error
		if shared, err = newAddrPool(spec.Subnet); err != nil {
			return nil, fmt.Errorf("lab: spec subnet: %w", err)
		}
	}
	swNames := namer{"lo": true, "br0": true} // interface names in the switch namespace
	rtNames := namer{"lo": true}              // interface names in the router namespace
	hostSeen := map[string]bool{}
	pools := make([]*addrPool, len(spec.Segments))
	segSeen := map[string]bool{}
	for i, s := range spec.Segments {
		if !validName(s.Name, maxIfName) {
			return nil, fmt.Errorf("lab: segment name %q: want letters, digits, '-', '_', at most %d bytes", s.Name, maxIfName)
		}
		if segSeen[s.Name] {
			return nil, fmt.Errorf("lab: segment %q appears twice", s.Name)
		}
		segSeen[s.Name] = true
		sp := segPlan{name: s.Name, group: uint32(i + 1)}
		if routed {
			pool, err := newAddrPool(s.Subnet)
			if err != nil {
				return nil, fmt.Errorf("lab: segment %q subnet: %w", s.Name, err)
			}
			for j := range i {
				if pools[j].prefix.Overlaps(pool.prefix) {
					return nil, fmt.Errorf("lab: segment %q subnet %v overlaps segment %q", s.Name, pool.prefix, spec.Segments[j].Name)
				}
			}
			pools[i] = pool
			sp.subnet = pool.prefix
			gw := s.Gateway
			if !gw.IsValid() {
				gw = pool.first()
			}
			if err := pool.take(gw); err != nil {
				return nil, fmt.Errorf("lab: segment %q gateway: %w", s.Name, err)
			}
			sp.gateway = gw
			sp.bridge = swNames.unique("br-"+s.Name, "br")
			sp.rtPort = swNames.unique(s.Name+"-router", "rt")
			sp.rtIf = rtNames.unique(s.Name, "eth")
		} else {
			if s.Subnet.IsValid() || s.Gateway.IsValid() {
				return nil, fmt.Errorf("lab: segment %q: a swarm has one Spec.Subnet and no gateway", s.Name)
			}
			pools[i] = shared
			sp.subnet = shared.prefix
			sp.bridge = "br0"
		}
		p.segments = append(p.segments, sp)
		for _, h := range s.Hosts {
			if !validName(h.Name, maxHostName) || h.Name == "switch" || h.Name == "router" {
				return nil, fmt.Errorf("lab: host name %q: want letters, digits, '-', '_', at most %d bytes, not switch or router", h.Name, maxHostName)
			}
			if hostSeen[h.Name] {
				return nil, fmt.Errorf("lab: host %q appears twice", h.Name)
			}
			hostSeen[h.Name] = true
			p.hosts = append(p.hosts, hostPlan{
				name:   h.Name,
				seg:    i,
				addr:   h.Addr,
				port:   swNames.unique(s.Name+"-"+h.Name, "p"),
				subnet: sp.subnet,
			})
		}
	}
	// Fixed addresses first, then allocated ones, so an allocation never
	// takes an address that a later host asked for.
	for i := range p.hosts {
		h := &p.hosts[i]
		if h.addr.IsValid() {
			if err := pools[h.seg].take(h.addr); err != nil {
				return nil, fmt.Errorf("lab: host %q: %w", h.name, err)
			}
		}
	}
	for i := range p.hosts {
		h := &p.hosts[i]
		if !h.addr.IsValid() {
			a, err := pools[h.seg].next()
			if err != nil {
				return nil, fmt.Errorf("lab: host %q: %w", h.name, err)
			}
			h.addr = a
		}
		h.mac = macFor(h.addr)
		if p.ipv6.IsValid() {
			h.addr6 = ip6For(p.ipv6, h.addr)
		}
	}
	return p, nil
}

// namer hands out interface names unique in one namespace.
type namer map[string]bool

// unique returns want cut to 15 bytes if that is free, else base followed by
// the lowest free number.
func (n namer) unique(want, base string) string {
	if len(want) > maxIfName {
		want = want[:maxIfName]
	}
	for i := 0; n[want]; i++ {
		want = fmt.Sprintf("%s%d", base, i)
	}
	n[want] = true
	return want
}

// macFor gives a stable, locally administered unicast MAC: 02:00 followed
// by the IPv4 address, so captures are easy to read and runs repeat exactly.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// addrPool hands out addresses of one IPv4 subnet.
type addrPool struct {
	prefix netip.Prefix
	used   map[netip.Addr]bool
}

func newAddrPool(p netip.Prefix) (*addrPool, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return nil, fmt.Errorf("%v is not an IPv4 prefix", p)
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return nil, fmt.Errorf("%v: want a prefix length from /8 to /30", p)
	}
	return &addrPool{prefix: p.Masked(), used: map[netip.Addr]bool{}}, nil
}

func (p *addrPool) first() netip.Addr { return p.prefix.Addr().Next() }

func (p *addrPool) take(a netip.Addr) error {
	switch {
	case !a.Is4():
		return fmt.Errorf("%v is not an IPv4 address", a)
	case !p.prefix.Contains(a):
		return fmt.Errorf("%v is outside %v", a, p.prefix)
	case a == p.prefix.Addr() || a == broadcastOf(p.prefix):
		return fmt.Errorf("%v is the network or broadcast address of %v", a, p.prefix)
	case p.used[a]:
		return fmt.Errorf("%v is already in use", a)
	}
	p.used[a] = true
	return nil
}

func (p *addrPool) next() (netip.Addr, error) {
	bc := broadcastOf(p.prefix)
	for a := p.first(); a != bc; a = a.Next() {
		if !p.used[a] {
			p.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %v", p.prefix)
}

// broadcastOf returns the directed broadcast address of an IPv4 prefix.
func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
