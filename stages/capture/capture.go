//go:build linux

// Package capture is the outbound pipeline's first stage: it reads the
// broadcasts the kernel's capture filter lets through on the target interface
// and hands them on in batches.
package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mcast"
	"github.com/snowsignal/snowsignal/netio/rawsock"
	"github.com/snowsignal/snowsignal/pipeline"
)

// Config is what the capture stage needs to know.
type Config struct {
	// Interface is the target interface's name. It is looked up on every
	// (re)start, so an interface that was removed and re-created is found.
	Interface string
	// Filter selects the frames the kernel delivers. With Filter.IPv6, the
	// stage also joins Filter.IPv6Groups on the interface at every
	// (re)start, so switches that snoop MLD deliver them, and leaves them
	// when it stops.
	Filter rawsock.FilterConfig
}

// Stage reads frames from an AF_PACKET socket into pooled batches.
type Stage struct {
	cfg  Config
	pool *pipeline.Pool
	out  *pipeline.Link
	c    *pipeline.StageCounters
	m    *pipeline.Metrics
	co   *pipeline.Coalescer
	log  zerolog.Logger
	bufs *pipeline.Buffers // the batch being read, as the socket sees it

	up          atomic.Bool   // the capture socket is open and the link is up
	kernelDrops atomic.Uint64 // PACKET_STATISTICS drops, over all sockets opened
}

// New returns a capture stage that sends into out, spacing its reads under
// load with co (nil: never).
func New(cfg Config, pool *pipeline.Pool, out *pipeline.Link, c *pipeline.StageCounters, m *pipeline.Metrics, co *pipeline.Coalescer, log zerolog.Logger) *Stage {
	return &Stage{cfg: cfg, pool: pool, out: out, c: c, m: m, co: co, log: log.With().Str("stage", c.Name()).Str("iface", cfg.Interface).Logger(),
		bufs: pipeline.NewBuffers()}
}

// Up reports whether the capture socket is open on an interface that is up.
func (s *Stage) Up() bool { return s.up.Load() }

// KernelDrops is the number of frames the kernel dropped because the capture
// socket's queue was full.
func (s *Stage) KernelDrops() uint64 { return s.kernelDrops.Load() }

// Run captures until ctx is done or the socket fails.
func (s *Stage) Run(ctx context.Context) error {
	info, err := iface.Await(ctx, s.cfg.Interface, func(err error) {
		s.log.Warn().Err(err).Msg("interface does not exist; waiting for it")
	}, nil)
	if err != nil {
		return err
	}
	if s.cfg.Filter.IPv6 {
		// Re-joined on every start: re-creating the interface drops the
		// memberships.
		m, err := mcast.Join(info.Index, s.cfg.Filter.IPv6Groups)
		if err != nil {
			return fmt.Errorf("capture on %s: %w (is IPv6 disabled on %s?)", s.cfg.Interface, err, s.cfg.Interface)
		}
		defer m.Close()
		s.log.Info().Str("groups", fmt.Sprint(m.Groups())).Msg("joined IPv6 groups")
	}
	sock, err := rawsock.ListenCapture(info.Interface(), s.cfg.Filter)
	if err != nil {
		return err
	}
	defer sock.Close()
	stop := sock.CloseOnDone(ctx)
	defer stop()
	defer s.up.Store(false)
	s.up.Store(info.Up)
	subnets := make([]string, len(info.Addrs))
	for i, a := range info.Addrs {
		subnets[i] = a.Prefix.String()
	}
	s.log.Info().Int("ifindex", info.Index).Int("mtu", info.MTU).Strs("subnets", subnets).Msg("capturing")
	if len(subnets) > 1 {
		// Each relayed broadcast goes to the subnet of its client (rewrite).
		s.log.Info().Strs("subnets", subnets).Msg("interface has several IPv4 addresses; relaying and rewriting for every subnet")
	}

	var base = s.kernelDrops.Load()
	lastStats := time.Now()
	for {
		b := s.pool.Get()
		s.bufs.Free(b)
		n, tooBig, err := sock.ReadBatch(s.bufs.Bufs, pipeline.Headroom, s.bufs.Sizes, s.bufs.Stamps)
		full := s.bufs.Filled(b, n, false)
		if err != nil {
			s.pool.Put(b)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Per packet(7) semantics in af_packet.c, a bound socket reports
			// ENETDOWN once when its interface goes down and is re-hooked
			// when it comes back up: keep reading, no restart needed, but
			// watch for the interface being removed (see watchDown).
			if errors.Is(err, unix.ENETDOWN) {
				s.up.Store(false)
				s.log.Warn().Err(err).Msg("interface down; waiting for it to come back")
				err = sock.SetReadDeadline(time.Now().Add(downCheckEvery))
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				var up bool
				if up, err = s.watchDown(sock, info); up {
					s.up.Store(true)
					s.log.Info().Msg("interface up again")
				}
			}
			if err != nil {
				return err
			}
			continue
		}
		s.up.Store(true)
		if tooBig > 0 {
			s.m.Drop(pipeline.ReasonTooBig, tooBig)
		}
		s.c.In.Add(uint64(n))
		s.c.PassFrom(s.out, b, sock)
		s.co.Pause(full)
		if now := time.Now(); now.Sub(lastStats) > time.Second {
			lastStats = now
			if d, err := sock.KernelDrops(); err == nil {
				s.kernelDrops.Store(base + d)
			}
		}
	}
}
