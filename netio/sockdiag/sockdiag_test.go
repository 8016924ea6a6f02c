//go:build linux

package sockdiag

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func sock(ip string, port uint16) *netlink.Socket {
	return &netlink.Socket{ID: netlink.SocketID{Source: net.ParseIP(ip), SourcePort: port}}
}

// TestUDPBound: only sockets on the ports asked for, from both families;
// a kernel without IPv6 has nothing there; other failures are returned.
func TestUDPBound(t *testing.T) {
	dump := func(family uint8) ([]*netlink.Socket, error) {
		if family == unix.AF_INET {
			return []*netlink.Socket{sock("0.0.0.0", 5076), sock("10.0.0.1", 7124), sock("127.0.0.1", 5064)}, nil
		}
		return []*netlink.Socket{sock("::", 5076)}, nil
	}
	got, err := UDPBound(dump, []uint16{5076, 5064})
	want := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:5076"), netip.MustParseAddrPort("127.0.0.1:5064"), netip.MustParseAddrPort("[::]:5076")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("UDPBound = %v, %v; want %v", got, err, want)
	}
	noV6 := func(family uint8) ([]*netlink.Socket, error) {
		if family == unix.AF_INET6 {
			return nil, unix.EAFNOSUPPORT
		}
		return []*netlink.Socket{sock("0.0.0.0", 5076)}, nil
	}
	if got, err := UDPBound(noV6, []uint16{5076}); err != nil || len(got) != 1 {
		t.Errorf("without IPv6: %v, %v; want the IPv4 socket and no error", got, err)
	}
	broken := func(uint8) ([]*netlink.Socket, error) { return nil, unix.EPERM }
	if _, err := UDPBound(broken, []uint16{5076}); !errors.Is(err, unix.EPERM) {
		t.Errorf("failing dump: err %v; want EPERM", err)
	}
}
