//go:build linux

package fanout

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/pipeline"
)

// peerErrorLogEvery is how often, at most, a peer's send errors are logged:
// a peer that is down bounces a datagram per search, and its counter, not
// the log, is where the rest go.
const peerErrorLogEvery = 10 * time.Second

// peerError counts an error the kernel reported, after the send, for a
// datagram to e.Dst: typically ICMP port unreachable from a peer whose relay
// is not running. It is called from whichever goroutine read the mesh
// socket's error queue (listener, fan-out or hello), so it only touches
// atomics and the log limiter.
func (s *Stage) peerError(e meshconn.PeerError) {
	s.c.Errors.Add(1)
	s.m.Drop(pipeline.ReasonSendError, 1)
	p := s.peers.Load().Lookup(e.Dst.Addr())
	if p == nil || p.Addr != e.Dst {
		// Not a peer (any more): a hello to a neighbour, or a peer that
		// discovery has since removed.
		s.log.Debug().Str("dst", e.Dst.String()).Err(e.Err).Msg("send error for a destination outside the peer set")
		return
	}
	n := p.TxErrors.Add(1)
	if !s.errLog.allow(e.Dst, time.Now()) {
		return
	}
	ev := s.log.Warn().Str("peer", e.Dst.String()).Err(e.Err).Uint8("icmp_type", e.Type).Uint8("icmp_code", e.Code).
		Uint64("tx_errors", n)
	if e.From.IsValid() && e.From != e.Dst.Addr() {
		ev = ev.Str("reported_by", e.From.String())
	}
	if e.Err == unix.ECONNREFUSED {
		ev.Msg("peer refuses mesh datagrams (ICMP port unreachable): is its relay running?")
		return
	}
	ev.Msg("mesh datagrams to peer bounced")
}

// logLimiter lets through one log line per key per peerErrorLogEvery.
type logLimiter struct {
	mu   sync.Mutex
	last map[netip.AddrPort]time.Time
}

func (l *logLimiter) allow(k netip.AddrPort, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[k]; ok && now.Sub(t) < peerErrorLogEvery {
		return false
	}
	if l.last == nil {
		l.last = map[netip.AddrPort]time.Time{}
	}
	if len(l.last) > 4096 {
		clear(l.last) // bounded: peers come and go
	}
	l.last[k] = now
	return true
}
