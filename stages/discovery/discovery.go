// Package discovery keeps the peer set current: it resolves the static
// --other-relays names and the discovery names (--discover, SERVICENAME) on
// an interval, removes this host's own addresses, and publishes the union.
//
// A failed lookup (timeout, SERVFAIL, and also "no such host": a discovery
// name normally lists this relay itself, so a name that vanished is more
// likely a resolver that does not know it yet than an empty mesh) keeps the
// last good addresses of the name that failed, so a resolver outage never
// empties the mesh. Failures are counted and logged at most once per
// interval per name. With nothing configured at all the relay runs in self
// mode and sends to its own interface address, as the Python relay does.
package discovery

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/ticker"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// DefaultInterval is how often names are resolved again when
// Config.Interval is zero: the Python relay's 10 s.
const DefaultInterval = 10 * time.Second

// DefaultKickGap is the least time between a resolution and an early one
// asked for by Kick. A relay that hears from an unknown source calls Kick
// for every datagram; the gap turns that stream into one lookup a second.
const DefaultKickGap = time.Second

// maxLookupTime bounds one lookup, so a dead resolver cannot stall the
// rounds of the names that still resolve.
const maxLookupTime = 5 * time.Second

// Resolver looks names up; *net.Resolver satisfies it. Constructors take the
// interface so tests can inject answers and failures.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config says where peers come from.
type Config struct {
	// Static are the --other-relays entries: IP addresses or names.
	Static []string
	// Discover are DNS names whose every IPv4 address is a peer (and every
	// IPv6 one, with IPv6).
	Discover []string
	// IPv6 admits IPv6 peers: --other-relays literals, and AAAA records
	// besides A records, for a mesh socket that reaches IPv6 (dual-stack or
	// IPv6). Without it peers are IPv4 only, as before.
	IPv6 bool
	// Interval is how often names are resolved again; DefaultInterval when
	// zero.
	Interval time.Duration
	// MeshPort is the port peers listen on.
	MeshPort uint16
	// Resolver resolves names.
	Resolver Resolver
	// LocalAddrs returns every address of this host (all interfaces): none
	// of them is ever a peer. Nil means only loopback addresses are ours.
	LocalAddrs func() ([]netip.Addr, error)
	// SelfAddr returns the target interface's IPv4 address, for self mode.
	SelfAddr func() netip.Addr
	// Counters, when set, count completed rounds (Out) and failed lookups
	// (Errors), so they show in the relay's stage statistics.
	Counters *pipeline.StageCounters
}

// SelfMode reports whether nothing at all is configured.
func (c *Config) SelfMode() bool { return len(c.Static) == 0 && len(c.Discover) == 0 }

// Stage is the discovery actor. Its Run loop owns the per-name state; Kick
// may be called from any goroutine.
type Stage struct {
	cfg   Config
	table *peers.Table
	log   zerolog.Logger
	kick  chan struct{}

	// kickGap and now are DefaultKickGap and time.Now; tests shorten or fake them.
	kickGap time.Duration
	now     func() time.Time

	// Owned by the goroutine that calls Resolve (Run's).
	names     map[string]*nameState
	local     []netip.Addr // last good answer of LocalAddrs
	localWarn time.Time    // last warning about LocalAddrs failing
	lastRound time.Time

	// Failures counts failed lookups (every one, logged or not).
	Failures atomic.Uint64
	// Resolutions counts completed resolution rounds.
	Resolutions atomic.Uint64
}

// nameState is what discovery remembers about one name between rounds.
type nameState struct {
	addrs    []netip.Addr // last good answer, IPv4 (and IPv6 with Config.IPv6) only
	resolved bool         // addrs holds an answer (as opposed to nothing yet)
	failing  bool         // the last lookup failed
	lastWarn time.Time    // last failure warning, to log at most one per interval
}

// New returns a discovery stage that publishes into t.
func New(cfg Config, t *peers.Table, log zerolog.Logger) *Stage {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	return &Stage{
		cfg: cfg, table: t,
		log:     log.With().Str("stage", "discovery").Logger(),
		kick:    make(chan struct{}, 1),
		kickGap: DefaultKickGap,
		now:     time.Now,
		names:   map[string]*nameState{},
	}
}

// Kick asks for an early resolution, for example when a datagram arrives
// from a relay outside the set. It never blocks and never allocates: the
// rewrite stage calls it once per such datagram. Early resolutions are
// rate-limited to one per kick gap; a kick inside the gap is deferred to its
// end, not lost.
func (s *Stage) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run resolves at once, then every interval and on kicks, until ctx is done.
func (s *Stage) Run(ctx context.Context) error {
	s.logStart()
	s.Resolve(ctx)
	tick := ticker.New(s.cfg.Interval)
	defer tick.Stop()
	var deferred <-chan time.Time // a kick waiting for the gap to pass
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-deferred:
			s.log.Debug().Msg("datagram from a relay outside the set: resolving early")
		case <-s.kick:
			if deferred != nil {
				continue // already waiting for the gap to pass
			}
			if wait := s.lastRound.Add(s.kickGap).Sub(s.now()); wait > 0 {
				deferred = time.After(wait)
				continue
			}
			s.log.Debug().Msg("datagram from a relay outside the set: resolving early")
		}
		deferred = nil // any round answers a pending kick
		s.Resolve(ctx)
	}
}

// logStart says once where peers come from, so an operator sees self mode
// and the union of static and discovered peers without reading the flags.
func (s *Stage) logStart() {
	switch c := &s.cfg; {
	case c.SelfMode():
		s.log.Warn().Msg("no peers configured (--other-relays, --discover, SERVICENAME): self mode, relaying to this relay's own interface address for testing")
	case len(c.Static) > 0 && len(c.Discover) > 0:
		s.log.Info().Strs("other_relays", c.Static).Strs("discover", c.Discover).Dur("interval", c.Interval).
			Msg("peers are the union of --other-relays and the discovered names, re-resolved every interval")
	case len(c.Discover) > 0:
		s.log.Info().Strs("discover", c.Discover).Dur("interval", c.Interval).
			Msg("discovering peers by DNS, re-resolved every interval")
	}
}
