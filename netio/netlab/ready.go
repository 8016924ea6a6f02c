package netlab

import (
	"bytes"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Bridge port states (linux/if_bridge.h).
const (
	brStateDisabled   = 0
	brStateForwarding = 3
)

// readyTimeout bounds the wait for the kernel to act on a link change.
const readyTimeout = 5 * time.Second

// The kernel tells the bridge (and sets a device's operational state) about
// a carrier change from the linkwatch work queue, after the netlink request
// that set the link up has returned. A frame sent in between is dropped by
// the bridge, so a lab waits for its ports before handing them out.

// bridgePortStates returns the state of every bridge port of the current
// thread's namespace, like `bridge link show`: an AF_BRIDGE link dump, whose
// IFLA_PROTINFO holds IFLA_BRPORT_STATE.
func bridgePortStates() (map[string]uint8, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("bridge port dump: %w", err)
	}
	states := map[string]uint8{}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return nil, fmt.Errorf("bridge port dump: %w", err)
		}
		name, state := "", -1
		for _, a := range attrs {
			switch a.Attr.Type & nl.NLA_TYPE_MASK {
			case unix.IFLA_IFNAME:
				name = string(bytes.TrimRight(a.Value, "\x00"))
			case unix.IFLA_PROTINFO:
				sub, err := nl.ParseRouteAttr(a.Value)
				if err != nil {
					return nil, fmt.Errorf("bridge port dump: %w", err)
				}
				for _, s := range sub {
					if s.Attr.Type&nl.NLA_TYPE_MASK == unix.IFLA_BRPORT_STATE && len(s.Value) > 0 {
						state = int(s.Value[0])
					}
				}
			}
		}
		if name != "" && state >= 0 {
			states[name] = uint8(state)
		}
	}
	return states, nil
}

// poll calls cond every millisecond until it returns true or an error, for
// at most readyTimeout.
func poll(what string, cond func() (bool, error)) error {
	end := time.Now().Add(readyTimeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(end) {
			return fmt.Errorf("lab: %s: not after %v", what, readyTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitPorts waits, on a thread in the namespace at swPath, until every
// named bridge port is forwarding (forwarding) or disabled (!forwarding).
func waitPorts(swPath string, ports []string, forwarding bool) error {
	want, word := uint8(brStateForwarding), "forwarding"
	if !forwarding {
		want, word = brStateDisabled, "disabled"
	}
	return inNS(swPath, func() error {
		return poll(fmt.Sprintf("switch ports %v %s", ports, word), func() (bool, error) {
			states, err := bridgePortStates()
			if err != nil {
				return false, err
			}
			for _, p := range ports {
				if s, ok := states[p]; !ok || s != want {
					return false, nil
				}
			}
			return true, nil
		})
	})
}

// waitOper waits, on the current thread's namespace, until each named link's
// operational state is up (or down).
func waitOper(names []string, up bool) error {
	want := netlink.LinkOperState(netlink.OperUp)
	if !up {
		want = netlink.LinkOperState(netlink.OperDown)
	}
	return poll(fmt.Sprintf("links %v operationally %v", names, want), func() (bool, error) {
		for _, n := range names {
			link, err := netlink.LinkByName(n)
			if err != nil {
				return false, err
			}
			if link.Attrs().OperState != want {
				return false, nil
			}
		}
		return true, nil
	})
}
