package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// showIPv6 is the demo's IPv6 step (--ipv6): the client sends a PVAccess
// search to [ff02::1%eth0]:5076 from its ULA address, which must reach the
// server once with the client's address and port and be answered by
// unicast, and one from its link-local address, which must not be relayed
// (no server elsewhere could answer it). It returns how many searches were
// delivered as they should and how many checks failed.
func (r *rig) showIPv6(ctx context.Context, w io.Writer) (delivered, failed int, err error) {
	group := netip.AddrPortFrom(netip.MustParseAddr("ff02::1").WithZone(netlab.IfName), demoPort)
	port := func(c *net.UDPConn) uint16 { return uint16(c.LocalAddr().(*net.UDPAddr).Port) }
	ula := netip.AddrPortFrom(r.client.IP6, port(r.cl6))
	fmt.Fprintf(w, "\n3b. IPv6 has no broadcast: an IPv6 client searches by multicast to %s. The client sends:\n\n", group)
	sends := []struct {
		what    string
		conn    *net.UDPConn
		from    netip.AddrPort
		payload []byte
		relayed bool
	}{
		{"from its ULA address", r.cl6, ula, pvaSearch(11, port(r.cl6), 0x10203051, "EP:TEMP"), true},
		{"from its link-local address", r.clLL, netip.AddrPortFrom(r.client.LinkLocal6, port(r.clLL)), pvaSearch(12, port(r.clLL), 0x10203052, "EP:TEMP"), false},
	}
	for _, s := range sends {
		err := r.client.Do(func() error { _, err := s.conn.WriteToUDPAddrPort(s.payload, group); return err })
		if err != nil {
			return delivered, failed, fmt.Errorf("demo: send to %s: %w", group, err)
		}
		res := receive(ctx, r.srv6, nil, demoSend{payload: s.payload, relayed: s.relayed})
		if ctx.Err() != nil {
			return delivered, failed, ctx.Err()
		}
		got, ok := "nothing", res.copies == 0
		if res.copies > 0 {
			got = fmt.Sprintf("%d copy from %s", res.copies, res.from)
		}
		if s.relayed {
			ok = res.copies == 1 && netip.AddrPortFrom(res.from.Addr().WithZone(""), res.from.Port()) == s.from
			if ok {
				delivered++
			}
		} else {
			got += " (not relayed: counted as link_local_source)"
		}
		mark := "✓"
		if !ok {
			mark, failed = "✗", failed+1
		}
		fmt.Fprintf(w, "     PVAccess search EP:TEMP %s %s: the server received %s %s\n", s.what, s.from, got, mark)
		if s.relayed && ok {
			reply := []byte("search response for EP:TEMP over IPv6")
			arrived := false
			if _, err := r.srv6.WriteToUDPAddrPort(reply, res.from); err == nil {
				arrived = arrives(ctx, r.cl6, reply, demoArrival)
			}
			mark := "✓"
			if !arrived {
				mark, failed = "✗ (it did not arrive)", failed+1
			}
			fmt.Fprintf(w, "     The server replied by unicast to %s; the client received it. %s\n", res.from, mark)
		}
	}
	return delivered, failed, nil
}
