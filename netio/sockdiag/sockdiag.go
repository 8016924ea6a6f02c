//go:build linux

// Package sockdiag lists this host's UDP sockets with sock_diag (the
// netlink interface behind ss(8)): the relay asks whether a local server
// listens on a relayed port, and `snowsignal doctor` which ones do.
package sockdiag

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A DumpFunc lists the UDP sockets of one address family in the calling
// thread's network namespace: netlink.SocketDiagUDP, or a fake in tests.
type DumpFunc func(family uint8) ([]*netlink.Socket, error)

// DumpUDP is the kernel's DumpFunc.
var DumpUDP DumpFunc = netlink.SocketDiagUDP

// UDPBound returns the local addresses of the UDP sockets (IPv4, and IPv6,
// which may be dual-stack) bound to one of ports, in the order the kernel
// lists them. A kernel without IPv6 has nothing bound there; any other
// failure is returned with what was found before it.
func UDPBound(dump DumpFunc, ports []uint16) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := dump(family)
		if err != nil {
			if family == unix.AF_INET6 && len(socks) == 0 && isNoFamily(err) {
				continue // no IPv6 in this kernel: nothing bound there
			}
			return out, fmt.Errorf("sock_diag UDP (family %d): %w", family, err)
		}
		for _, s := range socks {
			if slices.Contains(ports, s.ID.SourcePort) {
				out = append(out, netip.AddrPortFrom(addrOf(s.ID.Source), s.ID.SourcePort))
			}
		}
	}
	return out, nil
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// isNoFamily reports whether err says the kernel has no such address family
// (or no diagnostics for it).
func isNoFamily(err error) bool {
	return errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL)
}
