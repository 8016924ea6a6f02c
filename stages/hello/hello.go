//go:build linux

// Package hello is the actor that broadcasts this relay's segment hellos
// (see stages/shared/segment for what they are for) and forgets neighbours
// that fell silent.
package hello

import (
	"context"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// A Sender sends one datagram: the mesh socket (netio/meshconn.Conn), whose
// WriteTo hellos use.
type Sender interface {
	WriteTo(b []byte, addr netip.AddrPort) error
}

// Stage is the actor that broadcasts this relay's hellos and forgets
// silent neighbours.
type Stage struct {
	table    *segment.Table
	conn     Sender
	sealer   *mesh.Sealer
	target   *iface.Current
	port     uint16
	interval time.Duration
	log      zerolog.Logger
	kick     chan struct{}
	buf      []byte
}

// New returns a hello stage sending every interval to the target
// interface's broadcast address on port. With a sealer, hellos are
// authenticated like every other mesh datagram.
func New(t *segment.Table, conn Sender, sealer *mesh.Sealer, target *iface.Current, port uint16, interval time.Duration, log zerolog.Logger) *Stage {
	return &Stage{table: t, conn: conn, sealer: sealer, target: target, port: port, interval: interval,
		log: log.With().Str("stage", "hello").Logger(), kick: make(chan struct{}, 1),
		buf: make([]byte, pipeline.Headroom+segment.HelloLen)}
}

// Kick sends a hello now, so a relay that just appeared learns about us
// without waiting an interval. It never blocks.
func (h *Stage) Kick() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Run sends hellos until ctx is done.
func (h *Stage) Run(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.send()
		for _, a := range h.table.Expire(time.Now().UnixNano()) {
			h.log.Info().Str("peer", a.String()).Msg("relay on this segment went silent; taking over its share of injections")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-h.kick:
		}
	}
}

func (h *Stage) send() {
	info := h.target.Load()
	if info == nil || !info.Addr.IsValid() {
		return
	}
	h.table.SetSelf(info.Addr)
	segment.PutHello(h.buf[pipeline.Headroom:], h.table.ID(), info.MAC)
	start := pipeline.Headroom
	if h.sealer != nil {
		start = h.sealer.Seal(h.buf, pipeline.Headroom, segment.HelloLen)
	}
	dst := netip.AddrPortFrom(info.Broadcast, h.port)
	if err := h.conn.WriteTo(h.buf[start:], dst); err != nil {
		h.log.Debug().Err(err).Msg("hello not sent")
	}
}
