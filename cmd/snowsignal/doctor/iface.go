package doctor

import (
	"fmt"
	"strings"
)

// checkInterface: the target interface must exist, be up and have an IPv4
// address with a broadcast address; every IPv4 address is reported.
func checkInterface(name string, info *Iface, err error, names func() []string) []Result {
	check := "interface " + name
	if err != nil || info == nil {
		have := "none"
		if names != nil {
			have = strings.Join(names(), ", ")
		}
		return []Result{fail(check, "--target-interface (env TARGET_INTERFACE) with one of: "+have,
			"does not exist (%v); interfaces here: %s", err, have)}
	}
	var out []Result
	if info.Up {
		out = append(out, ok(check, "exists and is up, MTU %d", info.MTU))
	} else {
		out = append(out, fail(check, "ip link set "+name+" up",
			"is down: nothing is captured or re-broadcast on it"))
	}
	switch n := len(info.Addrs); {
	case n == 0:
		out = append(out, fail(check, "ip addr add ADDRESS/PREFIX dev "+name,
			"has no IPv4 address: the relay cannot reach its peers or set broadcast destinations"))
		return out
	case n == 1:
		out = append(out, ok(check, "IPv4 address %s", describeAddr(info.Addrs[0])))
	default:
		var all []string
		for _, a := range info.Addrs {
			all = append(all, describeAddr(a))
		}
		out = append(out, ok(check, "%d IPv4 addresses: %s; each relayed broadcast goes to its client's subnet (else %s's)",
			n, strings.Join(all, ", "), info.Addrs[0].Prefix.Masked()))
	}
	if !info.Addrs[0].Broadcast.IsValid() {
		out = append(out, warn(check, fmt.Sprintf("ip addr change %s brd + dev %s", info.Addrs[0].Prefix, name),
			"%s has no broadcast address set; the relay takes the subnet's last address", info.Addrs[0].Prefix))
	}
	return out
}

func describeAddr(a IfaceAddr) string {
	if a.Broadcast.IsValid() {
		return fmt.Sprintf("%s (broadcast %s)", a.Prefix, a.Broadcast)
	}
	return a.Prefix.String() + " (no broadcast)"
}

// checkRPFilter: strict reverse-path filtering (1) drops broadcasts whose
// source the route table does not reach through the interface they came
// in on. Local delivery copies relayed broadcasts, whose sources are hosts on
// other segments, to lo; with strict rp_filter on lo the servers on this
// host never see them. The effective value is the maximum of "all" and the
// interface's own (ip-sysctl.txt).
func checkRPFilter(ifname string, localDelivery bool, sysctl func(string) (string, error)) []Result {
	read := func(dev string) (int, error) {
		v := 0
		for _, d := range []string{"all", dev} {
			s, err := sysctl("net.ipv4.conf." + d + ".rp_filter")
			if err != nil {
				return 0, err
			}
			var n int
			if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil {
				return 0, fmt.Errorf("net.ipv4.conf.%s.rp_filter: %q: %w", d, s, err)
			}
			v = max(v, n)
		}
		return v, nil
	}
	fix := func(dev string) string {
		return fmt.Sprintf("sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.%s.rp_filter=2 (loose; or 0)", dev)
	}
	var out []Result
	if v, err := read(ifname); err != nil {
		out = append(out, warn("rp_filter "+ifname, "", "cannot read: %v", err))
	} else if v == 1 {
		out = append(out, warn("rp_filter "+ifname, fix(ifname),
			"strict (1): this host drops broadcasts on %s whose source it routes elsewhere; hosts on the segment with strict rp_filter drop relayed broadcasts the same way", ifname))
	} else {
		out = append(out, ok("rp_filter "+ifname, "%d (not strict)", v))
	}
	if !localDelivery {
		return out
	}
	if v, err := read("lo"); err != nil {
		out = append(out, warn("rp_filter lo", "", "cannot read: %v", err))
	} else if v == 1 {
		out = append(out, fail("rp_filter lo", fix("lo")+", or --no-local-delivery",
			"strict (1) with local delivery on: servers on this host never receive relayed broadcasts (their sources are on other segments)"))
	} else {
		out = append(out, ok("rp_filter lo", "%d (not strict): local delivery reaches servers on this host", v))
	}
	return out
}
