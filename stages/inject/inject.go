//go:build linux

// Package inject is the inbound pipeline's last stage: it writes the
// rewritten broadcast frames onto the target interface through an AF_PACKET
// socket whose SO_MARK the capture filter recognises.
package inject

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/rawsock"
	"github.com/snowsignal/snowsignal/pipeline"
)

// Config is what the inject stage needs to know.
type Config struct {
	// Interface is the target interface's name, looked up on every (re)start.
	Interface string
	// Mark is the SO_MARK set on the inject socket.
	Mark uint32
	// LocalDelivery also hands every frame to this host's own IP stack, so
	// servers on the relay's host receive it: a frame written to an
	// AF_PACKET socket leaves through the interface and never comes back up
	// the local stack. It is written to the loopback interface, where the
	// kernel receives it as a broadcast.
	LocalDelivery bool
	// Listeners, if not nil, says whether a local socket is bound to a
	// relayed port; with LocalDelivery, frames are copied to lo only then.
	Listeners Listeners
	// Shed says which frames the stage drops, instead of injecting them,
	// for how long ago the kernel received them (stale, overload).
	Shed pipeline.ShedPolicy
}

// Listeners is what the inject stage asks of the watcher of this host's
// sockets (stages/locals).
type Listeners interface {
	// Active says frames are being injected, for a watcher that looks only
	// while they are. It must be cheap: it is called for every batch.
	Active()
	// Present reports whether a local socket may receive relayed frames.
	Present() bool
}

// Stage injects frames.
type Stage struct {
	cfg    Config
	in     *pipeline.Link
	pool   *pipeline.Pool
	target *iface.Current
	shed   *pipeline.Shedder
	c      *pipeline.StageCounters
	m      *pipeline.Metrics
	log    zerolog.Logger
}

// New returns an inject stage reading from in. It publishes the interface's
// details to target on every (re)start, for the rewrite stage.
func New(cfg Config, in *pipeline.Link, pool *pipeline.Pool, target *iface.Current, c *pipeline.StageCounters, m *pipeline.Metrics, log zerolog.Logger) *Stage {
	return &Stage{cfg: cfg, in: in, pool: pool, target: target, shed: pipeline.NewShedder(cfg.Shed, m), c: c, m: m,
		log: log.With().Str("stage", c.Name()).Str("iface", cfg.Interface).Logger()}
}

// Run injects until its input link is closed or the socket fails.
func (s *Stage) Run(ctx context.Context) error {
	info, err := iface.Await(ctx, s.cfg.Interface, func(err error) {
		s.log.Warn().Err(err).Msg("interface does not exist; dropping frames until it does")
	}, s.dropWhileMissing)
	if errors.Is(err, errInputClosed) {
		return nil
	}
	if err != nil {
		return err
	}
	s.target.Store(info)
	sock, err := rawsock.ListenInject(info.Interface(), s.cfg.Mark)
	if err != nil {
		return err
	}
	defer sock.Close()
	var local *rawsock.Injector
	if s.cfg.LocalDelivery {
		if local, err = openLocal(); err != nil {
			return err
		}
		defer local.Close()
	}
	s.log.Info().Int("ifindex", info.Index).Bool("local_delivery", local != nil).Msg("injecting")

	bufs := pipeline.NewBuffers() // each batch, as the sockets see it
	var v4 [][]byte               // the IPv4 frames of a batch with IPv6 ones, for lo
	var enobufs uint64
	// A write waiting for socket buffer space must not hold up shutdown.
	stopWrites := context.AfterFunc(ctx, func() { sock.SetWriteDeadline(time.Now()) })
	defer stopWrites()
	return s.in.Serve(ctx, func(b *pipeline.Batch) error {
		s.c.In.Add(uint64(len(b.Pkts)))
		// The last step before the interface: a late search only holds up
		// the fresh ones waiting behind it.
		s.shed.Shed(b)
		if len(b.Pkts) == 0 {
			s.pool.Put(b)
			return nil
		}
		n := len(b.Pkts)
		frames := bufs.Of(b)
		sent, err := sock.WriteBatch(frames)
		if s.cfg.Listeners != nil {
			s.cfg.Listeners.Active()
		}
		if local != nil && (s.cfg.Listeners == nil || s.cfg.Listeners.Present()) {
			if _, lerr := local.WriteBatch(localFrames(frames, &v4)); lerr != nil {
				s.c.Errors.Add(1)
				s.log.Debug().Err(lerr).Msg("local delivery failed")
			}
		}
		clear(frames) // no reference to the batch outlives it
		clear(v4)
		s.pool.Put(b)
		s.c.Out.Add(uint64(sent))
		if d := sock.Dropped - enobufs; d > 0 {
			enobufs = sock.Dropped
			s.c.Out.Add(^uint64(d - 1)) // those were counted as sent
			s.m.Drop(pipeline.ReasonSendError, int(d))
		}
		if err == nil {
			return nil
		}
		s.m.Drop(pipeline.ReasonSendError, n-sent)
		s.c.Errors.Add(1)
		// A link that is down refuses frames until it is up again; the
		// socket stays valid, so count and carry on.
		if errors.Is(err, unix.ENETDOWN) {
			return nil
		}
		return err
	})
}

// localFrames returns the frames of a batch that local delivery copies to
// lo: the IPv4 ones. The kernel has no route for IPv6 multicast arriving on
// lo (it counts such frames in Ip6InNoRoutes and drops them), so a copy of
// an IPv6 frame would cost a write and deliver nothing; servers on the
// relay's own host do not receive relayed IPv6 searches (docs/IPV6.md).
// A batch of IPv4 frames only is returned as it is; otherwise the IPv4
// frames are gathered in *buf, which is reused across batches.
func localFrames(frames [][]byte, buf *[][]byte) [][]byte {
	i := 0
	for i < len(frames) && !isIPv6(frames[i]) {
		i++
	}
	if i == len(frames) {
		return frames
	}
	*buf = append((*buf)[:0], frames[:i]...)
	for _, f := range frames[i+1:] {
		if !isIPv6(f) {
			*buf = append(*buf, f)
		}
	}
	return *buf
}

// isIPv6 reports whether the Ethernet frame b carries IPv6.
func isIPv6(b []byte) bool { return len(b) >= 14 && b[12] == 0x86 && b[13] == 0xdd }

// openLocal opens the inject socket for local delivery on the loopback
// interface. It carries no mark: the capture socket is not bound to lo.
func openLocal() (*rawsock.Injector, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, fmt.Errorf("local delivery: %w", err)
	}
	return rawsock.ListenInject(lo, 0)
}

// StrictRPFilter reports whether strict reverse-path filtering on lo would
// drop locally delivered broadcasts (their source is a host on another
// segment, which the route table does not reach through lo). Per
// ip-sysctl.txt the effective value is the maximum of "all" and the
// interface's own.
func StrictRPFilter() bool {
	v := 0
	for _, k := range []string{"all", "lo"} {
		b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + k + "/rp_filter")
		if err != nil {
			return false
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > v {
			v = n
		}
	}
	return v == 1
}
