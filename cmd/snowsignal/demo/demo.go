// Package demo is `snowsignal demo`: it builds a two-segment lab of network
// namespaces, shows that a broadcast does not cross it, starts the real
// relay on each segment, and checks that broadcasts then cross exactly once
// with their source kept. demo.go runs the steps, narration.go holds the
// text, lab.go builds the lab and starts the relays, checks.go judges what
// arrived.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// Demo timing. A relayed datagram crosses the lab in well under a
// millisecond; these bounds only matter when something is wrong.
const (
	demoQuiet   = 300 * time.Millisecond // listening to show nothing arrives
	demoArrival = 2 * time.Second        // waiting for a datagram that must arrive
)

// demoPorts: the relayed PVAccess port and one the relays must ignore.
const (
	demoPort      = 5076
	demoOtherPort = 5077
)

// demoSend is one datagram the client sends.
type demoSend struct {
	what    string
	dst     netip.AddrPort
	payload []byte
	relayed bool // whether it must reach the server
}

// demoResult is what the server saw of one demoSend.
type demoResult struct {
	copies int            // datagrams the server's socket received
	from   netip.AddrPort // their source, as the socket reports it
	frame  netlab.Frame   // the frame on segment b, if sniffed
	sniff  bool
}

// Options are the demo's switches.
type Options struct {
	// Verbose echoes the relays' log lines.
	Verbose bool
	// IPv6 gives the lab's hosts ULA addresses, runs the relays with
	// --ipv6 and adds a step of IPv6 searches (ipv6.go).
	IPv6 bool
}

// Run is the demo, writing to w and running bin for the relays. It removes
// the lab before it returns, also when ctx ends (Ctrl-C).
func Run(ctx context.Context, w io.Writer, bin string, o Options) (err error) {
	if err := checkPrerequisites(); err != nil {
		return err
	}
	r, err := newRig(o.IPv6)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: removing the lab: %w", cerr))
			return
		}
		fmt.Fprintf(w, "\nRemoved the lab: no namespace of %s is left.\n", r.lab.ID())
	}()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	introduce(w, r)

	// 1. Without relays nothing crosses.
	if err := r.showIsolation(ctx, w); err != nil {
		return err
	}

	// 2. Start the relays: this program's run command, as real processes.
	narrateRelaysStarting(w)
	relays, err := r.startRelays(ctx, w, bin, o.Verbose)
	defer func() {
		for _, rl := range relays {
			rl.Stop()
		}
	}()
	if err != nil {
		return err
	}

	// 3. Broadcasts from the client, and the server's reply.
	sends := r.sends()
	narrateSends(w, r)
	results, err := r.sendAll(ctx, sends)
	if err != nil {
		return err
	}
	delivered, failed := printTable(w, sends, results, netip.AddrPortFrom(r.client.IP, r.clientPort), r.relayB)
	if !r.checkReply(ctx, w, results[0]) {
		failed++
	}

	// 3b. With --ipv6: IPv6 searches to ff02::1.
	if o.IPv6 {
		n, f, err := r.showIPv6(ctx, w)
		if err != nil {
			return err
		}
		delivered, failed = delivered+n, failed+f
	}

	// 4. What the relays counted: their last log line, written on SIGTERM.
	failed += reportCounters(w, relays)
	relays = nil

	if failed > 0 {
		return fmt.Errorf("demo: %d of the checks above failed: the relays did not deliver as they should", failed)
	}
	narrateSuccess(w, delivered)
	return nil
}
