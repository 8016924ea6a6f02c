// Package labrelay runs the real snowsignal binary in the namespaces of a
// netio/netlab lab, for the `snowsignal demo` command, the integration tests
// and benchmarks. It is product code (the demo links it) and never imports
// package testing; the test helpers around it (building the binary, StartT)
// are in test/harness.
//
// A program builds a lab and starts a relay per relay host:
//
//	l, err := netlab.NewSwarm(netlab.TwoSegmentSwarm())
//	...
//	a, err := labrelay.Start(ctx, bin, l.Host("relay-a"), "--other-relays", "10.77.0.2")
//	b, err := labrelay.Start(ctx, bin, l.Host("relay-b"), "--other-relays", "10.77.0.1")
//	// ... send broadcasts from l.Host("client"), receive on l.Host("server")
//	if err := a.Stop(); err != nil { // SIGTERM; nil means exit status 0
//		...
//	}
//
// BinaryPath returns the running program, for a snowsignal command (the
// demo) that starts relays by running itself.
//
// # What Start does
//
// Start runs `bin run --log-format=json [--stats-socket=DIR/stats.sock]
// args...` in the host's namespace (netlab.Host.Command), with stdout and
// stderr captured line by line (Relay.Logs, Relay.Output, Relay.WaitLog), and
// returns once the relay is ready: it has logged "capturing" (stage capture)
// and "injecting" (stage inject), so its sockets are open and a broadcast
// sent now is relayed. If the process exits first, Start returns its exit
// error together with its output (e.g. "snowsignal: error: --mesh-port:
// ..."). Readiness is read from the log, so the relay must log at info level
// or lower (the default).
//
// Relays in different namespaces share one file system. Unless args name
// a --stats-socket, every relay gets its own socket path in a fresh temporary
// folder (Relay.StatsSocket), removed when the relay has exited, so two
// relays never fight over the default path. Binaries whose run command has
// no --stats-socket flag get none (StatsSocket is then empty).
//
// # Logs
//
// Every line the relay writes is kept. JSON lines (the relay's zerolog
// output) are parsed into map[string]any with the keys time, level,
// message and the log's fields (stage, iface, peer, ...); any other line
// (such as a command-line error) becomes {"raw": line}.
package labrelay
