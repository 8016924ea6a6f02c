package insight

import (
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/epics"
	"github.com/snowsignal/snowsignal/pipeline"
)

// An Observer feeds one direction's packets to its Insight and logs them at
// debug level, sampled. It implements rules.Observer. Each stage has its
// own Observer: its methods must be called from one goroutine.
type Observer struct {
	in  *Insight
	dir Direction
	log zerolog.Logger

	debug bool // debug logging is on for the current batch
	dg    epics.Datagram
	buf   []byte // scratch for rendering addresses into log lines

	relayed, dropped, search sampler
}

// Observer returns the observer of direction dir. Its log lines carry the
// logger's fields (the stage) and "dir".
func (in *Insight) Observer(dir Direction, log zerolog.Logger) *Observer {
	burst := in.cfg.LogBurst
	return &Observer{in: in, dir: dir, log: log.With().Str("dir", dir.String()).Logger(), buf: make([]byte, 0, 64),
		relayed: sampler{limit: burst}, dropped: sampler{limit: burst}, search: sampler{limit: burst}}
}

// Tracing reports whether debug logging is on; it is checked once per batch,
// so per-packet logging costs nothing when it is off.
func (o *Observer) Tracing() bool {
	o.debug = o.log.GetLevel() <= zerolog.DebugLevel && zerolog.GlobalLevel() <= zerolog.DebugLevel
	return o.debug
}

// Kept records the EPICS content of the batch's packets and, at debug
// level, logs them as relayed.
func (o *Observer) Kept(b *pipeline.Batch) {
	if len(b.Pkts) == 0 {
		return
	}
	now := time.Now()
	for i := range b.Pkts {
		p := &b.Pkts[i]
		f := &p.Frame
		if !f.HasUDPHeader() {
			continue // a later fragment: no UDP header, no EPICS header
		}
		src := netip.AddrPortFrom(f.Src, f.SrcPort)
		err := o.dg.Decode(f.Payload(p.Bytes()))
		o.in.record(o.dir, &o.dg, err, src, now)
		if o.debug {
			if o.dg.Searches > 0 {
				o.logSearch(src, now.UnixNano())
			}
			o.logRelayed(p, now.UnixNano())
		}
	}
}

// Dropped logs, at debug level and sampled, a packet dropped for reason r.
// The stage calls it only when Tracing returned true for the batch.
func (o *Observer) Dropped(p *pipeline.Packet, r pipeline.Reason) {
	ok, suppressed := o.dropped.allow(time.Now().UnixNano())
	if !ok {
		return
	}
	ev := o.log.Debug().Str("reason", r.String()).Int("size", p.Len)
	if p.Addr.IsValid() {
		ev = ev.Bytes("peer", p.Addr.AppendTo(o.buf[:0]))
	}
	if f := &p.Frame; f.Src.IsValid() && f.Dst.IsValid() {
		ev = ev.Bytes("src", netip.AddrPortFrom(f.Src, f.SrcPort).AppendTo(o.buf[:0])).
			Bytes("dst", netip.AddrPortFrom(f.Dst, f.DstPort).AppendTo(o.buf[:0]))
	}
	if suppressed > 0 {
		ev = ev.Uint64("suppressed", suppressed)
	}
	ev.Msg("dropped")
}

func (o *Observer) logRelayed(p *pipeline.Packet, now int64) {
	ok, suppressed := o.relayed.allow(now)
	if !ok {
		return
	}
	f := &p.Frame
	ev := o.log.Debug().Bytes("src", netip.AddrPortFrom(f.Src, f.SrcPort).AppendTo(o.buf[:0])).
		Bytes("dst", netip.AddrPortFrom(f.Dst, f.DstPort).AppendTo(o.buf[:0])).Int("size", p.Len)
	if p.Addr.IsValid() {
		ev = ev.Bytes("peer", p.Addr.AppendTo(o.buf[:0]))
	}
	if suppressed > 0 {
		ev = ev.Uint64("suppressed", suppressed)
	}
	ev.Msg("relayed")
}

func (o *Observer) logSearch(client netip.AddrPort, now int64) {
	ok, suppressed := o.search.allow(now)
	if !ok {
		return
	}
	pvs := zerolog.Arr()
	for i := range o.dg.Names() {
		pvs = pvs.Bytes(o.dg.Name(i))
	}
	ev := o.log.Debug().Str("proto", o.dg.Proto.String()).Bytes("client", client.AppendTo(o.buf[:0])).Array("pvs", pvs)
	if o.dg.Dropped > 0 {
		ev = ev.Int("pvs_not_listed", o.dg.Dropped)
	}
	if suppressed > 0 {
		ev = ev.Uint64("suppressed", suppressed)
	}
	ev.Msg("pv search")
}
