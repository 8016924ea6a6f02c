//go:build linux

package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// meshPort is the relays' mesh port (the default of `snowsignal run`).
const meshPort = 7124

// counterSet is a snapshot of every drop counter the benchmark can see, by
// a readable name.
type counterSet map[string]uint64

// collectCounters reads the drop counters of the lab: each host's eth0
// (veth) drops, the UDP drop counters of the receivers' namespaces, the
// host-wide input backlog drops, the relays' mesh socket drops, every drop
// counter of the SnowSignal relays' stats snapshots when they serve one,
// and the reference relays' capture drops.
func collectCounters(l *netlab.Lab, receivers []*netlab.Host, relays []relay) (counterSet, error) {
	c := counterSet{}
	for _, h := range l.Hosts() {
		err := h.Do(func() error {
			link, err := netlink.LinkByName(netlab.IfName)
			if err != nil {
				return err
			}
			if st := link.Attrs().Statistics; st != nil {
				c[h.Name+" eth0 rx_dropped"] = st.RxDropped
				c[h.Name+" eth0 tx_dropped"] = st.TxDropped
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: link stats: %w", h.Name, err)
		}
	}
	for _, h := range receivers {
		err := h.Do(func() error {
			u, err := snmpUDP()
			if err != nil {
				return err
			}
			for _, k := range []string{"RcvbufErrors", "InErrors", "NoPorts", "InCsumErrors"} {
				c[h.Name+" udp "+k] = u[k]
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	d, err := softnetDrops()
	if err != nil {
		return nil, err
	}
	c["host input backlog (softnet) dropped"] = d
	for _, r := range relays {
		switch r := r.(type) {
		case *relayProc:
			if n, err := udpSocketDrops(r.r.Host, meshPort); err == nil {
				c[r.name+" mesh socket drops"] = n
			}
			if st, err := r.statsJSON(); err == nil {
				for k, v := range dropCounters(st) {
					c[r.name+" stats "+k] = uint64(v)
				}
			}
		case *refProc:
			if n, err := udpSocketDrops(r.host, meshPort); err == nil {
				c[r.name+" mesh socket drops"] = n
			}
		case *refRelay:
			if n, err := udpSocketDrops(r.host, meshPort); err == nil {
				c[r.name+" mesh socket drops"] = n
			}
			// PACKET_STATISTICS resets on reading: keep a running sum.
			if n, err := r.captureDrops(); err == nil {
				r.capDrops += n
				c[r.name+" capture socket drops"] = r.capDrops
			}
		}
	}
	return c, nil
}

// sub returns the counters that grew from before to c, by how much.
func (c counterSet) sub(before counterSet) counterSet {
	out := counterSet{}
	for k, v := range c {
		if v > before[k] {
			out[k] = v - before[k]
		}
	}
	return out
}

// String lists the counters in name order, "none" when empty.
func (c counterSet) String() string {
	if len(c) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}
