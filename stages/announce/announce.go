// Package announce is the side actor that tells peers this relay's
// capabilities and learns theirs, with the unicast capabilities datagrams
// ("SC", docs/MESH-PROTOCOL.md, "Capabilities and IPv6 frames"). The fan-out
// sends IPv6 frames only to peers whose announced capabilities include
// mesh.CapIPv6, so a legacy relay (which never answers) never gets one.
//
// The schedule, per peer of the current set:
//
//   - a relay that announces (--ipv6) asks a new peer at once (reply
//     wanted); while the peer's capabilities are not known it asks again
//     every Interval, and after MaxUnanswered requests without an answer
//     only every Backoff (a legacy relay counts each one as a drop);
//   - once they are known it announces every Interval without asking;
//   - every relay answers a request at once, at most once per ReplyGap per
//     peer, with a datagram of the request's size: no amplification.
//
// Announcements are checked for admission and authenticated by the inbound
// rewrite stage, which hands them to Heard.
package announce

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/ticker"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// The schedule's defaults (docs/MESH-PROTOCOL.md).
const (
	// DefaultInterval is how often a peer is told our capabilities.
	DefaultInterval = 30 * time.Second
	// DefaultExpiry is how long a peer's announcement stays valid: three
	// intervals, so one lost datagram does not cut a peer off.
	DefaultExpiry = 90 * time.Second
	// DefaultBackoff is how often a peer that never answered is asked.
	DefaultBackoff = 10 * time.Minute
	// DefaultMaxUnanswered is how many requests a peer may leave unanswered
	// before it is asked only every Backoff.
	DefaultMaxUnanswered = 3
	// DefaultReplyGap is the least time between two replies to one peer, so
	// a flood of requests (replayed, on a legacy mesh) gets few replies.
	DefaultReplyGap = time.Second
	// tick is how often Run looks at the schedule.
	tick = time.Second
	// replyQueue bounds the requests waiting for a reply; more are dropped
	// (the requester asks again).
	replyQueue = 64
)

// Sender sends one datagram: the mesh socket (netio/meshconn.Conn).
type Sender interface {
	WriteTo(b []byte, addr netip.AddrPort) error
}

// Config is what the stage announces and when.
type Config struct {
	// ID is the relay id of our hellos, carried in every announcement.
	ID uint32
	// Caps are our capabilities, sent in every announcement and reply.
	Caps mesh.Caps
	// Announce sends unprompted announcements (relays with --ipv6); without
	// it the stage only answers requests.
	Announce bool
	// Interval, Expiry, Backoff, MaxUnanswered and ReplyGap set the
	// schedule; zero means the Default of each.
	Interval, Expiry, Backoff time.Duration
	MaxUnanswered             int
	ReplyGap                  time.Duration
	// Now is the clock; time.Now when nil (tests step a fake one).
	Now func() time.Time
}

// Stage is the capabilities actor.
type Stage struct {
	cfg     Config
	conn    Sender
	peers   *peers.Table
	sealer  *mesh.Sealer
	c       *pipeline.StageCounters
	log     zerolog.Logger
	replies chan *peers.Peer
	now     func() time.Time // Config.Now

	// Owned by Run's goroutine.
	state map[netip.AddrPort]*schedule
	buf   []byte

	// Requests counts announcements sent with "reply wanted", Replies the
	// answers to requests, Limited the requests not answered (ReplyGap or a
	// full queue), Received the announcements taken from peers.
	Requests, Replies, Limited, Received atomic.Uint64
}

// schedule is what the stage remembers about one peer.
type schedule struct {
	next       time.Time // when to announce next
	askedAt    int64     // unix ns of the last request
	unanswered int       // requests since the peer last announced
	lastReply  time.Time
}

// New returns a capabilities stage sending from conn to the peers of t;
// with a sealer, announcements are authenticated like every mesh datagram.
// c (may be nil) counts datagrams sent (Out) and send errors (Errors).
func New(cfg Config, conn Sender, t *peers.Table, sealer *mesh.Sealer, c *pipeline.StageCounters, log zerolog.Logger) *Stage {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxUnanswered <= 0 {
		cfg.MaxUnanswered = DefaultMaxUnanswered
	}
	if cfg.ReplyGap <= 0 {
		cfg.ReplyGap = DefaultReplyGap
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Stage{cfg: cfg, conn: conn, peers: t, sealer: sealer, c: c,
		log: log.With().Str("stage", "announce").Logger(), replies: make(chan *peers.Peer, replyQueue), now: cfg.Now,
		state: map[netip.AddrPort]*schedule{}, buf: make([]byte, pipeline.Headroom+mesh.CapsLen)}
}

// Heard records the announcement a from peer p, which the inbound stage
// admitted (and, keyed, authenticated), and queues a reply if p asked for
// one. Any goroutine may call it; it never blocks and does not allocate.
func (s *Stage) Heard(p *peers.Peer, a mesh.Announce) {
	now := s.now().UnixNano()
	s.Received.Add(1)
	p.SetCaps(a.Caps, now, now+int64(s.cfg.Expiry))
	if !a.WantReply {
		return
	}
	select {
	case s.replies <- p:
	default:
		s.Limited.Add(1)
	}
}

// Run announces on the schedule and answers requests until ctx is done.
func (s *Stage) Run(ctx context.Context) error {
	t := ticker.New(tick)
	defer t.Stop()
	for {
		s.Step()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case p := <-s.replies:
			s.reply(p)
		}
	}
}

// Step sends the announcements that are due and forgets peers that left
// the set. Run calls it every second; tests call it with a fake clock.
func (s *Stage) Step() {
	now := s.now()
	set := s.peers.Load()
	for addr := range s.state {
		if p := set.Lookup(addr.Addr()); p == nil || p.Addr != addr {
			delete(s.state, addr)
		}
	}
	for _, p := range set.Peers {
		st := s.state[p.Addr]
		if st == nil {
			st = &schedule{next: now}
			s.state[p.Addr] = st
		}
		if !s.cfg.Announce || now.Before(st.next) {
			continue
		}
		if h := p.CapsHeard(); !h.IsZero() && h.UnixNano() > st.askedAt {
			st.unanswered = 0 // it answered (or announced) since we last asked
		}
		if _, known := p.CapsKnown(now.UnixNano()); known {
			s.send(p, false)
			st.next = now.Add(s.cfg.Interval)
			continue
		}
		s.send(p, true)
		s.Requests.Add(1)
		st.askedAt = now.UnixNano()
		st.unanswered++
		if st.unanswered >= s.cfg.MaxUnanswered {
			if st.unanswered == s.cfg.MaxUnanswered {
				s.log.Info().Str("peer", p.Addr.String()).Dur("every", s.cfg.Backoff).
					Msg("peer does not announce capabilities (an older or Python relay?); sending it no IPv6 frames and asking less often")
			}
			st.next = now.Add(s.cfg.Backoff)
		} else {
			st.next = now.Add(s.cfg.Interval)
		}
	}
}

// Drain answers the requests queued so far; Run answers them as they come,
// tests call it after Heard.
func (s *Stage) Drain() {
	for {
		select {
		case p := <-s.replies:
			s.reply(p)
		default:
			return
		}
	}
}

// reply answers p's request, unless p was answered less than ReplyGap ago.
func (s *Stage) reply(p *peers.Peer) {
	now := s.now()
	st := s.state[p.Addr]
	if st == nil {
		// A request from a peer Step has not seen yet: schedule it, so that
		// an announcing relay also asks it at once.
		st = &schedule{next: now}
		s.state[p.Addr] = st
	}
	if !st.lastReply.IsZero() && now.Sub(st.lastReply) < s.cfg.ReplyGap {
		s.Limited.Add(1)
		return
	}
	st.lastReply = now
	s.send(p, false)
	s.Replies.Add(1)
}

// send writes our announcement to p. The body is always mesh.CapsLen bytes
// and sealed only on a keyed mesh, where every request is sealed too: a
// reply is never larger than the request it answers.
func (s *Stage) send(p *peers.Peer, wantReply bool) {
	mesh.PutCaps(s.buf[pipeline.Headroom:], mesh.Announce{ID: s.cfg.ID, Caps: s.cfg.Caps, WantReply: wantReply})
	start := pipeline.Headroom
	if s.sealer != nil {
		start = s.sealer.Seal(s.buf, pipeline.Headroom, mesh.CapsLen)
	}
	if err := s.conn.WriteTo(s.buf[start:], p.Addr); err != nil {
		if s.c != nil {
			s.c.Errors.Add(1)
		}
		s.log.Debug().Err(err).Str("peer", p.Addr.String()).Msg("capabilities not sent")
		return
	}
	if s.c != nil {
		s.c.Out.Add(1)
	}
}
