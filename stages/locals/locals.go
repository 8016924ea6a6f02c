//go:build linux

// Package locals is the "locals" stage: it watches whether a socket of this
// host listens on a relayed port, so the inject stage copies frames to lo
// only when something there can receive them.
package locals

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/sockdiag"
	"github.com/snowsignal/snowsignal/netio/ticker"
)

// Every is how often a Watcher looks at this host's sockets:
// a server that starts on the relay's host receives relayed broadcasts
// within about this long.
const Every = time.Second

// A Watcher watches whether any UDP socket of this host (its network
// namespace) is bound to a relayed port, so that the inject stage copies
// frames to lo only when something there can receive them. In a container
// of its own the relay's namespace has no such socket, and a copy nobody
// receives costs the injecting relay about 2 µs per datagram, a fifth of
// its CPU at 50k/s.
//
// It asks the kernel with sock_diag (the netlink interface behind ss(8)),
// when frames start being injected and then once a second while they are;
// an idle relay does not look, nor wake. Whenever it does not know (idle, or the kernel cannot list sockets,
// for example without UDP socket diagnostics), it reports listeners
// present, so every frame is copied, as without it.
type Watcher struct {
	ports   []uint16
	active  atomic.Bool   // frames were injected since the last look
	kick    chan struct{} // Active wakes an idle Run
	present atomic.Bool
	log     zerolog.Logger
	every   time.Duration     // Every; tests shorten it
	dump    sockdiag.DumpFunc // sockdiag.DumpUDP; tests replace it
}

// New returns a watcher for sockets bound to ports. It reports listeners
// present until its first look.
func New(ports []uint16, log zerolog.Logger) *Watcher {
	l := &Watcher{ports: slices.Clone(ports), log: log.With().Str("stage", "locals").Logger(),
		every: Every, dump: sockdiag.DumpUDP, kick: make(chan struct{}, 1)}
	l.present.Store(true)
	return l
}

// Present reports whether a local socket was bound to a relayed port at the
// last look, or whether that is not known.
func (l *Watcher) Present() bool { return l.present.Load() }

// Active tells the watcher that frames are being injected. The inject
// stage calls it for every batch; it costs an atomic load but once a tick.
func (l *Watcher) Active() {
	if !l.active.Load() && l.active.CompareAndSwap(false, true) {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// Run waits for frames to be injected, then looks at once and every
// Every while they still are; when they stop it waits again,
// without a timer, so an idle relay is not woken.
func (l *Watcher) Run(ctx context.Context) error {
	// Paused while idle: no wake-up at all then.
	t := ticker.New(l.every)
	t.Pause()
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.kick:
		}
		for l.active.Swap(false) {
			found, err := l.look()
			switch {
			case err != nil:
				if !failing {
					l.log.Warn().Err(err).Msg("cannot list this host's UDP sockets; copying every relayed frame to lo")
				}
				failing, found = true, true
			case failing:
				l.log.Info().Msg("listing this host's UDP sockets works again")
				failing = false
			}
			if was := l.present.Swap(found); was != found {
				l.log.Debug().Bool("present", found).Msg("local listeners on relayed ports changed")
			}
			t.Reset(l.every)
			select {
			case <-t.C: // from before the Reset
			default:
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
		t.Pause()
		// Idle: whether a local socket listens is not known any more, so
		// the first frames when traffic resumes are copied.
		l.present.Store(true)
	}
}

// look reports whether a UDP socket (IPv4, or IPv6 which may be dual-stack)
// in the calling thread's network namespace is bound to a relayed port.
func (l *Watcher) look() (bool, error) {
	bound, err := sockdiag.UDPBound(l.dump, l.ports)
	return err != nil || len(bound) > 0, err
}
