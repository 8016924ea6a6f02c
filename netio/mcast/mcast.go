//go:build linux

// Package mcast joins the IPv6 link-scope multicast groups the relay
// captures, so that they reach its interface.
//
// Two kernel mechanisms can make an interface accept a multicast group:
//
//   - PACKET_ADD_MEMBERSHIP with PACKET_MR_MULTICAST on the AF_PACKET
//     socket adds the group's 33:33:… MAC to the interface's filter
//     (/proc/net/dev_mcast), and nothing more: no MLD report is sent, so an
//     MLD-snooping switch keeps the group off the port.
//   - IPV6_JOIN_GROUP on an IPv6 socket makes the IPv6 stack a member: it
//     adds the same MAC to the interface's filter, lists the group in
//     /proc/net/igmp6, sends MLD reports and answers the router's queries
//     (RFC 3810), so snooping switches deliver the group.
//
// Join uses the second, which does all the first does. It needs IPv6 on the
// interface (not disable_ipv6), which relaying IPv6 needs anyway. The
// socket is a UDP socket that is never bound, so it receives nothing and
// costs no buffer; the memberships last as long as it is open, and the
// kernel drops them if the interface goes away (rejoin after re-creating
// it).
package mcast

import (
	"fmt"
	"net/netip"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// A Membership holds IPv6 multicast groups joined on one interface.
type Membership struct {
	fd      int
	ifindex int
	groups  []netip.Addr
}

// Join joins groups on the interface with index ifindex. Each group must be
// an IPv6 multicast address without a zone (the interface is given);
// duplicates are joined once. On error nothing stays joined.
func Join(ifindex int, groups []netip.Addr) (*Membership, error) {
	for _, g := range groups {
		if !g.Is6() || g.Is4In6() || !g.IsMulticast() || g.Zone() != "" {
			return nil, fmt.Errorf("join %s on interface %d: not an IPv6 multicast group without a zone", g, ifindex)
		}
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("join on interface %d: %w", ifindex, os.NewSyscallError("socket", err))
	}
	m := &Membership{fd: fd, ifindex: ifindex}
	for _, g := range groups {
		if slices.Contains(m.groups, g) {
			continue
		}
		mreq := unix.IPv6Mreq{Multiaddr: g.As16(), Interface: uint32(ifindex)}
		if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, &mreq); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("join %s on interface %d: %w", g, ifindex, os.NewSyscallError("setsockopt IPV6_JOIN_GROUP", err))
		}
		m.groups = append(m.groups, g)
	}
	return m, nil
}

// Groups returns the groups joined, in the order given, without duplicates.
func (m *Membership) Groups() []netip.Addr { return slices.Clone(m.groups) }

// Interface returns the index of the interface the groups are joined on.
func (m *Membership) Interface() int { return m.ifindex }

// Close leaves every group: the kernel drops a socket's memberships when
// it is closed (and sends MLD done messages).
func (m *Membership) Close() error {
	if err := unix.Close(m.fd); err != nil {
		return fmt.Errorf("leave groups on interface %d: %w", m.ifindex, os.NewSyscallError("close", err))
	}
	return nil
}
