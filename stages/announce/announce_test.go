package announce

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn/meshconntest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

var (
	modern = netip.MustParseAddrPort("[fd00:77::2]:7124") // answers
	legacy = netip.MustParseAddrPort("10.77.0.3:7124")    // a Python relay: never answers
)

// rig is a stage on a fake socket and a fake clock with two peers.
type rig struct {
	conn  *meshconntest.Conn
	tbl   *peers.Table
	s     *Stage
	clock time.Time
	c     *pipeline.StageCounters
}

func newRig(t *testing.T, cfg Config, sealer *mesh.Sealer) *rig {
	t.Helper()
	r := &rig{conn: meshconntest.New(1), tbl: peers.NewTable(), clock: time.Unix(1_000_000, 0)}
	r.tbl.Update(map[netip.AddrPort]string{modern: "static", legacy: "static"}, false, r.clock)
	r.c = pipeline.NewMetrics().Stage("announce")
	r.s = New(cfg, r.conn, r.tbl, sealer, r.c, zerolog.Nop())
	r.s.now = func() time.Time { return r.clock }
	return r
}

func (r *rig) peer(a netip.AddrPort) *peers.Peer { return r.tbl.Load().Lookup(a.Addr()) }

// sent parses every datagram sent so far to addr (unsealed).
func (r *rig) sent(t *testing.T, addr netip.AddrPort) []mesh.Announce {
	t.Helper()
	var out []mesh.Announce
	for _, d := range r.conn.Sent() {
		if d.Addr != addr {
			continue
		}
		a, err := mesh.ParseCaps(d.Data)
		if err != nil {
			t.Fatalf("datagram to %s: %v (%x)", addr, err, d.Data)
		}
		out = append(out, a)
	}
	return out
}

// TestAnnounceSchedule: an announcing relay asks both peers at once; the
// one that answers is then told every 30 s without being asked, the one
// that never answers (legacy) is asked three times 30 s apart, then every
// 10 minutes only: over 31 minutes, 3 + 3 requests.
func TestAnnounceSchedule(t *testing.T) {
	r := newRig(t, Config{ID: 0x0a0b0c0d, Caps: mesh.CapIPv6, Announce: true}, nil)
	r.s.Step()
	for _, a := range []netip.AddrPort{modern, legacy} {
		got := r.sent(t, a)
		if len(got) != 1 || got[0] != (mesh.Announce{ID: 0x0a0b0c0d, Caps: mesh.CapIPv6, WantReply: true}) {
			t.Fatalf("first datagrams to %s: %+v, want one request with ipv6", a, got)
		}
	}
	// The modern peer answers (not asking back).
	r.s.Heard(r.peer(modern), mesh.Announce{ID: 7, Caps: mesh.CapIPv6})
	for i := 0; i < 31*60; i++ {
		r.clock = r.clock.Add(time.Second)
		r.s.Step()
		if i%60 == 0 { // the modern peer keeps announcing every minute or so
			r.s.Heard(r.peer(modern), mesh.Announce{ID: 7, Caps: mesh.CapIPv6})
		}
	}
	m := r.sent(t, modern)
	if want := 1 + 31*60/30; len(m) != want {
		t.Errorf("%d datagrams to the answering peer in 31 min, want %d (one every 30 s)", len(m), want)
	}
	for i, a := range m[1:] {
		if a.WantReply {
			t.Errorf("datagram %d to the answering peer asks for a reply", i+1)
		}
	}
	l := r.sent(t, legacy)
	if want := 3 + 3; len(l) != want {
		t.Errorf("%d requests to the silent peer in 31 min, want %d (3 at 30 s, then every 10 min)", len(l), want)
	}
	for i, a := range l {
		if !a.WantReply {
			t.Errorf("datagram %d to the silent peer does not ask for a reply", i)
		}
	}
	if c := r.peer(legacy).Caps(r.clock.UnixNano()); c != 0 {
		t.Errorf("silent peer's caps = %v, want none", c)
	}
	if c := r.peer(modern).Caps(r.clock.UnixNano()); !c.Has(mesh.CapIPv6) {
		t.Errorf("answering peer's caps = %v, want ipv6", c)
	}
	if got := r.c.Out.Load(); got != uint64(len(m)+len(l)) {
		t.Errorf("Out = %d, want %d", got, len(m)+len(l))
	}
}

// TestAnnounceExpiry: a peer's capabilities are forgotten 90 s after its
// last announcement; the announcing relay then asks it again.
func TestAnnounceExpiry(t *testing.T) {
	r := newRig(t, Config{ID: 1, Caps: mesh.CapIPv6, Announce: true}, nil)
	r.s.Heard(r.peer(modern), mesh.Announce{ID: 7, Caps: mesh.CapIPv6})
	start := r.clock
	r.clock = start.Add(89 * time.Second)
	if c := r.peer(modern).Caps(r.clock.UnixNano()); !c.Has(mesh.CapIPv6) {
		t.Fatalf("caps after 89 s = %v, want ipv6", c)
	}
	r.clock = start.Add(90 * time.Second)
	if c, known := r.peer(modern).CapsKnown(r.clock.UnixNano()); known || c != 0 {
		t.Fatalf("caps after 90 s = %v (known %v), want forgotten", c, known)
	}
	r.s.Step()
	if got := r.sent(t, modern); len(got) != 1 || !got[0].WantReply {
		t.Errorf("after expiry sent %+v, want one request", got)
	}
}

// TestAnnounceReply: a relay without --ipv6 never announces unprompted but
// answers a request at once with its own capabilities (none), without
// asking back, at most once a second per peer; the reply has the
// request's size.
func TestAnnounceReply(t *testing.T) {
	r := newRig(t, Config{ID: 2}, nil)
	r.s.Step()
	if got := r.conn.Sent(); len(got) != 0 {
		t.Fatalf("a relay without --ipv6 sent %d datagrams unprompted", len(got))
	}
	req := mesh.Announce{ID: 7, Caps: mesh.CapIPv6, WantReply: true}
	for range 5 { // a burst of requests within a second
		r.s.Heard(r.peer(modern), req)
	}
	r.s.Drain()
	got := r.sent(t, modern)
	if len(got) != 1 || got[0] != (mesh.Announce{ID: 2}) {
		t.Fatalf("replies %+v, want one, caps none, no reply wanted", got)
	}
	if n := r.s.Limited.Load(); n != 4 {
		t.Errorf("Limited = %d, want 4", n)
	}
	if d := r.conn.Sent()[0].Data; len(d) != mesh.CapsLen {
		t.Errorf("reply is %d bytes, want %d (the request's)", len(d), mesh.CapsLen)
	}
	r.clock = r.clock.Add(time.Second)
	r.s.Heard(r.peer(modern), req)
	r.s.Drain()
	if got := r.sent(t, modern); len(got) != 2 {
		t.Errorf("%d replies after the gap, want 2", len(got))
	}
	if c := r.peer(modern).Caps(r.clock.UnixNano()); !c.Has(mesh.CapIPv6) {
		t.Errorf("requester's caps = %v, want ipv6 (a request announces too)", c)
	}
}

// TestAnnounceSealed: with a key, announcements are sealed like frames and
// open to the body; a request and its reply have the same size.
func TestAnnounceSealed(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	r := newRig(t, Config{ID: 3, Caps: mesh.CapIPv6, Announce: true}, mesh.NewSealer(key, 9))
	r.s.Step()
	r.s.Heard(r.peer(modern), mesh.Announce{ID: 7, WantReply: true})
	r.s.Drain()
	sent := r.conn.Sent()
	if len(sent) != 3 { // a request to each peer, a reply to modern
		t.Fatalf("sent %d datagrams, want 3", len(sent))
	}
	o := mesh.NewOpener(key)
	for _, d := range sent {
		if len(d.Data) != mesh.MaxHeaderLen+mesh.CapsLen {
			t.Errorf("sealed announcement is %d bytes, want %d", len(d.Data), mesh.MaxHeaderLen+mesh.CapsLen)
		}
		body, _, _, err := o.Open(d.Data)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if a, err := mesh.ParseCaps(body); err != nil || a.ID != 3 || a.Caps != mesh.CapIPv6 {
			t.Errorf("body %+v (%v), want id 3, ipv6", a, err)
		}
	}
}

// TestAnnounceForgetsLeftPeers: a peer that leaves the set and comes back
// is a new peer: asked again at once, its old capabilities gone.
func TestAnnounceForgetsLeftPeers(t *testing.T) {
	r := newRig(t, Config{ID: 4, Caps: mesh.CapIPv6, Announce: true}, nil)
	r.s.Step()
	r.s.Heard(r.peer(modern), mesh.Announce{ID: 7, Caps: mesh.CapIPv6})
	r.tbl.Update(map[netip.AddrPort]string{legacy: "static"}, false, r.clock)
	r.clock = r.clock.Add(time.Second)
	r.s.Step()
	r.tbl.Update(map[netip.AddrPort]string{legacy: "static", modern: "static"}, false, r.clock)
	if c := r.peer(modern).Caps(r.clock.UnixNano()); c != 0 {
		t.Errorf("rejoined peer's caps = %v, want none until it announces", c)
	}
	r.s.Step()
	if got := r.sent(t, modern); len(got) != 2 || !got[1].WantReply {
		t.Errorf("datagrams to the rejoined peer: %+v, want a new request", got)
	}
}
