package test

// Security tests (issue 4): mesh admission, the authenticated mesh, bad
// input from the network and rate limits, with the real binary in the
// TwoSegmentSwarm lab. Helpers here are prefixed "sec" so they do not
// collide with the other files of this package.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

const (
	secPort     = 5076 // the relayed broadcast port
	secMeshPort = 7124
	// secQuiet is how long nothing must arrive to show that nothing was
	// relayed; a relayed datagram crosses the lab in well under 1 ms.
	secQuiet = 300 * time.Millisecond
	// secTimeout bounds the wait for something that must arrive.
	secTimeout = 2 * time.Second
)

// secLab is the TwoSegmentSwarm lab: client and relay-a on segment a,
// server and relay-b on segment b.
type secLab struct {
	bin                            string
	client, server, relayA, relayB *netlab.Host
}

func newSecLab(t *testing.T) *secLab {
	t.Helper()
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	return &secLab{bin: bin, client: l.Host("client"), server: l.Host("server"), relayA: l.Host("relay-a"), relayB: l.Host("relay-b")}
}

// relay starts the relay on h with peer as its only static peer, plus
// args, and waits until peer is in its peer set: the relay is ready before
// its discovery stage has published the static peers, and until then it
// counts the peer's datagrams as unknown_peer. It stops when the (sub)test
// ends.
func (s *secLab) relay(t *testing.T, h, peer *netlab.Host, args ...string) *labrelay.Relay {
	t.Helper()
	r := harness.StartT(t, s.bin, h, append([]string{"--other-relays", peer.IP.String()}, args...)...)
	want := netip.AddrPortFrom(peer.IP, secMeshPort).String()
	joined := func(e map[string]any) bool {
		list, _ := e["joined"].([]any)
		for _, a := range list {
			if a == want {
				return e["message"] == "peer set changed"
			}
		}
		return false
	}
	if _, err := r.WaitLog(joined, secTimeout); err != nil {
		t.Fatalf("%s: %s never joined the peer set: %v", h.Name, want, err)
	}
	return r
}

// secKey returns a random 32-byte key and the path of a key file (hex,
// mode 0600) holding it.
func secKey(t *testing.T) ([]byte, string) {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(rand.Uint32())
	}
	path := filepath.Join(t.TempDir(), "mesh.key")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// secPayload returns a payload no other datagram of the test carries.
func secPayload(tag string) []byte {
	return fmt.Appendf(nil, "%s/%016x", tag, rand.Uint64())
}

// frame returns the broadcast the client would send on segment a: from
// 10.77.0.11 to the directed broadcast, relayed port, with payload.
func (s *secLab) frame(payload []byte) []byte {
	return frametest.UDP{
		DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: [6]byte(s.client.MAC),
		Src: netip.AddrPortFrom(s.client.IP, 40000), Dst: netip.AddrPortFrom(s.client.Broadcast, secPort),
		ID: uint16(rand.Uint32()), Payload: payload,
	}.Frame()
}

// secSeal returns the authenticated mesh datagram carrying fr.
func secSeal(sl *mesh.Sealer, fr []byte) []byte {
	buf := make([]byte, mesh.AuthHeaderLen+len(fr))
	copy(buf[mesh.AuthHeaderLen:], fr)
	return buf[sl.Seal(buf, mesh.AuthHeaderLen, len(fr)):]
}

// secLegacy returns the "SS" mesh datagram carrying fr.
func secLegacy(fr []byte) []byte { return append([]byte(mesh.LegacyMagic), fr...) }

// sendMesh sends the datagrams from a fresh socket on h to dst's mesh
// port, in order, in groups of 16 with a short pause, so that the relay's
// socket and queues (which drop when full, by design) never overflow and
// every datagram is counted.
func (s *secLab) sendMesh(t *testing.T, h *netlab.Host, dst *netlab.Host, ds ...[]byte) {
	t.Helper()
	c, err := h.ListenUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := netip.AddrPortFrom(dst.IP, secMeshPort)
	for i, d := range ds {
		if _, err := c.WriteToUDPAddrPort(d, to); err != nil {
			t.Fatalf("send datagram %d (%d bytes) to %s: %v", i, len(d), to, err)
		}
		if i%16 == 15 {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// secWatch watches segment b: a socket of the server on the relayed port,
// and a sniffer for frames relay-b injects.
type secWatch struct {
	s   *secLab
	srv *net.UDPConn
	sn  *netlab.Sniffer
}

func (s *secLab) watch(t *testing.T) *secWatch {
	t.Helper()
	srv, err := s.server.ListenUDP(fmt.Sprintf("0.0.0.0:%d", secPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sn, err := s.server.Sniff(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	return &secWatch{s: s, srv: srv, sn: sn}
}

// received returns the payloads the server's socket receives within d.
func (w *secWatch) received(t *testing.T, d time.Duration) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 65536)
	end := time.Now().Add(d)
	for {
		w.srv.SetReadDeadline(end)
		n, _, err := w.srv.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("server: %v", err)
		}
		out = append(out, bytes.Clone(buf[:n]))
	}
}

// expect waits for payload at the server and fails on any other datagram
// received before it.
func (w *secWatch) expect(t *testing.T, payload []byte) {
	t.Helper()
	buf := make([]byte, 65536)
	end := time.Now().Add(secTimeout)
	for {
		w.srv.SetReadDeadline(end)
		n, from, err := w.srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("server: %q did not arrive within %s: %v", payload, secTimeout, err)
		}
		if bytes.Equal(buf[:n], payload) {
			return
		}
		t.Errorf("server received an unexpected %d-byte datagram from %s: %q", n, from, buf[:min(n, 40)])
	}
}

// injected returns the frames relay-b put on segment b since the watch
// began (or the last call): IPv4 frames from its MAC other than mesh
// traffic (its hellos, its datagrams to relay-a).
func (w *secWatch) injected(t *testing.T) []netlab.Frame {
	t.Helper()
	mac := w.s.relayB.MAC
	fs, err := w.sn.Collect(100*time.Millisecond, func(f netlab.Frame) bool {
		if f.EtherType() != 0x0800 || !bytes.Equal(f.Src(), mac) {
			return false
		}
		_, dst, _, ok := f.UDP()
		return !ok || dst.Port() != secMeshPort
	})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// broadcast sends a fresh broadcast from the client and returns its
// payload.
func (s *secLab) broadcast(t *testing.T, tag string) []byte {
	t.Helper()
	c, err := s.client.BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := secPayload(tag)
	if _, err := c.WriteToUDPAddrPort(p, netip.AddrPortFrom(s.client.Broadcast, secPort)); err != nil {
		t.Fatal(err)
	}
	return p
}

// secDrops stops r and returns its non-zero drop counters, from the final
// counters it logs.
func secDrops(t *testing.T, r *labrelay.Relay) map[string]uint64 {
	t.Helper()
	if err := r.Stop(); err != nil {
		t.Errorf("%s: exit: %v", r.Host.Name, err)
	}
	c, err := r.FinalCounters()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for k, v := range c.Drops {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// wantDrops compares drop counters.
func secWantDrops(t *testing.T, who string, got, want map[string]uint64) {
	t.Helper()
	ok := len(got) == len(want)
	for k, v := range want {
		ok = ok && got[k] == v
	}
	if !ok {
		t.Errorf("%s dropped %v, want exactly %v", who, got, want)
	}
}

// TestSecurityAuthenticatedMesh: relays with the same key relay; a relay
// with another key, a legacy datagram and a replayed datagram are refused
// and counted; a key rotation loses nothing.
func TestSecurityAuthenticatedMesh(t *testing.T) {
	s := newSecLab(t)
	key1, file1 := secKey(t)
	_, file2 := secKey(t)

	t.Run("same key", func(t *testing.T) {
		w := s.watch(t)
		s.relay(t, s.relayA, s.relayB, "--mesh-key-file", file1)
		b := s.relay(t, s.relayB, s.relayA, "--mesh-key-file", file1)
		w.expect(t, s.broadcast(t, "same-key"))
		secWantDrops(t, "relay-b", secDrops(t, b), nil)
	})

	t.Run("another key", func(t *testing.T) {
		w := s.watch(t)
		s.relay(t, s.relayA, s.relayB, "--mesh-key-file", file2)
		b := s.relay(t, s.relayB, s.relayA, "--mesh-key-file", file1)
		for i := range 3 {
			s.broadcast(t, fmt.Sprint("other-key-", i))
		}
		if got := w.received(t, secQuiet); len(got) != 0 {
			t.Errorf("server received %d datagrams, want none", len(got))
		}
		if got := w.injected(t); len(got) != 0 {
			t.Errorf("relay-b injected %d frames, want none", len(got))
		}
		secWantDrops(t, "relay-b", secDrops(t, b), map[string]uint64{"bad_auth": 3})
	})

	// Relay-a already sends with the new key; relay-b, mid-rotation,
	// accepts the old and the new.
	t.Run("key rotation", func(t *testing.T) {
		w := s.watch(t)
		s.relay(t, s.relayA, s.relayB, "--mesh-key-file", file2, "--mesh-key-file", file1)
		b := s.relay(t, s.relayB, s.relayA, "--mesh-key-file", file1, "--mesh-key-file", file2)
		w.expect(t, s.broadcast(t, "rotation"))
		secWantDrops(t, "relay-b", secDrops(t, b), nil)
	})

	t.Run("legacy datagram to a keyed relay", func(t *testing.T) {
		w := s.watch(t)
		b := s.relay(t, s.relayB, s.relayA, "--mesh-key-file", file1)
		// From relay-a's address: a peer, so admission lets it through.
		s.sendMesh(t, s.relayA, s.relayB, secLegacy(s.frame(secPayload("legacy"))))
		if got := w.received(t, secQuiet); len(got) != 0 {
			t.Errorf("server received %d datagrams, want none", len(got))
		}
		if got := w.injected(t); len(got) != 0 {
			t.Errorf("relay-b injected %d frames, want none", len(got))
		}
		secWantDrops(t, "relay-b", secDrops(t, b), map[string]uint64{"bad_auth": 1})
	})

	t.Run("replay", func(t *testing.T) {
		w := s.watch(t)
		b := s.relay(t, s.relayB, s.relayA, "--mesh-key-file", file1)
		p := secPayload("replayed")
		d := secSeal(mesh.NewSealer(key1, mesh.RandomSenderID()), s.frame(p))
		s.sendMesh(t, s.relayA, s.relayB, d, d)
		w.expect(t, p)
		s.sendMesh(t, s.relayA, s.relayB, d) // later, in another batch
		if got := w.received(t, secQuiet); len(got) != 0 {
			t.Errorf("server received the replayed datagram %d more times", len(got))
		}
		if got := w.injected(t); len(got) != 1 {
			t.Errorf("relay-b injected %d frames, want 1", len(got))
		}
		secWantDrops(t, "relay-b", secDrops(t, b), map[string]uint64{"replay": 2})
	})
}

// TestSecurityAdmission: mesh datagrams from a host outside the peer set
// are dropped and counted per source with a warning; --accept-any-peer
// admits them.
func TestSecurityAdmission(t *testing.T) {
	s := newSecLab(t)

	t.Run("peers only", func(t *testing.T) {
		w := s.watch(t)
		b := s.relay(t, s.relayB, s.relayA)
		// The client is on segment a, like relay-a, but is not a peer.
		s.sendMesh(t, s.client, s.relayB, secLegacy(s.frame(secPayload("stranger-1"))),
			secLegacy(s.frame(secPayload("stranger-2"))), secLegacy(s.frame(secPayload("stranger-3"))))
		warned := func(e map[string]any) bool {
			m, _ := e["message"].(string)
			return e["level"] == "warn" && e["peer"] == s.client.IP.String() && strings.Contains(m, "outside the peer set")
		}
		if _, err := b.WaitLog(warned, secTimeout); err != nil {
			t.Errorf("no warning naming %s: %v", s.client.IP, err)
		}
		if got := w.received(t, secQuiet); len(got) != 0 {
			t.Errorf("server received %d datagrams, want none", len(got))
		}
		if got := w.injected(t); len(got) != 0 {
			t.Errorf("relay-b injected %d frames, want none", len(got))
		}
		secWantDrops(t, "relay-b", secDrops(t, b), map[string]uint64{"unknown_peer": 3})
		// One warning for the burst: it is rate-limited.
		n := 0
		for _, e := range b.Logs() {
			if warned(e) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d warnings for 3 datagrams, want 1", n)
		}
	})

	t.Run("accept any peer", func(t *testing.T) {
		w := s.watch(t)
		b := s.relay(t, s.relayB, s.relayA, "--accept-any-peer")
		p := secPayload("any-peer")
		s.sendMesh(t, s.client, s.relayB, secLegacy(s.frame(p)))
		w.expect(t, p)
		secWantDrops(t, "relay-b", secDrops(t, b), nil)
	})
}

// secRandom returns n random datagrams of 0 to 1400 bytes that start with
// neither mesh magic (their first byte is not 'S'), from a fixed seed.
func secRandom(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 4))
	var out [][]byte
	for range n {
		d := make([]byte, r.IntN(1401))
		for i := range d {
			d[i] = byte(r.Uint32())
		}
		if len(d) > 0 && d[0] == 'S' {
			d[0] = 's'
		}
		out = append(out, d)
	}
	return out
}

// badFrames returns "SS" datagrams whose frame fails exactly one check of
// the receiver, and that check's counter.
func (s *secLab) badFrames(wrap func([]byte) []byte) ([][]byte, map[string]uint64) {
	good := func() []byte { return s.frame(secPayload("bad")) }
	with := func(fn func(b []byte)) []byte { b := good(); fn(b); return b }
	big := s.frame(bytes.Repeat([]byte{'x'}, 1100))
	frags := frametest.Fragments(s.frame(bytes.Repeat([]byte{'f'}, 3000)), 1480)
	cases := []struct {
		reason string
		fr     []byte
	}{
		{"not_ipv4", with(func(b []byte) { b[12], b[13] = 0x08, 0x06 })},       // ARP
		{"truncated_frame", big[:1024]},                                        // cut as the Python relay does
		{"bad_ip_header", with(func(b []byte) { b[14] = 0x44 })},               // IHL 4
		{"not_udp", with(func(b []byte) { b[23] = 6 })},                        // TCP
		{"bad_udp_length", with(func(b []byte) { b[38], b[39] = 0x00, 0x07 })}, // below 8
		{"wrong_port", with(func(b []byte) { b[36], b[37] = 0x13, 0xd5 })},     // 5077
		{"not_broadcast", with(func(b []byte) { b[33] = 21 })},                 // to the server
		{"bad_source", with(func(b []byte) { copy(b[26:30], []byte{127, 0, 0, 1}) })},
		{"unmatched_fragment", frags[1]},
		{"too_big", s.frame(bytes.Repeat([]byte{'x'}, 1500-28+1))},
	}
	var ds [][]byte
	want := map[string]uint64{}
	for _, c := range cases {
		ds = append(ds, wrap(c.fr))
		want[c.reason]++
	}
	return ds, want
}

// TestSecurityBadInput: a burst of random, truncated, oversized,
// wrong-magic and wrong-key datagrams, and of frames failing each check,
// from a peer and from a host that is not one: nothing is injected (the
// server receives nothing, a sniffer on segment b sees nothing from
// relay-b), every datagram is counted under its reason, and the relay
// goes on relaying a legitimate broadcast.
func TestSecurityBadInput(t *testing.T) {
	s := newSecLab(t)
	key, keyFile := secKey(t)
	otherKey := bytes.Repeat([]byte{0x5a}, 32)
	oversized := make([]byte, 9000) // more than any receive buffer: the kernel reassembles it

	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("authenticated=%v", keyed), func(t *testing.T) {
			var args []string
			if keyed {
				args = []string{"--mesh-key-file", keyFile}
			}
			w := s.watch(t)
			s.relay(t, s.relayA, s.relayB, args...)
			b := s.relay(t, s.relayB, s.relayA, args...)
			sealer := mesh.NewSealer(key, mesh.RandomSenderID())
			good := func() []byte { return s.frame(secPayload("good")) }

			// From relay-a's address, a peer.
			fromPeer := secRandom(50, 1)
			want := map[string]uint64{"malformed_mesh": 50}
			add := func(reason string, ds ...[]byte) {
				fromPeer = append(fromPeer, ds...)
				want[reason] += uint64(len(ds))
			}
			add("malformed_mesh", []byte{}, []byte("S"), append([]byte("XX"), good()...))
			add("too_big", oversized)
			if keyed {
				tampered := secSeal(sealer, good())
				tampered[30] ^= 1
				add("malformed_mesh", []byte("SN\x01"), secSeal(sealer, good())[:40])
				add("bad_auth", secLegacy(good()), secSeal(mesh.NewSealer(otherKey, 1), good()), tampered)
				bad, reasons := s.badFrames(func(fr []byte) []byte { return secSeal(sealer, fr) })
				fromPeer = append(fromPeer, bad...)
				for k, v := range reasons {
					want[k] += v
				}
			} else {
				add("bad_auth", secSeal(sealer, good())) // "SN" at a relay without a key
				bad, reasons := s.badFrames(secLegacy)
				fromPeer = append(fromPeer, bad...)
				for k, v := range reasons {
					want[k] += v
				}
			}
			// From the server, on relay-b's own segment, not a peer.
			fromStranger := append(secRandom(20, 2), secLegacy(good()), secSeal(sealer, good()))
			want["unknown_peer"] += uint64(len(fromStranger))
			fromStranger = append(fromStranger, oversized)
			want["too_big"]++

			s.sendMesh(t, s.relayA, s.relayB, fromPeer...)
			s.sendMesh(t, s.server, s.relayB, fromStranger...)

			// A legitimate broadcast still goes through; as it reaches
			// relay-b after the burst, relay-b has judged the whole burst
			// when it arrives.
			p := s.broadcast(t, "legitimate")
			w.expect(t, p)
			if got := w.injected(t); len(got) != 1 {
				t.Errorf("relay-b injected %d frames, want 1 (the legitimate broadcast)", len(got))
			} else if _, _, payload, _ := got[0].UDP(); !bytes.Equal(payload, p) {
				t.Errorf("relay-b injected %q, want the legitimate broadcast", payload)
			}
			select {
			case <-b.Done():
				t.Fatalf("relay-b exited: %v", b.ExitErr())
			default:
			}
			secWantDrops(t, "relay-b", secDrops(t, b), want)
		})
	}
}

// TestSecurityRateLimit: with a limit of 1 packet/s a client's burst is cut
// to the bucket (128 datagrams) on the capture side (--rate-limit), and a
// peer's on the mesh side (--rate-limit, or --peer-rate-limit alone).
func TestSecurityRateLimit(t *testing.T) {
	s := newSecLab(t)
	const n, burst = 160, 128 // ratelimit.MinBurst
	for _, tc := range []struct {
		name         string
		argsA, argsB []string
		limitedA     bool // relay-a (capture side) drops, else relay-b (mesh side)
	}{
		{"client", []string{"--rate-limit", "1"}, nil, true},
		{"peer", nil, []string{"--rate-limit", "1"}, false},
		{"peer only", nil, []string{"--peer-rate-limit", "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := s.watch(t)
			a := s.relay(t, s.relayA, s.relayB, tc.argsA...)
			b := s.relay(t, s.relayB, s.relayA, tc.argsB...)
			c, err := s.client.BroadcastUDP("0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range n {
				if _, err := c.WriteToUDPAddrPort(secPayload(fmt.Sprint("burst-", i)), netip.AddrPortFrom(s.client.Broadcast, secPort)); err != nil {
					t.Fatal(err)
				}
				if i%16 == 15 {
					time.Sleep(2 * time.Millisecond)
				}
			}
			got := len(w.received(t, secQuiet))
			// Sending takes a few ms: at 1/s, at most one token comes back.
			if got < burst || got > burst+1 {
				t.Errorf("server received %d of %d, want the burst of %d", got, n, burst)
			}
			limited := map[string]uint64{"rate_limited": uint64(n - got)}
			dropsA, dropsB := secDrops(t, a), secDrops(t, b)
			if tc.limitedA {
				secWantDrops(t, "relay-a", dropsA, limited)
				secWantDrops(t, "relay-b", dropsB, nil)
			} else {
				secWantDrops(t, "relay-a", dropsA, nil)
				secWantDrops(t, "relay-b", dropsB, limited)
			}
		})
	}

	t.Run("out of range", func(t *testing.T) {
		for _, arg := range []string{"--rate-limit=-1", "--rate-limit=10000001", "--peer-rate-limit=-1"} {
			r, err := labrelay.Start(t.Context(), s.bin, s.relayA, arg)
			if err == nil {
				r.Stop()
				t.Errorf("%s: the relay started", arg)
				continue
			}
			if flag, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "="); !strings.Contains(err.Error(), "--"+flag+": ") {
				t.Errorf("%s: the error does not name the flag: %v", arg, err)
			}
		}
	})
}
