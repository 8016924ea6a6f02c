package netlab

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestRemoveLinkAndRestore: a removed eth0 is gone from the host and from
// the switch, nothing reaches the host; after Restore, unicast and broadcast
// reach it again, on an eth0 with the same MAC and a new index.
func TestRemoveLinkAndRestore(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		new  func(*testing.T, Spec) *Lab
	}{
		{"swarm", TwoSegmentSwarm(), func(t *testing.T, s Spec) *Lab { return NewSwarmT(t, s) }},
		{"routed", TwoSubnetRouted(), func(t *testing.T, s Spec) *Lab { return NewRoutedT(t, s) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.new(t, tc.spec)
			server, relay := l.Host("server"), l.Host("relay-b")
			oldIndex := relay.Ifindex
			rl, err := relay.RemoveLink()
			if err != nil {
				t.Fatal(err)
			}
			err = relay.Do(func() error {
				_, err := netlink.LinkByName(IfName)
				return err
			})
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) {
				t.Fatalf("eth0 after RemoveLink: %v, want not found", err)
			}
			if err := rl.Restore(); err != nil {
				t.Fatal(err)
			}
			if relay.Ifindex == oldIndex {
				t.Logf("the new eth0 reuses index %d", oldIndex) // allowed, if unusual
			}
			err = relay.Do(func() error {
				link, err := netlink.LinkByName(IfName)
				if err != nil {
					return err
				}
				if link.Attrs().HardwareAddr.String() != relay.MAC.String() || link.Attrs().Index != relay.Ifindex {
					t.Errorf("eth0 is %s index %d, want %s index %d", link.Attrs().HardwareAddr, link.Attrs().Index, relay.MAC, relay.Ifindex)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sn := sniff(t, relay)
			uc := listen(t, relay, "0.0.0.0:5076")
			sc, err := server.BroadcastUDP("0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			for _, dst := range []netip.Addr{relay.IP, server.Broadcast} {
				if _, err := sc.WriteToUDPAddrPort([]byte("back"), netip.AddrPortFrom(dst, port)); err != nil {
					t.Fatal(err)
				}
				expect(t, "to "+dst.String(), uc, []byte("back"), server.IP)
			}
			if _, err := sn.Next(patience); err != nil {
				t.Errorf("sniffer on the new eth0: %v", err)
			}
		})
	}
}
