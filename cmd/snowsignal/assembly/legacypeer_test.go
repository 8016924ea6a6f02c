//go:build linux

package assembly

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn/meshconntest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/announce"
	"github.com/snowsignal/snowsignal/stages/fanout"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// TestLegacyPeerNeverGetsIPv6 wires the capabilities stage and the fan-out
// to one fake mesh socket, as New does, with a peer that answers the
// capabilities request and a legacy one (the Python relay) that never
// does. Over 15 minutes of the schedule, with an IPv4 and an IPv6 frame
// every second, the legacy peer gets every IPv4 frame, no IPv6 frame, and
// four requests (three 30 s apart, then one after the 10-minute back-off);
// the other peer gets both families.
func TestLegacyPeerNeverGetsIPv6(t *testing.T) {
	modern := netip.MustParseAddrPort("[fd00:77::2]:7124")
	legacy := netip.MustParseAddrPort("10.77.0.3:7124")
	conn := meshconntest.New(1)
	tbl := peers.NewTable()
	tbl.Update(map[netip.AddrPort]string{modern: "static", legacy: "static"}, false, time.Now())
	m := pipeline.NewMetrics()
	pool := pipeline.NewPool(256)
	clock := time.Now()
	ann := announce.New(announce.Config{ID: 1, Caps: mesh.CapIPv6, Announce: true, Now: func() time.Time { return clock }},
		conn, tbl, nil, m.Stage("announce"), zerolog.Nop())
	fan := fanout.New(nil, pool, conn, tbl, nil, pipeline.ShedPolicy{}, m.Stage("fanout"), m, zerolog.Nop())

	const seconds = 15 * 60
	seen := 0 // datagrams of conn.Sent() already looked at
	for i := 0; i < seconds; i++ {
		ann.Step()
		// The modern peer answers every request it gets (the rewrite stage
		// hands its announcement to Heard).
		sent := conn.Sent()
		for _, d := range sent[seen:] {
			if d.Addr == modern && mesh.IsCaps(d.Data) {
				if a, err := mesh.ParseCaps(d.Data); err == nil && a.WantReply {
					ann.Heard(tbl.Load().Lookup(modern.Addr()), mesh.Announce{ID: 2, Caps: mesh.CapIPv6})
				}
			}
		}
		seen = len(sent)
		b := pool.Get()
		for _, v6 := range []bool{false, true} {
			p := b.Slot()
			p.Len = copy(p.Buf[p.Off:], map[bool]string{false: "frame-v4", true: "frame-v6"}[v6])
			p.Frame.IPv6 = v6
		}
		if err := fan.Handle(b); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second)
	}
	count := map[netip.AddrPort]map[string]int{modern: {}, legacy: {}}
	for _, d := range conn.Sent() {
		kind := string(d.Data[len(mesh.LegacyMagic):])
		if mesh.IsCaps(d.Data) {
			a, _ := mesh.ParseCaps(d.Data)
			kind = map[bool]string{false: "announce", true: "request"}[a.WantReply]
		}
		count[d.Addr][kind]++
	}
	if c := count[legacy]; c["frame-v6"] != 0 || c["frame-v4"] != seconds || c["request"] != 4 {
		t.Errorf("legacy peer got %v, want %d IPv4 frames, no IPv6 frame, 4 requests", c, seconds)
	}
	if c := count[modern]; c["frame-v4"] != seconds || c["frame-v6"] < seconds-1 {
		t.Errorf("modern peer got %v, want every frame of both families (but the IPv6 one before its answer)", c)
	}
	if n := tbl.Load().Lookup(legacy.Addr()).Withheld6.Load(); n != seconds {
		t.Errorf("legacy peer: Withheld6 = %d, want %d", n, seconds)
	}
}
