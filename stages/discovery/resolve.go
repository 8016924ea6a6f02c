package discovery

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Resolve performs one resolution round and publishes the result: every
// name is looked up (concurrently, so one dead name cannot delay the
// others), failed names keep their last good addresses, this host's own
// addresses are removed, and the union replaces the peer set. It must not be
// called concurrently with itself; Run calls it.
func (s *Stage) Resolve(ctx context.Context) { s.round(ctx, true) }

// Prime publishes, without any DNS lookup, the peers known without one: the
// IP addresses among --other-relays, or this relay itself in self mode. The
// relay calls it before its stages start, so a mesh datagram from a static
// peer is never refused as unknown in the moments before the first
// resolution round completes.
func (s *Stage) Prime(ctx context.Context) { s.round(ctx, false) }

func (s *Stage) round(ctx context.Context, lookup bool) {
	now := s.now()
	if lookup {
		s.lastRound = now
		names := s.lookupNames()
		answers := s.lookupAll(ctx, names)
		if ctx.Err() != nil {
			return // shutting down: the lookups failed for that reason alone
		}
		for i, name := range names {
			s.record(name, answers[i], now)
		}
	}

	sources := map[netip.AddrPort][]string{}
	add := func(a netip.Addr, src string) {
		ap := netip.AddrPortFrom(a, s.cfg.MeshPort)
		if !slices.Contains(sources[ap], src) {
			sources[ap] = append(sources[ap], src)
		}
	}
	for _, e := range s.cfg.Static {
		if a, err := netip.ParseAddr(e); err == nil {
			add(a.Unmap(), "static")
			continue
		}
		if n := s.names[e]; n != nil {
			for _, a := range n.addrs {
				add(a, "static")
			}
		}
	}
	for _, name := range s.cfg.Discover {
		if n := s.names[name]; n != nil {
			for _, a := range n.addrs {
				add(a, name)
			}
		}
	}
	own := s.ownAddrs(now)
	for ap := range sources {
		if !peerable(ap.Addr(), s.cfg.IPv6) || slices.Contains(own, ap.Addr()) {
			delete(sources, ap)
		}
	}
	self := s.cfg.SelfMode()
	if self && s.cfg.SelfAddr != nil {
		if a := s.cfg.SelfAddr(); a.IsValid() {
			sources[netip.AddrPortFrom(a, s.cfg.MeshPort)] = []string{"self"}
		}
	}

	found := make(map[netip.AddrPort]string, len(sources))
	for ap, src := range sources {
		slices.Sort(src)
		found[ap] = strings.Join(src, ",")
	}
	joined, left := s.table.Update(found, self, now)
	s.Resolutions.Add(1)
	if c := s.cfg.Counters; c != nil {
		c.Out.Add(1)
	}
	if len(joined) > 0 || len(left) > 0 {
		s.log.Info().Stringers("joined", stringers(joined)).Stringers("left", stringers(left)).
			Int("peers", len(found)).Msg("peer set changed")
	}
}

// lookupNames lists the names to resolve this round, each once: the
// --other-relays entries that are not IP addresses, then the discovery names.
func (s *Stage) lookupNames() []string {
	var out []string
	for _, e := range s.cfg.Static {
		if _, err := netip.ParseAddr(e); err != nil && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	for _, n := range s.cfg.Discover {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// answer is one lookup's result.
type answer struct {
	addrs []netip.Addr
	err   error
}

// lookupAll resolves every name concurrently and returns the answers in the
// order of names.
func (s *Stage) lookupAll(ctx context.Context, names []string) []answer {
	out := make([]answer, len(names))
	timeout := min(s.cfg.Interval, maxLookupTime)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			network := "ip4"
			if s.cfg.IPv6 {
				network = "ip" // A and AAAA
			}
			got, err := s.cfg.Resolver.LookupNetIP(ctx, network, name)
			if err != nil {
				out[i].err = fmt.Errorf("resolve %s: %w", name, err)
				return
			}
			out[i].addrs = addrSet(got, s.cfg.IPv6)
		})
	}
	wg.Wait()
	return out
}

// record updates name's state with a lookup's answer: a good answer replaces
// the addresses, a failure keeps them and is counted, and warned about at
// most once per interval.
func (s *Stage) record(name string, a answer, now time.Time) {
	st := s.names[name]
	if st == nil {
		st = &nameState{}
		s.names[name] = st
	}
	if a.err == nil {
		if st.failing {
			s.log.Info().Str("name", name).Int("addrs", len(a.addrs)).Msg("peer name resolves again")
		}
		st.addrs, st.resolved, st.failing = a.addrs, true, false
		return
	}
	s.Failures.Add(1)
	if c := s.cfg.Counters; c != nil {
		c.Errors.Add(1)
	}
	st.failing = true
	if !st.lastWarn.IsZero() && now.Sub(st.lastWarn) < s.cfg.Interval {
		return
	}
	st.lastWarn = now
	ev := s.log.Warn().Err(a.err).Str("name", name).Int("kept", len(st.addrs))
	if !st.resolved {
		ev.Msg("cannot resolve peer name and have no earlier answer; retrying every interval")
		return
	}
	ev.Msg("cannot resolve peer name; keeping its last known addresses and retrying every interval")
}

// ownAddrs returns this host's addresses, or the last good list when they
// cannot be read now: dropping the filter on an error would make this relay
// its own peer.
func (s *Stage) ownAddrs(now time.Time) []netip.Addr {
	if s.cfg.LocalAddrs == nil {
		return s.local
	}
	got, err := s.cfg.LocalAddrs()
	if err != nil {
		if s.localWarn.IsZero() || now.Sub(s.localWarn) >= s.cfg.Interval {
			s.localWarn = now
			s.log.Warn().Err(err).Int("kept", len(s.local)).
				Msg("cannot list this host's addresses; still excluding the last known ones from the peers")
		}
		return s.local
	}
	s.local = make([]netip.Addr, len(got))
	for i, a := range got {
		s.local[i] = a.Unmap()
	}
	return s.local
}

// peerable reports whether a may be a peer at all: a unicast IPv4 address
// that is not this host's loopback, or with ipv6 a global or unique-local
// IPv6 one. Link-local IPv6 addresses are refused: they need a zone, and a
// datagram from one names no interface the peer set could match.
func peerable(a netip.Addr, ipv6 bool) bool {
	if a.Is6() {
		return ipv6 && a.Zone() == "" && a.IsGlobalUnicast() && !a.IsLinkLocalUnicast()
	}
	return a.Is4() && !a.IsLoopback() && !a.IsUnspecified() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// addrSet returns the IPv4 addresses of got (and with ipv6 the IPv6 ones),
// unmapped, sorted and without duplicates.
func addrSet(got []netip.Addr, ipv6 bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(got))
	for _, a := range got {
		if a = a.Unmap(); a.Is4() || ipv6 && a.Is6() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func stringers(a []netip.AddrPort) []fmt.Stringer {
	out := make([]fmt.Stringer, len(a))
	for i := range a {
		out[i] = a[i]
	}
	return out
}
