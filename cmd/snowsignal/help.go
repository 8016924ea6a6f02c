package main

import (
	"os"

	"github.com/alecthomas/kong"
)

// description heads `snowsignal --help`.
const description = `SnowSignal relays UDP broadcasts (EPICS PVAccess and Channel Access searches)
between network segments over a mesh of relays: one relay per segment, each
given the others.

Every flag can also be set by the environment variable shown beside it; the
command line wins. A variable set but empty counts as unset.

Examples:
  snowsignal -t eth0 --other-relays relay-b relay-c      relay to two peers
  OTHER_RELAYS="10.0.2.5 10.0.3.5" snowsignal            the same, from the environment
  snowsignal --discover tasks.snowsignal                 peers from DNS (Swarm, Kubernetes)
  snowsignal doctor -t eth0 --other-relays relay-b       check host and peers, with the fix
  snowsignal stats -w                                    watch a running relay's counters`

// flagGroups order and title the run command's flags in its help.
var flagGroups = []kong.Group{
	{Key: "net", Title: "Interface and ports:"},
	{Key: "peers", Title: "Peers and mesh:"},
	{Key: "tuning", Title: "Loops, limits and performance:"},
	{Key: "obs", Title: "Logging and observability:"},
	{Key: "Doctor", Title: "Doctor:"},
}

// Help adds examples to `snowsignal run --help`.
func (RunCmd) Help() string {
	return `Examples:
  snowsignal run -t eth0 -b 5076,5064 --other-relays 10.0.2.5 10.0.3.5
  snowsignal run -t eth0 --discover snowsignal.epics.svc.cluster.local --mesh-key-file /run/secrets/mesh.key
  snowsignal run -t eth0 --other-relays relay-b --metrics-address :9124 --rate-limit 2000`
}

// Help adds examples and the meaning of the output to `snowsignal doctor --help`.
func (DoctorCmd) Help() string {
	return `Takes the same flags and environment as run, and checks exactly the
configuration the daemon would use: privileges (CAP_NET_RAW), the target
interface, rp_filter, the mesh and broadcast ports, the firewall (nftables),
every peer (resolves, answers a probe on the mesh port: version, mesh format,
key id, MTU), and, when a relay answers on --stats-socket, its drop counters
over --sample. One line per check: ok, warn or FAIL, with the fix. Exit status
0 when nothing fails, 1 otherwise.

Examples:
  snowsignal doctor -t eth0 --other-relays relay-b relay-c
  docker exec snowsignal snowsignal doctor         (inside the relay's container: its environment)
  snowsignal doctor --json | jq '.results[] | select(.status != "ok")'`
}

// Help adds examples to `snowsignal stats --help`.
func (StatsCmd) Help() string {
	return `Examples:
  snowsignal stats                 the counters once, as a table
  snowsignal stats -w              refreshed every second with rates
  snowsignal stats --json | jq .drops`
}

// clearEmptyEnv unsets the environment variables of the CLI's flags that
// are set but empty (DISCOVERY_INTERVAL= in a compose file or manifest), so
// kong treats them as unset rather than failing to parse "". A flag tagged
// emptyenv:"keep" (STATS_SOCKET, where empty means off) keeps its empty
// value. It changes this process's environment once, before parsing.
func clearEmptyEnv(root *kong.Node) {
	keep := map[string]bool{}
	var empty []string
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, e := range f.Tag.Envs {
				if f.Tag.Has("emptyenv") {
					keep[e] = true
				}
				if v, ok := os.LookupEnv(e); ok && v == "" {
					empty = append(empty, e)
				}
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(root)
	for _, e := range empty {
		if !keep[e] {
			os.Unsetenv(e)
		}
	}
}

// Help adds examples to `snowsignal health --help`.
func (HealthCmd) Help() string {
	return `Examples:
  snowsignal health                                    as a Docker HEALTHCHECK or Kubernetes exec probe
  snowsignal health --socket /run/snowsignal/b.sock    a second relay on the same host`
}

// Help adds what the demo does to `snowsignal demo --help`.
func (DemoCmd) Help() string {
	return `Needs root (it creates network namespaces, veth pairs and a bridge) and
removes everything it made when it ends, also on Ctrl-C.

Examples:
  sudo snowsignal demo        narrated run
  sudo snowsignal demo -v     with the relays' log lines`
}
