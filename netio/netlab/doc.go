// Package netlab builds network-namespace labs for SnowSignal: the `snowsignal
// demo` command, the integration tests under test/ and the benchmark run the
// relay in them with real packets.
//
// Everything is made with netlink and nftables from Go (vishvananda/netlink,
// google/nftables); no iproute2 or nft binary is needed to build a lab. The
// `ip` binary is used only by Host.Command, to run a program in a host's
// namespace with `ip netns exec`. Nothing is changed in the root network
// namespace: bridges live in a "switch" namespace of their own.
//
// # Topologies
//
// NewSwarm builds what a Docker Swarm overlay looks like to a relay: one
// IPv4 subnet whose hosts sit on several segments of one bridge. An
// nftables rule in the switch (bridge family, forward hook) drops IPv4
// frames to ff:ff:ff:ff:ff:ff and to 01:00:5e:… (IPv4 multicast) between
// ports of different segments; unicast and ARP cross. TwoSegmentSwarm is
// the lab of the test vectors.
//
//	switch ns:  br0 ── a-client ── (client ns) eth0 10.77.0.11
//	             ├──── a-relay-a ─ (relay-a ns) eth0 10.77.0.1
//	             ├──── b-server ── (server ns) eth0 10.77.0.21
//	             └──── b-relay-b ─ (relay-b ns) eth0 10.77.0.2
//
// NewRouted builds one subnet and one bridge per segment, joined by a
// "router" namespace with one interface per segment (forwarding on,
// rp_filter off); every host has a default route via its segment's gateway.
// Unicast is routed; broadcast stays on its segment (the router does not
// forward directed broadcasts).
//
// # Hosts
//
// Every host is a namespace with lo up and one veth interface, eth0, up,
// with its address and a default route: via the gateway in a Routed lab,
// out of eth0 in a Swarm lab (as a container has one; without any route
// the kernel refuses to send to 255.255.255.255 from a socket bound to
// 0.0.0.0). MACs are 02:00 followed by the IPv4 address. A host's fixed
// address is given in HostSpec.Addr; hosts without one get the lowest free
// address of the subnet, after fixed addresses and gateways.
//
// For deterministic captures, IPv6 is disabled in every namespace before
// its interfaces exist (no link-local addresses, DAD, router or MLD
// solicitations), and the bridges run without STP, with forward delay 0 and
// multicast snooping off. The only frames on the wire are a test's own, ARP,
// and IGMP reports for groups a test joins.
//
// # Names and clean-up
//
// Namespaces are named Prefix + "<pid>-<4 hex digits>-<host>" (the switch
// and the router use the names "switch" and "router", which hosts may not
// have), bind-mounted under /run/netns like `ip netns add` does, so `ip
// netns exec` and `ip -n` work on them. Like iproute2, the first lab makes
// /run/netns a shared bind mount of itself and leaves it so.
//
// Lab.Close removes everything a lab made; it is idempotent and may run
// from a signal handler while the lab is still being built. netlabtest.NewSwarmT
// and NewRoutedT close the lab when the test ends, pass or fail. CloseOnSignal
// (for TestMain) closes every lab on Ctrl-C. What a killed process left
// behind, the next NewSwarm or NewRouted removes: Sweep removes the
// namespaces whose owner PID is no longer alive, never those of a live
// process.
//
// # Kernel behaviour worth knowing
//
//   - /proc/sys/net shows the network namespace of the thread that opens
//     it; sysfs shows that of whoever mounted it, so it is not used.
//   - A link's carrier change reaches the bridge (and the link's operational
//     state) from the kernel's linkwatch work, after the netlink call that
//     set the link up has returned; a frame sent in between is dropped by
//     the bridge. Builds and Host.SetLink therefore wait until every bridge
//     port is forwarding (or disabled) and eth0's operational state follows.
//   - Setting a link down deletes the IPv4 routes through it, the default
//     route included; Host.SetLink(true) adds it again.
//   - A thread that entered a namespace must leave it before Go may run
//     another goroutine on it. Host.Do runs fn on a fresh locked thread and
//     moves it back; if that fails the thread is left locked, so the runtime
//     ends it.
package netlab
