package doctor

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
)

// checkMeshPort: the mesh socket binds the mesh port; it must be free, or
// held by the running relay.
func checkMeshPort(cfg Config, bind func(netip.AddrPort) error, running *snapshot) Result {
	check := fmt.Sprintf("mesh port %d", cfg.MeshPort)
	addr := cfg.MeshBind
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	err := bind(netip.AddrPortFrom(addr, cfg.MeshPort))
	switch {
	case err == nil:
		if running != nil && running.Config.MeshPort == cfg.MeshPort {
			return warn(check, "", "free, but the running relay says it uses it: it may run in another network namespace")
		}
		return ok(check, "UDP %s is free", netip.AddrPortFrom(addr, cfg.MeshPort))
	case errors.Is(err, syscall.EADDRINUSE):
		if running != nil && running.Config.MeshPort == cfg.MeshPort {
			return ok(check, "held by the running relay")
		}
		return fail(check, fmt.Sprintf("stop it (find it: ss -ulpn 'sport = :%d'), or choose another --mesh-port on every relay", cfg.MeshPort),
			"held by another process, not a relay answering on %s: the relay cannot bind it", cfg.StatsSocket)
	default:
		return fail(check, "", "cannot bind UDP %s: %v", netip.AddrPortFrom(addr, cfg.MeshPort), err)
	}
}

// checkBroadcastPorts: a server on this host listening on a relayed port
// receives relayed broadcasts through local delivery (a copy to lo), and
// only through it. The relay's own capture does not bind these ports.
func checkBroadcastPorts(cfg Config, bound []netip.AddrPort, err error, running bool) []Result {
	if err != nil {
		return []Result{warn("broadcast ports", "", "cannot list this host's UDP sockets (sock_diag): %v", err)}
	}
	var out []Result
	for _, p := range cfg.BroadcastPorts {
		check := fmt.Sprintf("broadcast port %d", p)
		var here []string
		for _, b := range bound {
			if b.Port() == p && !slices.Contains(here, b.String()) {
				here = append(here, b.String())
			}
		}
		switch {
		case len(here) == 0:
			out = append(out, ok(check, "no local server listens (relayed broadcasts go to the segment only)"))
		case cfg.LocalDelivery:
			out = append(out, ok(check, "a local server listens (%s): local delivery copies relayed broadcasts to it", strings.Join(here, ", ")))
		default:
			out = append(out, warn(check, "--local-delivery (env LOCAL_DELIVERY=true)",
				"a local server listens (%s) but local delivery is off: it does not receive broadcasts relayed from other segments", strings.Join(here, ", ")))
		}
	}
	return out
}
