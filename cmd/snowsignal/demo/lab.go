package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// checkPrerequisites says what is missing to build the lab, or nil.
func checkPrerequisites() error {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("demo: building the lab of network namespaces needs root (%v); run: sudo go run ./cmd/snowsignal demo", err)
	}
	if !haveIP() {
		return errors.New("demo: needs the ip command (iproute2) to run the relays in namespaces; install it, e.g. apt-get install iproute2")
	}
	return nil
}

// A rig is the demo's lab: its hosts and the client's and server's sockets.
type rig struct {
	lab                            *netlab.Lab
	client, relayA, server, relayB *netlab.Host
	// cl is the client's broadcasting socket; srv and srvOther the
	// server's, on the relayed port and on one the relays ignore.
	cl, srv, srvOther *net.UDPConn
	clientPort        uint16
	// With IPv6: the client's sockets on its ULA and link-local addresses,
	// and the server's on [::]:5076.
	cl6, clLL, srv6 *net.UDPConn
}

// newRig builds the lab (with IPv6 addresses if ipv6) and opens the
// sockets; on error nothing is left.
func newRig(ipv6 bool) (*rig, error) {
	spec := netlab.TwoSegmentSwarm()
	if ipv6 {
		spec = netlab.TwoSegmentSwarm6()
	}
	l, err := netlab.NewSwarm(spec)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	r := &rig{lab: l, client: l.Host("client"), relayA: l.Host("relay-a"), server: l.Host("server"), relayB: l.Host("relay-b")}
	if err := r.open(); err != nil {
		l.Close()
		return nil, err
	}
	return r, nil
}

func (r *rig) open() (err error) {
	if r.cl, err = r.client.BroadcastUDP("0.0.0.0:0"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if r.srv, err = r.server.ListenUDP(fmt.Sprintf("0.0.0.0:%d", demoPort)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if r.srvOther, err = r.server.ListenUDP(fmt.Sprintf("0.0.0.0:%d", demoOtherPort)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	r.clientPort = uint16(r.cl.LocalAddr().(*net.UDPAddr).Port)
	if !r.client.IP6.IsValid() {
		return nil
	}
	if r.cl6, err = r.client.ListenUDP6(fmt.Sprintf("[%s]:0", r.client.IP6)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if r.clLL, err = r.client.ListenUDP6(fmt.Sprintf("[%s%%%s]:0", r.client.LinkLocal6, netlab.IfName)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if r.srv6, err = r.server.ListenUDP6(fmt.Sprintf("[::]:%d", demoPort)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// close removes the lab (and with its namespaces, the sockets' network).
func (r *rig) close() error { return r.lab.Close() }

// startRelays starts `bin run` on relay-a and relay-b, each with the other
// as its peer, and returns the relays started so far, also on error.
func (r *rig) startRelays(ctx context.Context, w io.Writer, bin string, verbose bool) ([]*labrelay.Relay, error) {
	opts := labrelay.Options{}
	if verbose {
		opts.Echo = func(line string) { fmt.Fprintln(w, "     | "+line) }
	}
	var relays []*labrelay.Relay
	for _, pair := range [][2]*netlab.Host{{r.relayA, r.relayB}, {r.relayB, r.relayA}} {
		args := []string{"-t", netlab.IfName, "--other-relays", pair[1].IP.String()}
		if r.cl6 != nil {
			args = append(args, "--ipv6")
		}
		rl, err := opts.Start(ctx, bin, pair[0], args...)
		if err != nil {
			return relays, fmt.Errorf("demo: %w", err)
		}
		relays = append(relays, rl)
		// The peer set is filled just after the relay is ready; until then
		// it would drop the other relay's datagrams. Best effort: a relay
		// that never logs it shows up in the table below.
		rl.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), demoArrival)
		narrateRelay(w, rl, args)
	}
	return relays, nil
}

// haveIP reports whether the ip command (iproute2) is installed, where
// netlab.Host.Command looks for it.
func haveIP() bool {
	if _, err := exec.LookPath("ip"); err == nil {
		return true
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
