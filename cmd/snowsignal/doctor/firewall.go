package doctor

import (
	"fmt"
	"slices"
	"strings"
)

// Chain is an nftables chain, reduced to what decides whether it drops UDP
// to a port. iptables-nft rules are nftables rules and appear here too.
type Chain struct {
	Family, Table, Name string
	// Hook is "input", "output", "prerouting", "postrouting", "forward",
	// "ingress", or "" for a regular chain (reached only by a jump).
	Hook string
	// Policy is "accept" or "drop" for a base chain.
	Policy string
	Rules  []Rule
}

// Rule is one rule of a chain.
type Rule struct {
	Handle uint64
	// Verdict is "accept", "drop", "reject", "jump" or "" (none: a rule
	// that only counts or logs).
	Verdict string
	// Proto is the layer-4 protocol the rule matches (17 UDP), 0 if any.
	Proto int
	// DPorts are the destination port ranges it matches; empty: any.
	DPorts []PortRange
	// Other reports matches besides protocol and destination port
	// (addresses, interfaces, conntrack state): the rule applies to some
	// datagrams only.
	Other bool
}

// PortRange is an inclusive range of ports.
type PortRange struct{ From, To uint16 }

// matchesUDP reports whether the rule matches some UDP datagram to port, and
// whether it matches them all.
func (r Rule) matchesUDP(port uint16) (some, all bool) {
	if r.Proto != 0 && r.Proto != 17 {
		return false, false
	}
	if len(r.DPorts) > 0 && !slices.ContainsFunc(r.DPorts, func(p PortRange) bool { return p.From <= port && port <= p.To }) {
		return false, false
	}
	return true, !r.Other
}

// checkFirewall: nftables rules on this host that drop or reject UDP to the
// mesh port (in or out) or to a broadcast port (in), and base chains whose
// policy drops them. Legacy iptables rules are not visible over nftables
// netlink: their presence is a warning.
func checkFirewall(cfg Config, chains func() ([]Chain, error), legacy func() ([]string, error)) []Result {
	var out []Result
	cs, err := chains()
	if err != nil {
		out = append(out, warn("firewall", "", "cannot read nftables rules over netlink: %v", err))
	} else {
		type want struct {
			port  uint16
			what  string
			hooks []string
		}
		wants := []want{{cfg.MeshPort, "the mesh port", []string{"input", "prerouting", "ingress", "output", "postrouting", ""}}}
		for _, p := range cfg.BroadcastPorts {
			wants = append(wants, want{p, "a broadcast port", []string{"input", "prerouting", "ingress", ""}})
		}
		n := 0
		for _, w := range wants {
			for _, c := range cs {
				if !slices.Contains(w.hooks, c.Hook) {
					continue
				}
				if r := chainVerdict(c, w.port, w.what); r != nil {
					out = append(out, *r)
					n++
				}
			}
		}
		if n == 0 {
			out = append(out, ok("firewall", "no nftables rule drops UDP to port %s (%d chains read)", portList(cfg), len(cs)))
		}
	}
	if names, err := legacy(); err == nil && len(names) > 0 {
		out = append(out, warn("firewall", "check them with `iptables-legacy -S`, or move to iptables-nft",
			"legacy iptables tables are loaded (%s): their rules cannot be read over netlink", strings.Join(names, ", ")))
	}
	return out
}

func portList(cfg Config) string {
	s := []string{fmt.Sprint(cfg.MeshPort)}
	for _, p := range cfg.BroadcastPorts {
		s = append(s, fmt.Sprint(p))
	}
	return strings.Join(s, ", ")
}

// chainVerdict returns a result if chain c drops UDP to port: a drop or
// reject rule before any rule accepting all of it, or a drop policy with no
// rule accepting it.
func chainVerdict(c Chain, port uint16, what string) *Result {
	name := fmt.Sprintf("%s %s %s", c.Family, c.Table, c.Name)
	check := fmt.Sprintf("firewall %d", port)
	for _, r := range c.Rules {
		some, all := r.matchesUDP(port)
		if !some {
			continue
		}
		switch r.Verdict {
		case "accept":
			if all {
				return nil
			}
		case "drop", "reject":
			del := fmt.Sprintf("nft delete rule %s handle %d", name, r.Handle)
			if !all {
				res := warn(check, del+", or accept UDP "+fmt.Sprint(port)+" from the relays before it",
					"rule %d of chain %s (%s) may %s UDP to %s %d (it matches some sources or interfaces only)", r.Handle, name, hookName(c), r.Verdict, what, port)
				return &res
			}
			res := fail(check, del, "rule %d of chain %s (%s) %ss all UDP to %s %d", r.Handle, name, hookName(c), r.Verdict, what, port)
			if c.Hook == "" {
				res.Status = Warn // only if a base chain jumps to it
			}
			return &res
		}
	}
	if c.Policy == "drop" && c.Hook != "" {
		res := fail(check, fmt.Sprintf("nft add rule %s udp dport %d accept", name, port),
			"chain %s (%s) has policy drop and no rule accepts UDP to %s %d", name, hookName(c), what, port)
		return &res
	}
	return nil
}

func hookName(c Chain) string {
	if c.Hook == "" {
		return "regular chain, if jumped to"
	}
	return "hook " + c.Hook
}
