package test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// Waits. deliveryTimeout bounds the wait for a datagram that must arrive;
// quietWait is how long we listen to show that one does not (a relayed
// datagram crosses the lab in well under a millisecond); drainWait is how
// long a Sniffer reads to empty its queue of frames already captured.
const (
	deliveryTimeout = 2 * time.Second
	quietWait       = 300 * time.Millisecond
	drainWait       = 100 * time.Millisecond
)

// swarm is the TwoSegmentSwarm lab with a relay on each segment, each
// peered with the other.
type swarm struct {
	lab            *netlab.Lab
	client, server *netlab.Host
	relayA, relayB *netlab.Host
	a, b           *labrelay.Relay
}

// startSwarm builds the lab and starts the real binary on relay-a and
// relay-b with --other-relays naming the other one, plus extra flags.
// Everything stops and is removed when the test ends.
func startSwarm(t *testing.T, extra ...string) *swarm {
	t.Helper()
	return startSwarmOn(t, netlab.TwoSegmentSwarm(), extra...)
}

// startSwarmOn is startSwarm in the lab spec describes (the same hosts).
func startSwarmOn(t *testing.T, spec netlab.Spec, extra ...string) *swarm {
	t.Helper()
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, spec)
	s := &swarm{lab: l, client: l.Host("client"), server: l.Host("server"), relayA: l.Host("relay-a"), relayB: l.Host("relay-b")}
	s.a = harness.StartT(t, bin, s.relayA, append([]string{"--other-relays", s.relayB.IP.String()}, extra...)...)
	s.b = harness.StartT(t, bin, s.relayB, append([]string{"--other-relays", s.relayA.IP.String()}, extra...)...)
	// A relay is ready (capturing, injecting) a moment before its discovery
	// stage has filled the peer set; until then it drops mesh datagrams
	// from the other relay as unknown_peer. Wait for the peer sets.
	for _, r := range []*labrelay.Relay{s.a, s.b} {
		if _, err := r.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), deliveryTimeout); err != nil {
			t.Fatalf("%s: %v", r.Host.Name, err)
		}
	}
	return s
}

// listen opens a UDP socket on h bound to addr, failing the test on error.
func listen(t *testing.T, h *netlab.Host, addr string) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// broadcaster opens a UDP socket on h that may send broadcasts.
func broadcaster(t *testing.T, h *netlab.Host) *net.UDPConn {
	t.Helper()
	c, err := h.BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// send writes payload to dst, failing the test on error.
func send(t *testing.T, c *net.UDPConn, payload []byte, dst netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
		t.Fatalf("send %d bytes to %s: %v", len(payload), dst, err)
	}
}

// localAddr returns the address a socket on h bound to 0.0.0.0 sends from.
func localAddr(h *netlab.Host, c *net.UDPConn) netip.AddrPort {
	return netip.AddrPortFrom(h.IP, c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
}

// datagram is one datagram a socket received.
type datagram struct {
	from    netip.AddrPort
	payload []byte
}

// recvFor collects every datagram c receives within d.
func recvFor(t *testing.T, c *net.UDPConn, d time.Duration) []datagram {
	t.Helper()
	var out []datagram
	end := time.Now().Add(d)
	buf := make([]byte, 65536)
	for time.Now().Before(end) {
		c.SetReadDeadline(end)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		out = append(out, datagram{from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), payload: bytes.Clone(buf[:n])})
	}
	return out
}

// recvMatching waits up to deliveryTimeout for a datagram with this
// payload, skipping others, and returns it.
func recvMatching(t *testing.T, c *net.UDPConn, payload []byte) (datagram, error) {
	t.Helper()
	end := time.Now().Add(deliveryTimeout)
	buf := make([]byte, 65536)
	for {
		c.SetReadDeadline(end)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return datagram{}, fmt.Errorf("no datagram of %d bytes arrived within %s: %w", len(payload), deliveryTimeout, err)
		}
		if bytes.Equal(buf[:n], payload) {
			return datagram{from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), payload: bytes.Clone(buf[:n])}, nil
		}
		t.Logf("skipping an unexpected datagram of %d bytes from %s", n, from)
	}
}

// payload returns n bytes: a random 8-byte tag (so a datagram of one test
// step is never mistaken for another's, and dedup never merges two) and a
// counting pattern.
func payload(t *testing.T, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p[:min(n, 8)]); err != nil {
		t.Fatal(err)
	}
	for i := 8; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

// sniff starts a capture on h's eth0 for the rest of the test.
func sniff(t *testing.T, h *netlab.Host) *netlab.Sniffer {
	t.Helper()
	s, err := h.Sniff(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkChecksums returns an error unless the Ethernet/IPv4/UDP frame b has
// a valid IPv4 header checksum and a valid, non-zero UDP checksum.
func checkChecksums(b []byte) error {
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	ip := b[frame.EthLen : frame.EthLen+f.IPLen]
	if got := frame.Fold(frame.Checksum(ip[:f.IHL], 0)); got != 0 {
		return fmt.Errorf("IPv4 header checksum %#04x does not verify", binary.BigEndian.Uint16(ip[10:12]))
	}
	udp := ip[f.IHL:]
	if binary.BigEndian.Uint16(udp[6:8]) == 0 {
		return errors.New("UDP checksum absent (0)")
	}
	pseudo := frame.Checksum(ip[12:20], 17+uint32(len(udp)))
	if got := frame.Fold(frame.Checksum(udp, pseudo)); got != 0 {
		return fmt.Errorf("UDP checksum %#04x does not verify", binary.BigEndian.Uint16(udp[6:8]))
	}
	return nil
}

// fromMAC returns a Sniffer filter for IPv4 UDP broadcast frames from mac
// to UDP port.
func fromMAC(mac net.HardwareAddr, port uint16) func(netlab.Frame) bool {
	return func(f netlab.Frame) bool {
		_, dst, _, ok := f.UDP()
		return ok && f.IsIPv4Broadcast() && bytes.Equal(f.Src(), mac) && dst.Port() == port
	}
}
