//go:build linux

// Package iface describes the relay's target interface: index, MTU, MAC,
// IPv4 address and the broadcast address of its subnet, and its IPv6
// addresses.
package iface

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNotFound is wrapped by Lookup when no interface has the name.
var ErrNotFound = errors.New("no such interface")

// Info is what the relay needs to know about its interface.
type Info struct {
	Name  string
	Index int
	MTU   int
	MAC   [6]byte
	// Up reports whether the interface is administratively up.
	Up bool
	// Addr and Prefix are the interface's first IPv4 address and subnet;
	// invalid when it has none (yet).
	Addr   netip.Addr
	Prefix netip.Prefix
	// Broadcast is the subnet's broadcast address: the one configured on the
	// interface, or the prefix's last address when none is set.
	Broadcast netip.Addr
	// Addrs are all the interface's IPv4 addresses, in the kernel's order
	// (the primary first); Addr, Prefix and Broadcast describe Addrs[0].
	Addrs []Address
	// Addrs6 are the interface's usable IPv6 addresses that are not
	// link-local (global and unique-local), with their prefixes, in the
	// kernel's order. Tentative, deprecated and duplicate addresses are left
	// out: neither the mesh nor a client should start using one.
	Addrs6 []netip.Prefix
	// LinkLocal6 is the interface's link-local IPv6 address (fe80::/10),
	// zoned with the interface name; invalid when it has none. It is what
	// the interface's own MLD reports and neighbour discovery use, never a
	// mesh address (it does not reach other segments).
	LinkLocal6 netip.Addr
}

// Address is one IPv4 address of an interface.
type Address struct {
	// Prefix is the address with its prefix length (10.0.0.1/24, not masked).
	Prefix netip.Prefix
	// Broadcast is the subnet's broadcast address: the configured one, or
	// the prefix's last address; BroadcastSet reports which.
	Broadcast    netip.Addr
	BroadcastSet bool
}

// BroadcastFor returns the broadcast address of the interface's subnet that
// holds src (secondary addresses included), else that of the first address:
// a relayed broadcast goes to the subnet of the client that sent it.
func (i *Info) BroadcastFor(src netip.Addr) netip.Addr {
	for k := range i.Addrs {
		if i.Addrs[k].Prefix.Contains(src) {
			return i.Addrs[k].Broadcast
		}
	}
	return i.Broadcast
}

// IsBroadcast reports whether a is the broadcast address of one of the
// interface's subnets.
func (i *Info) IsBroadcast(a netip.Addr) bool {
	if a == i.Broadcast {
		return a.IsValid()
	}
	for k := range i.Addrs {
		if i.Addrs[k].Broadcast == a {
			return true
		}
	}
	return false
}

// Addr6 returns the IPv6 address the mesh binds on this interface: the first
// global unicast address, else the first unique-local one (fc00::/7); invalid
// when there is neither.
func (i *Info) Addr6() netip.Addr {
	var ula netip.Addr
	for _, p := range i.Addrs6 {
		a := p.Addr()
		if uniqueLocal.Contains(a) {
			if !ula.IsValid() {
				ula = a
			}
			continue
		}
		return a
	}
	return ula
}

// uniqueLocal is fc00::/7 (RFC 4193).
var uniqueLocal = netip.MustParsePrefix("fc00::/7")

// unusable6 are the flags of an IPv6 address not (or no longer) to be used.
const unusable6 = unix.IFA_F_TENTATIVE | unix.IFA_F_DEPRECATED | unix.IFA_F_DADFAILED

// addrs6 fills in the IPv6 addresses of info from the kernel's list.
func addrs6(info *Info, addrs []netlink.Addr) {
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok || !ip.Is6() || ip.Is4In6() || ad.Flags&unusable6 != 0 {
			continue
		}
		switch {
		case ip.IsLinkLocalUnicast():
			if !info.LinkLocal6.IsValid() {
				info.LinkLocal6 = ip.WithZone(info.Name)
			}
		case ip.IsGlobalUnicast():
			ones, _ := ad.Mask.Size()
			info.Addrs6 = append(info.Addrs6, netip.PrefixFrom(ip, ones))
		}
	}
}

// Interface returns the net.Interface for the sockets packages.
func (i *Info) Interface() *net.Interface {
	return &net.Interface{Index: i.Index, MTU: i.MTU, Name: i.Name, HardwareAddr: i.MAC[:]}
}

// Lookup describes the interface called name. When there is none, the error
// lists the interfaces that exist.
func Lookup(name string) (*Info, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("interface %q: %w (have: %s)", name, ErrNotFound, strings.Join(Names(), ", "))
		}
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	a := link.Attrs()
	info := &Info{Name: a.Name, Index: a.Index, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
	copy(info.MAC[:], a.HardwareAddr)
	addrs, err := netlink.AddrList(link, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("interface %q: addresses: %w", name, err)
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP.To4())
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		x := Address{Prefix: netip.PrefixFrom(ip, ones)}
		if b, ok := netip.AddrFromSlice(ad.Broadcast.To4()); ok && !b.IsUnspecified() {
			x.Broadcast, x.BroadcastSet = b, true
		} else {
			x.Broadcast = LastAddr(x.Prefix)
		}
		info.Addrs = append(info.Addrs, x)
	}
	if len(info.Addrs) > 0 {
		info.Addr, info.Prefix, info.Broadcast = info.Addrs[0].Prefix.Addr(), info.Addrs[0].Prefix.Masked(), info.Addrs[0].Broadcast
	}
	addrs, err = netlink.AddrList(link, unix.AF_INET6)
	if err != nil {
		return nil, fmt.Errorf("interface %q: IPv6 addresses: %w", name, err)
	}
	addrs6(info, addrs)
	return info, nil
}

// LastAddr returns the last IPv4 address of p: its directed broadcast.
func LastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	if p.Bits() == 0 {
		host = ^uint32(0)
	}
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Names lists the interfaces of this network namespace, sorted.
func Names() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	slices.Sort(out)
	return out
}

// LocalAddrs returns every IPv4 and IPv6 address configured on any
// interface of this network namespace: a peer is never one of them.
func LocalAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("local addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// Current holds the latest Info of the target interface, shared by the
// stages that look it up (which refresh it) and those that only read it.
type Current struct{ p atomic.Pointer[Info] }

// Load returns the latest Info, or nil before the first lookup.
func (c *Current) Load() *Info { return c.p.Load() }

// Store publishes a fresh Info.
func (c *Current) Store(i *Info) { c.p.Store(i) }
