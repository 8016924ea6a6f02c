package doctor

import "fmt"

// capNetRaw is CAP_NET_RAW's bit in a capability set (linux/capability.h).
const capNetRaw = 13

// checkCapNetRaw: the relay opens AF_PACKET sockets to capture and inject,
// which needs CAP_NET_RAW (and nothing else on current kernels).
func checkCapNetRaw(eff uint64, err error) Result {
	const check = "capability"
	if err != nil {
		return warn(check, "", "cannot read this process's capabilities: %v", err)
	}
	if eff&(1<<capNetRaw) != 0 {
		return ok(check, "CAP_NET_RAW is effective (capture and inject can open AF_PACKET sockets)")
	}
	return fail(check, "run as root, or `setcap cap_net_raw+ep $(command -v snowsignal)`, or in a container `cap_add: [NET_RAW]` (compose) / `securityContext.capabilities.add: [NET_RAW]` (Kubernetes)",
		"CAP_NET_RAW is missing (effective set %#x): the relay cannot open its AF_PACKET sockets to capture and re-broadcast", eff)
}

// parseCapEff reads the CapEff line of /proc/self/status.
func parseCapEff(status string) (uint64, error) {
	var v uint64
	for _, line := range splitLines(status) {
		if n, _ := fmt.Sscanf(line, "CapEff:\t%x", &v); n == 1 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
