package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Sysctls written in every namespace before any interface but lo exists, so
// the "default" values apply to every interface made later. With IPv6 off
// there is no link-local address, DAD, router or MLD solicitation: the only
// frames on the wire are the ones a test makes, and ARP.
var baseSysctls = [][2]string{
	{"net.ipv6.conf.all.disable_ipv6", "1"},
	{"net.ipv6.conf.default.disable_ipv6", "1"},
	{"net.ipv4.conf.all.rp_filter", "0"},
	{"net.ipv4.conf.default.rp_filter", "0"},
}

// ipv6Sysctls replace baseSysctls in the hosts of a lab with IPv6: IPv6 on,
// but no duplicate address detection (an address is usable the moment it
// is added, where DAD would hold it tentative for a second) and no router
// solicitations (there is no router); MLD reports remain, which a relay's
// group membership needs.
var ipv6Sysctls = [][2]string{
	{"net.ipv6.conf.all.disable_ipv6", "0"},
	{"net.ipv6.conf.default.disable_ipv6", "0"},
	{"net.ipv6.conf.all.accept_dad", "0"},
	{"net.ipv6.conf.default.accept_dad", "0"},
	{"net.ipv6.conf.default.dad_transmits", "0"},
	{"net.ipv6.conf.default.router_solicitations", "0"},
	{"net.ipv4.conf.all.rp_filter", "0"},
	{"net.ipv4.conf.default.rp_filter", "0"},
}

var routerSysctls = append([][2]string{
	{"net.ipv4.ip_forward", "1"},
}, baseSysctls...)

// build makes a lab from spec; on error it leaves nothing behind.
func build(spec Spec, routed bool) (_ *Lab, err error) {
	p, err := makePlan(spec, routed)
	if err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := prepareNetNSDir(); err != nil {
		return nil, err
	}
	_ = Sweep() // best effort: leftovers of others must not stop this lab
	l, err := newLab(routed)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()

	loUp := func() error { return setUp("lo") }
	// Hosts and router first: the switch makes the veth pairs and moves
	// one end of each into them.
	for _, hp := range p.hosts {
		sp := p.segments[hp.seg]
		h := &Host{
			Name:      hp.name,
			Segment:   sp.name,
			NetNS:     l.nsName(hp.name),
			IP:        hp.addr,
			Prefix:    sp.subnet,
			MAC:       hp.mac,
			Broadcast: broadcastOf(sp.subnet),
			Gateway:   sp.gateway,
			IP6:       hp.addr6,
			lab:       l,
		}
		sysctls := baseSysctls
		if p.ipv6.IsValid() {
			sysctls = ipv6Sysctls
		}
		if h.path, err = l.createNS(hp.name, sysctls, loUp); err != nil {
			return nil, err
		}
		l.hosts = append(l.hosts, h)
		l.byName[h.Name] = h
	}
	var rtPath string
	if routed {
		if rtPath, err = l.createNS("router", routerSysctls, loUp); err != nil {
			return nil, err
		}
	}
	var ports []string // every switch port, to wait for
	l.swPath, err = l.createNS("switch", baseSysctls, func() error {
		if err := setUp("lo"); err != nil {
			return err
		}
		bridges := map[string]int{}
		for _, sp := range p.segments {
			if _, ok := bridges[sp.bridge]; ok {
				continue // a swarm's segments share br0
			}
			idx, err := addBridge(sp.bridge)
			if err != nil {
				return err
			}
			bridges[sp.bridge] = idx
		}
		if !routed {
			if err := isolateSegments(len(p.segments), p.ipv6.IsValid()); err != nil {
				return err
			}
		}
		for i, hp := range p.hosts {
			sp := p.segments[hp.seg]
			group := uint32(0)
			if !routed {
				group = sp.group
			}
			if err := addPort(hp.port, bridges[sp.bridge], group, l.hosts[i].path, IfName, hp.mac); err != nil {
				return fmt.Errorf("lab: host %q: %w", hp.name, err)
			}
			l.hosts[i].port = hp.port
			ports = append(ports, hp.port)
		}
		if routed {
			for _, sp := range p.segments {
				if err := addPort(sp.rtPort, bridges[sp.bridge], 0, rtPath, sp.rtIf, macFor(sp.gateway)); err != nil {
					return fmt.Errorf("lab: router on %q: %w", sp.name, err)
				}
				ports = append(ports, sp.rtPort)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if routed {
		err = inNS(rtPath, func() error {
			var ifs []string
			for _, sp := range p.segments {
				if _, err := configure(sp.rtIf, sp.gateway, sp.subnet, netip.Addr{}, false); err != nil {
					return fmt.Errorf("lab: router on %q: %w", sp.name, err)
				}
				ifs = append(ifs, sp.rtIf)
			}
			return waitOper(ifs, true)
		})
		if err != nil {
			return nil, err
		}
	}
	for _, h := range l.hosts {
		err = inNS(h.path, func() error {
			var err error
			if h.Ifindex, err = configure(IfName, h.IP, h.Prefix, h.Gateway, true); err != nil {
				return err
			}
			if err := waitOper([]string{IfName}, true); err != nil {
				return err
			}
			if h.IP6.IsValid() {
				h.LinkLocal6, err = configure6(IfName, h.IP6)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("lab: host %q: %w", h.Name, err)
		}
	}
	if err := waitPorts(l.swPath, ports, true); err != nil {
		return nil, err
	}
	return l, nil
}

// setUp sets an interface of the current thread's namespace up.
func setUp(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("lab: link %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("lab: set %s up: %w", name, err)
	}
	return nil
}

// addBridge makes a bridge in the current thread's namespace, up, with STP
// off, forward delay 0 (ports forward the moment they are up) and multicast
// snooping off (multicast floods like broadcast, as on a dumb switch). The
// netlink library has no attribute for the forward delay, so the request is
// built here: `ip link add NAME up type bridge stp_state 0 forward_delay 0
// mcast_snooping 0`.
func addBridge(name string) (int, error) {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	// The kernel applies the forward delay before the STP state, and
	// accepts 0 only while STP is off (the default).
	data.AddRtAttr(nl.IFLA_BR_FORWARD_DELAY, nl.Uint32Attr(0))
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(0))
	data.AddRtAttr(nl.IFLA_BR_MCAST_SNOOPING, []byte{0})
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return 0, fmt.Errorf("lab: add bridge %s: %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("lab: bridge %s: %w", name, err)
	}
	return link.Attrs().Index, nil
}

// addPort makes a veth pair in the current thread's (the switch's)
// namespace: port, up, enslaved to the bridge, in the interface group (0 for
// none); and peer with the MAC mac, moved at creation into the namespace at
// peerNS. The peer is left down, to be configured from inside.
func addPort(port string, bridge int, group uint32, peerNS, peer string, mac net.HardwareAddr) error {
	fd, err := unix.Open(peerNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lab: open %s: %w", peerNS, err)
	}
	defer unix.Close(fd)
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        port,
			Flags:       net.FlagUp,
			MasterIndex: bridge,
			Group:       group,
		},
		PeerName:         peer,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(fd),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: add veth %s/%s: %w", port, peer, err)
	}
	return nil
}

// configure gives an interface of the current thread's namespace its
// address, sets it up and, if gw is valid, adds a default route via gw; a
// host without a gateway (Swarm) gets a default route out of the interface,
// as a container has one, so a socket bound to 0.0.0.0 can send to
// 255.255.255.255 (without any route the kernel answers ENETUNREACH).
func configure(name string, ip netip.Addr, subnet netip.Prefix, gw netip.Addr, defaultRoute bool) (int, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	addr := &netlink.Addr{
		IPNet:     &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)},
		Broadcast: broadcastOf(subnet).AsSlice(),
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return 0, fmt.Errorf("add address %v to %s: %w", ip, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return 0, fmt.Errorf("set %s up: %w", name, err)
	}
	if defaultRoute {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK, Dst: defaultDst()}
		if gw.IsValid() {
			r = &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()}
		}
		if err := netlink.RouteAdd(r); err != nil {
			return 0, fmt.Errorf("add default route on %s: %w", name, err)
		}
	}
	return link.Attrs().Index, nil
}

// configure6 gives the interface, up, its IPv6 address (a /64, without
// DAD) and waits for its link-local address, which the kernel adds from a
// work queue once the link has carrier; it returns the link-local address.
func configure6(name string, ip netip.Addr) (netip.Addr, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("link %s: %w", name, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return netip.Addr{}, fmt.Errorf("add address %v to %s: %w", ip, name, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%s: addresses: %w", name, err)
		}
		for _, a := range addrs {
			if ll, ok := netip.AddrFromSlice(a.IP); ok && ll.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return ll, nil
			}
		}
		if time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("%s: no link-local address after 3s", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// defaultDst is 0.0.0.0/0: the netlink library needs a Dst (or a gateway)
// for a device route.
func defaultDst() *net.IPNet { return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)} }

// Names of the nftables objects in a Swarm's switch namespace.
const (
	nftTable = "sslab"
	nftChain = "forward"
)

// isolateSegments installs, in the current thread's (the switch's)
// namespace, the rules that make a Swarm's segments separate broadcast
// domains on one bridge. Every switch port carries its segment number as
// its interface group (1...), and for each segment g:
//
//	table bridge sslab {
//	  chain forward { type filter hook forward priority filter; policy accept;
//	    meta iifgroup g meta oifgroup != g ether type ip ether daddr ff:ff:ff:ff:ff:ff counter drop
//	    meta iifgroup g meta oifgroup != g ether type ip ether daddr & ff:ff:ff:00:00:00 == 01:00:5e:00:00:00 counter drop
//	  }
//	}
//
// With ipv6, UDP to IPv6 multicast is dropped between segments too:
//
//	meta iifgroup g meta oifgroup != g ether type ip6 ether daddr & ff:ff:00:00:00:00 == 33:33:00:00:00:00 ip6 nexthdr {udp, fragment} counter drop
//
// so an IPv6 search stops at its segment's edge as it does on a router,
// while neighbour discovery and MLD (ICMPv6, also to 33:33:… groups) and
// IPv6 unicast cross.
//
// The bridge runs the forward hook once per egress port of a flooded frame,
// so a broadcast still reaches the ports of its own segment. ARP (ether type
// 0x0806) and unicast cross, as on an overlay network.
func isolateSegments(segments int, ipv6 bool) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("lab: nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyBridge, Name: nftTable})
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     nftChain,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &policy,
	})
	for g := uint32(1); g <= uint32(segments); g++ {
		group := binaryutil.NativeEndian.PutUint32(g)
		match := func(dstOff, dstLen uint32, dst []byte) []expr.Any {
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFGROUP, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: group},
				&expr.Meta{Key: expr.MetaKeyOIFGROUP, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: group},
				// Ethernet type at offset 12 of the link-layer header.
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x08, 0x00}},
				// Destination MAC (or its first dstLen bytes) at offset 0.
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: dstOff, Len: dstLen},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}
		}
		// 01:00:5e is the IPv4 multicast MAC prefix (RFC 1112): any IPv4
		// frame to it is multicast, so comparing 3 bytes suffices.
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: match(0, 6, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: match(0, 3, []byte{0x01, 0x00, 0x5e})})
		if !ipv6 {
			continue
		}
		// The next header at offset 14+6: UDP (17) and a fragment header
		// (44), which a fragmented UDP datagram carries. Hop-by-hop (0)
		// is left: MLD reports carry one.
		for _, nh := range []byte{17, 44} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFGROUP, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: group},
				&expr.Meta{Key: expr.MetaKeyOIFGROUP, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: group},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x86, 0xdd}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x33, 0x33}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 14 + 6, Len: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nh}},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("lab: nftables rules: %w", err)
	}
	return nil
}

// SwitchDrops returns how many frames the Swarm switch has dropped between
// segments (broadcast and multicast), read from the rules' counters. It is 0
// for a Routed lab, whose bridges do not filter.
func (l *Lab) SwitchDrops() (uint64, error) {
	if l.routed {
		return 0, nil
	}
	if l.isClosed() {
		return 0, ErrClosed
	}
	var total uint64
	err := inNS(l.swPath, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := &nftables.Table{Family: nftables.TableFamilyBridge, Name: nftTable}
		rules, err := c.GetRules(t, &nftables.Chain{Name: nftChain, Table: t})
		if err != nil {
			return err
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					total += ctr.Packets
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("lab: switch counters: %w", err)
	}
	return total, nil
}
