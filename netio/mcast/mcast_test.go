//go:build linux

package mcast

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/snowsignal/snowsignal/netio/internal/nstest"
)

// memberships returns the groups /proc/net/igmp6 lists for ifname, as the
// kernel prints them (32 hex digits), and the MACs /proc/net/dev_mcast
// lists (12 hex digits). /proc/net is the process leader's namespace;
// /proc/thread-self/net is the reading thread's, the one ns.Do runs in.
func memberships(ifname string) (groups, macs []string, err error) {
	b, err := os.ReadFile("/proc/thread-self/net/igmp6")
	if err != nil {
		return nil, nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		// "3    v6b             ff020000000000000000000000010003     1 00000004 0"
		if f := strings.Fields(l); len(f) >= 3 && f[1] == ifname {
			groups = append(groups, f[2])
		}
	}
	b, err = os.ReadFile("/proc/thread-self/net/dev_mcast")
	if err != nil {
		return nil, nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		// "3    v6b             1     0     333300010003"
		if f := strings.Fields(l); len(f) >= 5 && f[1] == ifname {
			macs = append(macs, f[4])
		}
	}
	return groups, macs, nil
}

func hex16(a netip.Addr) string { b := a.As16(); return fmt.Sprintf("%x", b[:]) }

// TestJoinShowsMembership: after Join the kernel lists the groups as IPv6
// memberships of the interface (what makes it send MLD reports) and their
// MACs in the interface's filter; after Close, neither.
func TestJoinShowsMembership(t *testing.T) {
	ns := nstest.New(t)
	groups := []netip.Addr{netip.MustParseAddr("ff02::1:3"), netip.MustParseAddr("ff02::dead:beef"), netip.MustParseAddr("ff02::1:3")}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(nstest.IfB)
		if err != nil {
			return err
		}
		m, err := Join(ifi.Index, groups)
		if err != nil {
			return err
		}
		if got := m.Groups(); len(got) != 2 || got[0] != groups[0] || got[1] != groups[1] || m.Interface() != ifi.Index {
			t.Errorf("Groups() = %v on %d, want the two distinct groups on %d", got, m.Interface(), ifi.Index)
		}
		joined, macs, err := memberships(nstest.IfB)
		if err != nil {
			return err
		}
		for _, want := range []struct{ group, mac string }{
			{"ff020000000000000000000000010003", "333300010003"},
			{"ff0200000000000000000000deadbeef", "3333deadbeef"},
		} {
			if !slices.Contains(joined, want.group) || !slices.Contains(macs, want.mac) {
				t.Errorf("joined: igmp6 %v, dev_mcast %v; want %s and %s", joined, macs, want.group, want.mac)
			}
		}
		if other, _, _ := memberships(nstest.IfA); slices.Contains(other, hex16(groups[0])) {
			t.Errorf("group joined on %s too: %v", nstest.IfA, other)
		}
		if err := m.Close(); err != nil {
			return err
		}
		joined, macs, err = memberships(nstest.IfB)
		if err != nil {
			return err
		}
		if slices.Contains(joined, hex16(groups[0])) || slices.Contains(macs, "333300010003") {
			t.Errorf("after Close: igmp6 %v, dev_mcast %v still list ff02::1:3", joined, macs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestJoinErrors(t *testing.T) {
	ns := nstest.New(t)
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(nstest.IfB)
		if err != nil {
			return err
		}
		for _, tc := range []struct {
			ifindex int
			group   string
			want    string
		}{
			{ifi.Index, "fd00:6::9", "not an IPv6 multicast group"},
			{ifi.Index, "224.0.0.1", "not an IPv6 multicast group"},
			{ifi.Index, "ff02::1:3%v6b", "without a zone"},
			{999, "ff02::1:3", "IPV6_JOIN_GROUP"}, // no such interface
		} {
			m, err := Join(tc.ifindex, []netip.Addr{netip.MustParseAddr(tc.group)})
			if err == nil {
				m.Close()
				t.Errorf("Join(%d, %s) succeeded", tc.ifindex, tc.group)
				continue
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), strings.Split(tc.group, "%")[0]) {
				t.Errorf("Join(%d, %s) = %v, want an error naming the group and %q", tc.ifindex, tc.group, err, tc.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
