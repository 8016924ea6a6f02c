package doctor

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
)

// checkPeers resolves every peer name and probes every peer address on the
// mesh port, concurrently.
func checkPeers(ctx context.Context, cfg Config, f Facts, mtu int) []Result {
	var out []Result
	if len(cfg.Peers) == 0 && len(cfg.Discover) == 0 {
		return []Result{warn("peers", "--other-relays HOST... or --discover NAME (env OTHER_RELAYS, DISCOVER, SERVICENAME)",
			"none configured: the relay runs in self mode and re-broadcasts its own captures (for testing only)")}
	}
	local, _ := f.LocalAddrs()
	var addrs []netip.Addr
	addAll := func(as []netip.Addr) {
		for _, a := range as {
			if !slices.Contains(addrs, a) && !slices.Contains(local, a) {
				addrs = append(addrs, a)
			}
		}
	}
	for _, p := range cfg.Peers {
		if a, err := netip.ParseAddr(p); err == nil {
			addAll([]netip.Addr{a.Unmap()})
			continue
		}
		as, err := f.LookupHost(ctx, p)
		if err != nil || len(as) == 0 {
			out = append(out, fail("peer "+p, "check the name in --other-relays (env OTHER_RELAYS) and this host's DNS (/etc/resolv.conf, /etc/hosts)",
				"does not resolve: %v", orNoAddr(err)))
			continue
		}
		out = append(out, ok("peer "+p, "resolves to %s", joinAddrs(as)))
		addAll(as)
	}
	for _, d := range cfg.Discover {
		as, err := f.LookupHost(ctx, d)
		if err != nil || len(as) == 0 {
			out = append(out, fail("discover "+d, "check --discover / SERVICENAME and that the service has running tasks (docker service ps, kubectl get endpoints)",
				"does not resolve: %v", orNoAddr(err)))
			continue
		}
		mine := []string{}
		for _, a := range as {
			if slices.Contains(local, a) {
				mine = append(mine, a.String())
			}
		}
		msg := fmt.Sprintf("%d addresses now: %s", len(as), joinAddrs(as))
		if len(mine) > 0 {
			msg += fmt.Sprintf(" (%s is this host)", strings.Join(mine, ", "))
		}
		out = append(out, ok("discover "+d, "%s", msg))
		addAll(as)
	}
	results := make([]Result, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { results[i] = probePeer(ctx, cfg, f, netip.AddrPortFrom(a, cfg.MeshPort), mtu) })
	}
	wg.Wait()
	return append(out, results...)
}

func orNoAddr(err error) error {
	if err == nil {
		return errors.New("no IPv4 address")
	}
	return err
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// probePeer asks the relay at peer who it is: sealed with our key if we
// have one, and, if that brings no answer, unsealed, since a relay with
// another key or none answers only that.
func probePeer(ctx context.Context, cfg Config, f Facts, peer netip.AddrPort, mtu int) Result {
	check := "peer " + peer.String()
	timeout := cfg.ProbeTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	var sealer *mesh.Sealer
	var opener *mesh.Opener
	if len(cfg.MeshKeys) > 0 {
		sealer = mesh.NewSealer(cfg.MeshKeys[0], mesh.RandomSenderID())
		opener = mesh.NewOpener(cfg.MeshKeys...)
	}
	nonce := randomNonce()
	match := func(b []byte) bool {
		if body := mesh.SealedBody(b); body != nil {
			b = body
		}
		r, ok := mesh.ParseProbeReply(b)
		return ok && r.Nonce == nonce
	}
	var buf [mesh.AuthHeaderLen + mesh.ProbeLen]byte
	body := mesh.PutProbe(buf[mesh.AuthHeaderLen:], nonce)
	var reply []byte
	var rtt time.Duration
	var err error
	if sealer != nil {
		start := sealer.Seal(buf[:], mesh.AuthHeaderLen, len(body))
		reply, rtt, err = f.Probe(ctx, peer, buf[start:], timeout, match)
	}
	if sealer == nil || err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		reply, rtt, err = f.Probe(ctx, peer, body, timeout, match)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fail(check, "start snowsignal there, or use the same --mesh-port (env MESH_PORT) on every relay",
			"port unreachable: nothing listens on UDP %d there, no relay runs on that host", peer.Port())
	}
	if err != nil {
		return fail(check, fmt.Sprintf("run `snowsignal doctor` there; allow UDP %d between the relays (nft list ruleset, security groups)", peer.Port()),
			"no answer to a probe within %s: no relay runs there, a firewall drops UDP %d, or it is a Python relay (which does not answer probes)", timeout, peer.Port())
	}
	var rep mesh.ProbeReply
	if mesh.Kind(reply) == mesh.Auth {
		if opener == nil {
			return fail(check, "", "answered sealed, but this host has no key")
		}
		body, _, _, oerr := opener.Open(reply)
		if oerr != nil {
			return fail(check, "give every relay the same --mesh-key-file", "answered with a reply that does not verify with our key: %v", oerr)
		}
		rep, _ = mesh.ParseProbeReply(body)
	} else {
		rep, _ = mesh.ParseProbeReply(reply)
	}
	ours := byte(0)
	if sealer != nil {
		ours = sealer.KeyID()
	}
	switch {
	case rep.Flags&mesh.ProbeAuthRequired != 0 && sealer == nil:
		return fail(check, "give this relay the same --mesh-key-file (env MESH_KEY_FILE) as its peers, or remove it from the peer",
			"the peer uses the authenticated mesh (key id %#02x) and this relay has no key: each drops the other's datagrams (bad_auth)", rep.KeyID)
	case rep.Flags&mesh.ProbeAuthRequired != 0:
		return fail(check, "give every relay the same --mesh-key-file (env MESH_KEY_FILE)",
			"the peer uses another mesh key (its key id %#02x, ours %#02x): each drops the other's datagrams (bad_auth)", rep.KeyID, ours)
	case sealer != nil && rep.Format != mesh.Auth:
		return fail(check, "give the peer the same --mesh-key-file (env MESH_KEY_FILE), or remove it here",
			"the peer uses the legacy mesh (no key) and this relay the authenticated one: each drops the other's datagrams (bad_auth)")
	}
	desc := fmt.Sprintf("answers in %s: snowsignal %s, %s mesh", rtt.Round(10*time.Microsecond), orUnknown(rep.Version), rep.Format)
	if rep.Format == mesh.Auth {
		desc += fmt.Sprintf(" (key id %#02x)", rep.KeyID)
	}
	desc += fmt.Sprintf(", MTU %d", rep.MTU)
	if !rep.KnownPeer {
		return fail(check, "add this host to the peer's --other-relays (or its discovery name), or give it --accept-any-peer",
			"%s; but this host is not in its peer set: it drops our datagrams (unknown_peer)", desc)
	}
	if mtu > 0 && rep.MTU > 0 && rep.MTU < mtu {
		return warn(check, fmt.Sprintf("use the same MTU on both segments (ip link set DEV mtu %d), or keep broadcasts under %d bytes", mtu, rep.MTU),
			"%s, smaller than ours (%d): frames over %d bytes relayed from here cannot be re-broadcast there (too_big)", desc, mtu, rep.MTU)
	}
	return ok(check, "%s", desc)
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

func randomNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}
