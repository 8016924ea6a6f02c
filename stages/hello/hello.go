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
	"github.com/snowsignal/snowsignal/netio/ticker"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// A Sender sends one datagram: the mesh socket (netio/meshconn.Conn), whose
// WriteTo hellos use, and WriteFrom for hellos to ff02::1 from a relay
// without IPv4, which must come from the address the relay meshes from.
type Sender interface {
	WriteTo(b []byte, addr netip.AddrPort) error
	WriteFrom(b []byte, src netip.Addr, ifindex int, addr netip.AddrPort) error
}

// allNodes is the IPv6 all-nodes group, ff02::1: the hello's destination
// on a segment where the relay has no IPv4 address (IPv6 has no broadcast;
// every node of the link is in this group).
var allNodes = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 1})

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
	caps     mesh.Caps
}

// New returns a hello stage sending every interval to the target
// interface's broadcast address on port (to ff02::1 on it when it has no
// IPv4 address), announcing caps in the hello's flags byte. With a sealer,
// hellos are authenticated like every other mesh datagram.
func New(t *segment.Table, conn Sender, sealer *mesh.Sealer, target *iface.Current, port uint16, interval time.Duration, caps mesh.Caps, log zerolog.Logger) *Stage {
	return &Stage{table: t, conn: conn, sealer: sealer, target: target, port: port, interval: interval, caps: caps,
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
	t := ticker.New(h.interval)
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

// Send sends one hello now; Run calls it every interval.
func (h *Stage) Send() { h.send() }

func (h *Stage) send() {
	info := h.target.Load()
	if info == nil {
		return
	}
	self, v6 := info.Addr, false
	if !self.IsValid() {
		if self = info.Addr6(); !self.IsValid() {
			return // no address yet: nothing to hello from
		}
		v6 = true
	}
	h.table.SetSelf(self)
	segment.PutHelloCaps(h.buf[pipeline.Headroom:], h.table.ID(), info.MAC, h.caps)
	start := pipeline.Headroom
	if h.sealer != nil {
		start = h.sealer.Seal(h.buf, pipeline.Headroom, segment.HelloLen)
	}
	var err error
	if v6 {
		// From our global or ULA address, which neighbours also see our mesh
		// datagrams come from, not the link-local one the kernel would pick.
		err = h.conn.WriteFrom(h.buf[start:], self, info.Index, netip.AddrPortFrom(allNodes.WithZone(info.Name), h.port))
	} else {
		err = h.conn.WriteTo(h.buf[start:], netip.AddrPortFrom(info.Broadcast, h.port))
	}
	if err != nil {
		h.log.Debug().Err(err).Msg("hello not sent")
	}
}
