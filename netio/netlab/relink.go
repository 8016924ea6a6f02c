package netlab

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// RemovedLink is a host's eth0 that Host.RemoveLink deleted, with what
// Restore needs to make it again.
type RemovedLink struct {
	h      *Host
	bridge int    // the switch port's bridge, by index in the switch
	group  uint32 // the switch port's interface group (its Swarm segment)
}

// RemoveLink deletes the host's eth0, as a container runtime does when it
// detaches a container from a network. Deleting one end of a veth pair
// deletes the other, so the switch port goes too; RemoveLink returns once it
// has. Programs in the host see their sockets' interface vanish: packet
// sockets bound to it go dead for good, routes through it are gone.
func (h *Host) RemoveLink() (*RemovedLink, error) {
	if h.lab.isClosed() {
		return nil, ErrClosed
	}
	r := &RemovedLink{h: h}
	err := inNS(h.lab.swPath, func() error {
		port, err := netlink.LinkByName(h.port)
		if err != nil {
			return err
		}
		r.bridge, r.group = port.Attrs().MasterIndex, port.Attrs().Group
		return nil
	})
	if err == nil {
		err = h.Do(func() error {
			link, err := netlink.LinkByName(IfName)
			if err != nil {
				return err
			}
			return netlink.LinkDel(link)
		})
	}
	if err == nil {
		err = inNS(h.lab.swPath, func() error {
			return poll("switch port "+h.port+" removed", func() (bool, error) {
				_, err := netlink.LinkByName(h.port)
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) {
					return true, nil
				}
				return false, err
			})
		})
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %s: remove %s: %w", h.Name, IfName, err)
	}
	return r, nil
}

// Restore makes the host's eth0 again, as the lab first built it: the same
// name, MAC and address, the same switch port, segment and routes. It returns
// once eth0 is up and the switch forwards on its port. The new eth0 has a
// new interface index, which Restore stores in Host.Ifindex: call it while
// nothing else uses the host (Sniff reads Ifindex).
func (r *RemovedLink) Restore() error {
	h := r.h
	if h.lab.isClosed() {
		return ErrClosed
	}
	err := inNS(h.lab.swPath, func() error {
		return addPort(h.port, r.bridge, r.group, h.path, IfName, h.MAC)
	})
	if err == nil {
		err = h.Do(func() error {
			idx, err := configure(IfName, h.IP, h.Prefix, h.Gateway, true)
			if err != nil {
				return err
			}
			h.Ifindex = idx
			if err := waitOper([]string{IfName}, true); err != nil || !h.IP6.IsValid() {
				return err
			}
			// The link-local address comes from the MAC, which is the same.
			_, err = configure6(IfName, h.IP6)
			return err
		})
	}
	if err == nil {
		err = waitPorts(h.lab.swPath, []string{h.port}, true)
	}
	if err != nil {
		return fmt.Errorf("lab: %s: restore %s: %w", h.Name, IfName, err)
	}
	return nil
}
