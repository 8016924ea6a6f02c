// Package discovery keeps the peer set current: it resolves the static
// --other-relays names and the discovery names (--discover, SERVICENAME) on
// an interval, removes this host's own addresses, and publishes the union.
//
// DNS failures keep the last good addresses of the name that failed, so a
// resolver outage never empties the mesh. With nothing configured at all
// the relay runs in self mode and sends to its own interface address, as the
// Python relay does.
package discovery

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/stages/peers"
)

// Resolver looks names up; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config says where peers come from.
type Config struct {
	// Static are the --other-relays entries: IP addresses or names.
	Static []string
	// Discover are DNS names whose every IPv4 address is a peer.
	Discover []string
	// Interval is how often names are resolved again.
	Interval time.Duration
	// MeshPort is the port peers listen on.
	MeshPort uint16
	// Resolver resolves names.
	Resolver Resolver
	// LocalAddrs returns this host's addresses, never peers.
	LocalAddrs func() ([]netip.Addr, error)
	// SelfAddr returns the target interface's IPv4 address, for self mode.
	SelfAddr func() netip.Addr
}

// Stage is the discovery actor.
type Stage struct {
	cfg   Config
	table *peers.Table
	log   zerolog.Logger
	kick  chan struct{}

	last map[string][]netip.Addr // last good answer per name

	// Failures counts failed lookups.
	Failures atomic.Uint64
	// Resolutions counts completed resolution rounds.
	Resolutions atomic.Uint64
}

// New returns a discovery stage that publishes into t.
func New(cfg Config, t *peers.Table, log zerolog.Logger) *Stage {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	return &Stage{cfg: cfg, table: t, log: log.With().Str("stage", "discovery").Logger(),
		kick: make(chan struct{}, 1), last: map[string][]netip.Addr{}}
}

// SelfMode reports whether nothing at all is configured.
func (c *Config) SelfMode() bool { return len(c.Static) == 0 && len(c.Discover) == 0 }

// Kick asks for an early resolution, for example when a datagram arrives
// from a relay outside the set. It never blocks; kicks are rate-limited.
func (s *Stage) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// minKickGap bounds early resolutions triggered by Kick.
const minKickGap = time.Second

// Run resolves at once, then every interval and on kicks, until ctx is done.
func (s *Stage) Run(ctx context.Context) error {
	if s.cfg.SelfMode() {
		s.log.Warn().Msg("no peers configured (--other-relays, --discover, SERVICENAME): self mode, relaying to this relay's own interface address for testing")
	}
	s.Resolve(ctx)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	var lastKick time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.kick:
			if time.Since(lastKick) < minKickGap {
				continue
			}
			lastKick = time.Now()
			s.log.Debug().Msg("datagram from a relay outside the set: resolving early")
		}
		s.Resolve(ctx)
	}
}

// Resolve performs one resolution round and publishes the result.
func (s *Stage) Resolve(ctx context.Context) {
	found := map[netip.AddrPort]string{}
	add := func(a netip.Addr, src string) {
		ap := netip.AddrPortFrom(a.Unmap(), s.cfg.MeshPort)
		if old, ok := found[ap]; ok && !strings.Contains(old, src) {
			src = old + "," + src
		}
		found[ap] = src
	}
	for _, name := range s.cfg.Static {
		if a, err := netip.ParseAddr(name); err == nil {
			add(a, "static")
			continue
		}
		for _, a := range s.lookup(ctx, name) {
			add(a, "static")
		}
	}
	for _, name := range s.cfg.Discover {
		for _, a := range s.lookup(ctx, name) {
			add(a, name)
		}
	}
	if s.cfg.LocalAddrs != nil {
		if local, err := s.cfg.LocalAddrs(); err == nil {
			for ap := range found {
				if slices.Contains(local, ap.Addr()) {
					delete(found, ap)
				}
			}
		}
	}
	self := s.cfg.SelfMode()
	if self && s.cfg.SelfAddr != nil {
		if a := s.cfg.SelfAddr(); a.IsValid() {
			found[netip.AddrPortFrom(a, s.cfg.MeshPort)] = "self"
		}
	}
	joined, left := s.table.Update(found, self, time.Now())
	s.Resolutions.Add(1)
	if len(joined) > 0 || len(left) > 0 {
		s.log.Info().Stringers("joined", addrs(joined)).Stringers("left", addrs(left)).
			Int("peers", len(found)).Msg("peer set changed")
	}
}

// lookup resolves name to IPv4 addresses, falling back to the last good
// answer when the lookup fails.
func (s *Stage) lookup(ctx context.Context, name string) []netip.Addr {
	ctx, cancel := context.WithTimeout(ctx, min(s.cfg.Interval, 5*time.Second))
	defer cancel()
	got, err := s.cfg.Resolver.LookupNetIP(ctx, "ip4", name)
	if err != nil {
		s.Failures.Add(1)
		s.log.Warn().Err(err).Str("peer", name).Int("kept", len(s.last[name])).
			Msg("cannot resolve peer name; keeping its last known addresses and retrying")
		return s.last[name]
	}
	for i := range got {
		got[i] = got[i].Unmap()
	}
	s.last[name] = got
	return got
}

func addrs(a []netip.AddrPort) []fmt.Stringer {
	out := make([]fmt.Stringer, len(a))
	for i := range a {
		out[i] = a[i]
	}
	return out
}
