package rules

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
	"github.com/snowsignal/snowsignal/stages/shared/stagetest"
)

var (
	clientMAC    = [6]byte{0x02, 0x00, 10, 77, 0, 11}
	neighbourMAC = [6]byte{0x02, 0x00, 10, 77, 0, 3}
	neighbour    = netip.MustParseAddr("10.77.0.3")
)

// udp returns a broadcast frame from src to dst carrying payload, sent
// from mac (the client's when zero).
func udp(src, dst, payload string, mac [6]byte) []byte {
	if mac == ([6]byte{}) {
		mac = clientMAC
	}
	return frametest.UDP{DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: mac,
		Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), ID: 0x1234, Payload: []byte(payload)}.Frame()
}

func search(src string) []byte { return udp(src+":38726", "10.77.0.255:5076", "search", [6]byte{}) }

// udp6 returns an IPv6 frame from src to dst carrying payload, sent from the
// client's MAC to dstMAC (the group's MAC when zero).
func udp6(src, dst, payload string, dstMAC [6]byte) []byte {
	d := netip.MustParseAddrPort(dst)
	if dstMAC == ([6]byte{}) {
		dstMAC = frame.MulticastMAC(d.Addr())
	}
	return frametest.UDP6{DstMAC: dstMAC, SrcMAC: clientMAC, Src: netip.MustParseAddrPort(src), Dst: d, Payload: []byte(payload)}.Frame()
}

// search6 is an IPv6 client's search to all nodes (ff02::1).
func search6(src string) []byte {
	return udp6("["+src+"]:38726", "[ff02::1]:5076", "search", [6]byte{})
}

// The verdicts a row expects, one per frame: a drop reason or pass.
const pass = pipeline.NumReasons + 1

// The rules under test, as the stages call them.
var (
	goodSource        = (*Rules).GoodSource
	relayedPort       = (*Rules).RelayedPort
	fragment          = (*Rules).Fragment
	firstCapture      = (*Rules).FirstCapture
	firstDelivery     = (*Rules).FirstDelivery
	relayedGroup      = (*Rules).RelayedGroup
	groupEthernet     = (*Rules).GroupEthernet
	neighbourInjected = (*Rules).NotNeighbourInjection
	ourInjection      = (*Rules).OurInjection
	withinRate        = func(r *Rules, p *pipeline.Packet) bool { return r.WithinRate(p, p.Frame.Src) }
	fromNeighbour     = func(r *Rules, p *pipeline.Packet) bool { return r.NotFromNeighbour(p, p.Addr.Addr()) }
	// As both directions follow fragments: their port checked, the first
	// fragment followed.
	fragments = func(r *Rules, p *pipeline.Packet) bool {
		return r.Fragment(p) && r.RelayedPort(p) && r.FollowFragments(p)
	}
)

// TestRules is the one table of the rules both directions apply: each row
// sends its frames, in order, through one rule (or the fragment sequence),
// and names the verdict each must get.
func TestRules(t *testing.T) {
	frags := frametest.Fragments(udp("10.77.0.11:38726", "10.77.0.255:5076", strings.Repeat("f", 3000), [6]byte{}), 1480)
	wrongPortFrags := frametest.Fragments(udp("10.77.0.11:38726", "10.77.0.255:5077", strings.Repeat("f", 3000), [6]byte{}), 1480)
	fromMAC := udp("10.77.0.11:38726", "10.77.0.255:5076", "injected by the neighbour", neighbourMAC)
	frags6 := frametest.Fragments6(udp6("[fd00:77::11]:38726", "[ff02::1]:5076", strings.Repeat("f", 3000), [6]byte{}), 1448, 0x12345678)
	otherID6 := frametest.Fragments6(udp6("[fd00:77::11]:38726", "[ff02::1]:5076", strings.Repeat("f", 3000), [6]byte{}), 1448, 0x92345678)
	var owners, others int // frames this relay injects, and leaves to its neighbour
	for _, tc := range []struct {
		name   string
		rule   func(*Rules, *pipeline.Packet) bool
		cfg    func(c *Config) // changes to the default: ports 5076 and 5064, fragments on
		from   string          // the mesh source, for the inbound rules
		frames [][]byte
		at     []time.Duration // when each frame arrives, after the first; zero: all at once
		want   []pipeline.Reason
	}{
		{name: "client sources", rule: goodSource,
			frames: [][]byte{search("10.77.0.11"), search("192.168.1.1"), search("223.255.255.254"), search("1.0.0.0")},
			want:   []pipeline.Reason{pass, pass, pass, pass}},
		{name: "sources no client can have", rule: goodSource,
			frames: [][]byte{search("0.0.0.0"), search("0.1.2.3"), search("127.0.0.1"), search("224.0.0.5"),
				search("239.255.255.255"), search("240.1.2.3"), search("255.255.255.255")},
			want: repeat(pipeline.ReasonBadSource, 7)},
		{name: "IPv6 client sources", rule: goodSource,
			frames: [][]byte{search6("fd00:77::11"), search6("2001:db8::1"), search6("fc00::1")},
			want:   []pipeline.Reason{pass, pass, pass}},
		{name: "IPv6 link-local sources", rule: goodSource,
			frames: [][]byte{search6("fe80::1"), search6("febf:ffff::1")},
			want:   repeat(pipeline.ReasonLinkLocalSource, 2)},
		{name: "IPv6 sources no client can have", rule: goodSource,
			frames: [][]byte{search6("::"), search6("::1"), search6("ff02::1"), search6("::ffff:10.77.0.11")},
			want:   repeat(pipeline.ReasonBadSource, 4)},
		{name: "relayed IPv6 groups", rule: relayedGroup,
			cfg: func(c *Config) {
				c.Groups = []netip.Addr{netip.MustParseAddr("ff02::1"), netip.MustParseAddr("ff02::1:3")}
			},
			frames: [][]byte{search6("fd00:77::11"), udp6("[fd00:77::11]:1", "[ff02::1:3]:5076", "x", [6]byte{}),
				udp6("[fd00:77::11]:1", "[ff02::2]:5076", "another group", [6]byte{}),
				udp6("[fd00:77::11]:1", "[ff05::1]:5076", "site scope", [6]byte{}),
				udp6("[fd00:77::11]:1", "[fd00:77::21]:5076", "unicast", [6]byte{}),
				search("10.77.0.11")},
			want: []pipeline.Reason{pass, pass, pipeline.ReasonNotBroadcast, pipeline.ReasonNotBroadcast, pipeline.ReasonNotBroadcast, pass}},
		{name: "no IPv6 group relayed", rule: relayedGroup,
			frames: [][]byte{search6("fd00:77::11")}, want: []pipeline.Reason{pipeline.ReasonNotBroadcast}},
		{name: "IPv6 Ethernet destination", rule: groupEthernet,
			frames: [][]byte{search6("fd00:77::11"), udp6("[fd00:77::11]:1", "[ff02::1]:5076", "unicast MAC", [6]byte{0x02, 0, 1, 2, 3, 4}),
				udp6("[fd00:77::11]:1", "[ff02::1]:5076", "another group's MAC", [6]byte{0x33, 0x33, 0, 0, 0, 2}), search("10.77.0.11")},
			want: []pipeline.Reason{pass, pipeline.ReasonNotBroadcast, pipeline.ReasonNotBroadcast, pass}},
		{name: "IPv6 ports", rule: relayedPort,
			frames: [][]byte{search6("fd00:77::11"), udp6("[fd00:77::11]:1", "[ff02::1]:5077", "x", [6]byte{})},
			want:   []pipeline.Reason{pass, pipeline.ReasonWrongPort}},
		{name: "IPv6 fragments followed on their 32-bit id", rule: fragments,
			frames: append(append([][]byte{}, frags6...), otherID6[1:]...),
			want:   []pipeline.Reason{pass, pass, pass, pipeline.ReasonFragment, pipeline.ReasonFragment}},
		{name: "IPv6 fragments disabled", rule: fragments, cfg: func(c *Config) { c.Fragments = false },
			frames: frags6, want: repeat(pipeline.ReasonFragment, 3)},
		{name: "a bucket per IPv6 source", rule: withinRate,
			cfg:    func(c *Config) { c.Limiter, _ = ratelimit.New(ratelimit.Config{Rate: 1, Burst: 1}) },
			frames: [][]byte{search6("fd00:77::11"), search6("fd00:77::11"), search6("fd00:77::12")},
			want:   []pipeline.Reason{pass, pipeline.ReasonRateLimited, pass}},
		{name: "an IPv6 capture of our own injection is a loop", rule: firstCapture,
			cfg: func(c *Config) {
				c.Dedup = dedup.New(time.Minute, 1024)
				c.Dedup.Received(time.Now().UnixNano(), key(t, search6("fd00:77::12"), c.Seed))
			},
			frames: [][]byte{search6("fd00:77::11"), search6("fd00:77::12")},
			want:   []pipeline.Reason{pass, pipeline.ReasonDuplicate}},
		{name: "relayed ports", rule: relayedPort,
			frames: [][]byte{udp("10.77.0.11:1", "10.77.0.255:5076", "pva", [6]byte{}), udp("10.77.0.11:1", "255.255.255.255:5064", "ca", [6]byte{}),
				udp("10.77.0.11:1", "10.77.0.255:5077", "x", [6]byte{}), udp("10.77.0.11:1", "10.77.0.255:5065", "CA beacon port", [6]byte{}),
				udp("10.77.0.11:1", "10.77.0.255:7124", "the mesh port", [6]byte{})},
			want: []pipeline.Reason{pass, pass, pipeline.ReasonWrongPort, pipeline.ReasonWrongPort, pipeline.ReasonWrongPort}},
		{name: "a later fragment carries no port", rule: relayedPort,
			frames: [][]byte{wrongPortFrags[0], wrongPortFrags[1]}, want: []pipeline.Reason{pipeline.ReasonWrongPort, pass}},
		{name: "whole datagrams are no fragments", rule: fragment,
			frames: [][]byte{search("10.77.0.11")}, cfg: func(c *Config) { c.Fragments = false }, want: []pipeline.Reason{pass}},
		{name: "fragments disabled", rule: fragments, cfg: func(c *Config) { c.Fragments = false },
			frames: frags, want: []pipeline.Reason{pipeline.ReasonFragment, pipeline.ReasonFragment, pipeline.ReasonFragment}},
		{name: "fragments followed", rule: fragments,
			frames: frags, want: []pipeline.Reason{pass, pass, pass}},
		{name: "later fragments without their first", rule: fragments,
			frames: frags[1:], want: []pipeline.Reason{pipeline.ReasonFragment, pipeline.ReasonFragment}},
		{name: "the rest of a first fragment refused for its port", rule: fragments,
			frames: wrongPortFrags, want: []pipeline.Reason{pipeline.ReasonWrongPort, pipeline.ReasonFragment, pipeline.ReasonFragment}},
		{name: "later fragments past the lifetime", rule: fragments,
			frames: frags, at: []time.Duration{0, FragmentLifetime - 1, FragmentLifetime},
			want: []pipeline.Reason{pass, pass, pipeline.ReasonFragment}},
		{name: "no rate limit", rule: withinRate,
			frames: [][]byte{search("10.77.0.11"), search("10.77.0.11"), search("10.77.0.11")}, want: []pipeline.Reason{pass, pass, pass}},
		{name: "a bucket per source, refilled in time", rule: withinRate,
			cfg:    func(c *Config) { c.Limiter, _ = ratelimit.New(ratelimit.Config{Rate: 1, Burst: 2}) },
			frames: [][]byte{search("10.77.0.11"), search("10.77.0.11"), search("10.77.0.11"), search("10.77.0.12"), search("10.77.0.11")},
			at:     []time.Duration{0, 0, 0, 0, time.Second},
			want:   []pipeline.Reason{pass, pass, pipeline.ReasonRateLimited, pass, pass}},
		{name: "no dedup", rule: firstCapture,
			frames: [][]byte{search("10.77.0.11"), search("10.77.0.11")}, want: []pipeline.Reason{pass, pass}},
		{name: "a capture of our own injection is a loop; a client's repeat is not", rule: firstCapture,
			cfg: func(c *Config) {
				c.Dedup = dedup.New(time.Minute, 1024)
				c.Dedup.Received(time.Now().UnixNano(), key(t, search("10.77.0.12"), c.Seed)) // injected
			},
			frames: [][]byte{search("10.77.0.11"), search("10.77.0.12"), search("10.77.0.11")},
			want:   []pipeline.Reason{pass, pipeline.ReasonDuplicate, pass}},
		{name: "a delivery repeated within the window, and after", rule: firstDelivery, from: "10.77.0.1",
			cfg:    func(c *Config) { c.Dedup = dedup.New(time.Minute, 1024) },
			frames: [][]byte{search("10.77.0.11"), search("10.77.0.11"), search("10.77.0.11")},
			at:     []time.Duration{0, time.Second, 2 * time.Minute},
			want:   []pipeline.Reason{pass, pipeline.ReasonDuplicate, pass}},
		{name: "no segment table", rule: neighbourInjected,
			frames: [][]byte{fromMAC}, want: []pipeline.Reason{pass}},
		{name: "captured from a neighbour's MAC", rule: neighbourInjected, cfg: withNeighbour,
			frames: [][]byte{fromMAC, search("10.77.0.11")}, want: []pipeline.Reason{pipeline.ReasonNeighbourInjection, pass}},
		{name: "from a peer elsewhere", rule: fromNeighbour, cfg: withNeighbour, from: "10.77.0.1",
			frames: [][]byte{search("10.77.0.11")}, want: []pipeline.Reason{pass}},
		{name: "from a neighbour", rule: fromNeighbour, cfg: withNeighbour, from: neighbour.String(),
			frames: [][]byte{search("10.77.0.11")}, want: []pipeline.Reason{pipeline.ReasonSameSegment}},
		{name: "alone on the segment, every injection is ours", rule: ourInjection,
			cfg:    func(c *Config) { c.Segment = segment.NewTable(1, time.Minute) },
			frames: manySearches(16), want: repeat(pass, 16)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Ports: []uint16{5076, 5064}, Fragments: true, Seed: maphash.MakeSeed()}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			m := pipeline.NewMetrics()
			r := New(cfg, m.Stage("test"), m)
			base := time.Now().UnixNano()
			var got []pipeline.Reason
			for i, fr := range tc.frames {
				p := packet(t, fr)
				if tc.from != "" {
					p.Addr = netip.AddrPortFrom(netip.MustParseAddr(tc.from), 7124)
				}
				var at int64
				if tc.at != nil {
					at = int64(tc.at[i])
				}
				r.Begin(base+at, at)
				r.why = pass
				if tc.rule(r, p) {
					got = append(got, pass)
				} else {
					got = append(got, r.why)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("verdicts %v, want %v", names(got), names(tc.want))
			}
		})
	}

	// With a neighbour, each frame is injected by exactly one of the two:
	// some here, some there.
	cfg := Config{Seed: maphash.MakeSeed()}
	withNeighbour(&cfg)
	cfg.Segment.SetSelf(netip.MustParseAddr("10.77.0.2"))
	m := pipeline.NewMetrics()
	r := New(cfg, m.Stage("test"), m)
	for _, fr := range manySearches(64) {
		if r.OurInjection(packet(t, fr)) {
			owners++
		} else if r.why == pipeline.ReasonOtherInjector {
			others++
		}
	}
	if owners == 0 || others == 0 || owners+others != 64 {
		t.Errorf("of 64 frames %d ours and %d the neighbour's, want a share each", owners, others)
	}
}

func withNeighbour(c *Config) {
	c.Segment = segment.NewTable(1, time.Minute)
	c.Segment.Heard(time.Now().UnixNano(), neighbour, 2, neighbourMAC)
}

func manySearches(n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, udp("10.77.0.11:38726", "10.77.0.255:5076", fmt.Sprint("search ", i), [6]byte{}))
	}
	return out
}

func repeat(r pipeline.Reason, n int) []pipeline.Reason {
	out := make([]pipeline.Reason, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func names(rs []pipeline.Reason) []string {
	var out []string
	for _, r := range rs {
		if r == pass {
			out = append(out, "pass")
		} else {
			out = append(out, r.String())
		}
	}
	return out
}

// key is fr's dedup key.
func key(t testing.TB, fr []byte, seed maphash.Seed) uint64 {
	var f frame.Frame
	if err := f.DecodeIP(fr); err != nil {
		t.Fatal(err)
	}
	return f.Key(fr, seed)
}

// packet returns fr in a packet buffer, decoded.
func packet(t testing.TB, fr []byte) *pipeline.Packet {
	t.Helper()
	p := &pipeline.Packet{Buf: make([]byte, pipeline.Headroom+2048), Off: pipeline.Headroom}
	p.Len = copy(p.Buf[p.Off:], fr)
	if err := p.Frame.DecodeIP(p.Bytes()); err != nil {
		t.Fatalf("test frame does not decode: %v", err)
	}
	return p
}

// TestHandle: a batch is counted in and passed on with what keep kept; each
// refusal is counted under its reason, a Used one not at all; the observer
// sees the batch once and, only while it traces, every drop; the limiter's
// clock is read once per batch.
func TestHandle(t *testing.T) {
	for _, tracing := range []bool{true, false} {
		readings := 0
		lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Clock: func() int64 { readings++; return 0 }})
		if err != nil {
			t.Fatal(err)
		}
		o := &stagetest.Recorder{Trace: tracing}
		m := pipeline.NewMetrics()
		pool := pipeline.NewPool(2048)
		out := pipeline.NewLink("out", 1, pipeline.Block, pool)
		c := m.Stage("test")
		r := New(Config{Ports: []uint16{5076}, Limiter: lim, Observer: o}, c, m)
		b := pool.Get()
		for _, fr := range [][]byte{search("10.77.0.11"), search("127.0.0.1"), search("10.77.0.12"), search("0.0.0.0")} {
			p := b.Slot()
			p.Len = copy(p.Buf[p.Off:], fr)
			if err := p.Frame.Decode(p.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
		i := 0
		r.Handle(b, out, func(p *pipeline.Packet) bool {
			i++
			switch i {
			case 3:
				return r.Refuse(Used) || r.Drop(p) // consumed, not dropped
			default:
				return r.GoodSource(p) && r.WithinRate(p, p.Frame.Src) || r.Drop(p)
			}
		})
		out.Close()
		var passed int
		for b := range out.C() {
			passed += len(b.Pkts)
			pool.Put(b)
		}
		want := &stagetest.Recorder{Trace: tracing, Batches: 1, Passed: []int{1}}
		if tracing {
			want.Drops = []string{"bad_source", "bad_source"}
		}
		if passed != 1 || !reflect.DeepEqual(o, want) {
			t.Errorf("tracing %v: %d passed, observer saw %+v; want 1 and %+v", tracing, passed, o, want)
		}
		stagetest.WantDrops(t, m, map[pipeline.Reason]uint64{pipeline.ReasonBadSource: 2})
		if st := c.Stats(); st.In != 4 || readings != 1 {
			t.Errorf("tracing %v: %d counted in, limiter clock read %d times; want 4 and 1", tracing, st.In, readings)
		}
	}
}

// TestRulesAllocateNothing runs every rule, passing and refusing, with
// every feature on.
func TestRulesAllocateNothing(t *testing.T) {
	lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Ports: []uint16{5076}, Fragments: true, Limiter: lim, Dedup: dedup.New(time.Minute, 1<<16),
		Observer: &stagetest.Recorder{}, Seed: maphash.MakeSeed(), Groups: []netip.Addr{netip.MustParseAddr("ff02::1")}}
	withNeighbour(&cfg)
	m := pipeline.NewMetrics()
	r := New(cfg, m.Stage("test"), m)
	r.Begin(time.Now().UnixNano(), 0)
	frags := frametest.Fragments(udp("10.77.0.11:38726", "10.77.0.255:5076", strings.Repeat("f", 3000), [6]byte{}), 1480)
	frags6 := frametest.Fragments6(udp6("[fd00:77::11]:38726", "[ff02::1]:5076", strings.Repeat("f", 3000), [6]byte{}), 1448, 7)
	all6 := append([][]byte{search6("fd00:77::11"), search6("fe80::1"), udp6("[fd00:77::11]:1", "[ff02::2]:5076", "x", [6]byte{})}, frags6...)
	for i, fr := range append(append([][]byte{search("10.77.0.11"), search("127.0.0.1")}, frags...), all6...) {
		p := packet(t, fr)
		p.Addr = netip.AddrPortFrom(neighbour, 7124)
		all := func() {
			_ = r.NotNeighbourInjection(p) && r.GroupEthernet(p) && r.RelayedGroup(p) && r.GoodSource(p) && r.WithinRate(p, p.Frame.Src) &&
				fragments(r, p) && r.FirstCapture(p) || r.Drop(p)
			_ = fromNeighbour(r, p) || r.Drop(p)
			_ = r.FirstDelivery(p) && r.OurInjection(p) || r.Drop(p)
		}
		if n := testing.AllocsPerRun(100, all); n != 0 {
			t.Errorf("frame %d: %v allocations", i, n)
		}
	}
}
