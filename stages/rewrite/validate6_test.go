//go:build linux

package rewrite

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// The IPv6 client of the lab on segment a, and the group it searches.
var (
	client6  = netip.MustParseAddrPort("[fd00:77::11]:38726")
	allNodes = netip.MustParseAddr("ff02::1")
)

// Offsets in an IPv6 frame without extension headers.
const (
	off6PayloadLen = 18
	off6NextHeader = 20
	off6HopLimit   = 21
	off6Src        = 22
	off6Dst        = 38
	off6UDPLen     = 58
	off6UDPSum     = 60
)

// search6 returns a valid IPv6 search from src to dst (an AddrPort) with
// the payload, hop limit 1, from the client's MAC to the group's.
func search6(src netip.AddrPort, dst, payload string) []byte {
	d := netip.MustParseAddrPort(dst)
	return frametest.UDP6{DstMAC: frame.MulticastMAC(d.Addr()), SrcMAC: clientMAC, Src: src, Dst: d, Payload: []byte(payload)}.Frame()
}

// rig6 is newRig with --ipv6, relaying ff02::1.
func rig6(t *testing.T) *rig {
	r := newRig(t)
	r.cfg.IPv6, r.cfg.Groups = true, []netip.Addr{allNodes}
	return r
}

// TestRejects6 is TestRejects for IPv6 frames: every malformed or refused
// case is dropped and counted under exactly its reason.
func TestRejects6(t *testing.T) {
	good := search6(client6, "[ff02::1]:5076", "search") // 14+40+8+6 = 68 bytes
	frags := frametest.Fragments6(search6(client6, "[ff02::1]:5076", strings.Repeat("f", 3000)), 1448, 0xabcdef01)
	wrongPortFrags := frametest.Fragments6(search6(client6, "[ff02::1]:5077", strings.Repeat("f", 3000)), 1448, 0xabcdef02)
	withRouting := frametest.UDP6{SrcMAC: clientMAC, Src: client6, Dst: netip.MustParseAddrPort("[ff02::1]:5076"),
		Ext: []frametest.ExtHeader{{Type: 43, Body: []byte{0, 0, 0, 0, 0, 0}}}, Payload: []byte("x")}.Frame()
	withRouting[14+40+3] = 1 // segments left: the group is not the destination yet
	withESP := edit(good, func(b []byte) { b[off6NextHeader] = 50 })
	src := func(a string) []byte {
		return search6(netip.AddrPortFrom(netip.MustParseAddr(a), 38726), "[ff02::1]:5076", "search")
	}
	for _, tc := range []struct {
		name   string
		reason pipeline.Reason
		noIPv6 bool // the relay runs without --ipv6
		ds     [][]byte
	}{
		{name: "IPv6 without --ipv6", reason: pipeline.ReasonNotIPv4, noIPv6: true, ds: [][]byte{legacy(good), legacy(frags[0])}},
		{name: "truncated", reason: pipeline.ReasonTruncatedFrame, ds: [][]byte{
			legacy(good[:14+39]),                                 // IPv6 header cut
			legacy(good[:len(good)-1]),                           // the payload length reaches past the frame
			legacy(edit(good, put16(off6PayloadLen, 4))[:14+44]), // UDP header cut
		}},
		{name: "IP version not 6", reason: pipeline.ReasonNotIPv4, ds: [][]byte{
			legacy(edit(good, func(b []byte) { b[14] = 0x45 })),
		}},
		{name: "bad IPv6 header", reason: pipeline.ReasonBadIPHeader, ds: [][]byte{
			legacy(edit(good, put16(off6PayloadLen, 0))), // jumbogram
			legacy(withRouting),                          // routing header with segments left
		}},
		{name: "not UDP", reason: pipeline.ReasonNotUDP, ds: [][]byte{
			legacy(edit(good, func(b []byte) { b[off6NextHeader] = 58 })), // ICMPv6
			legacy(withESP),
		}},
		{name: "bad UDP length", reason: pipeline.ReasonBadUDPLength, ds: [][]byte{
			legacy(edit(good, put16(off6UDPLen, 7))),
			legacy(edit(good, put16(off6UDPLen, 8+6+1))),
		}},
		{name: "wrong port", reason: pipeline.ReasonWrongPort, ds: [][]byte{
			legacy(search6(client6, "[ff02::1]:5077", "search")), legacy(wrongPortFrags[0]),
		}},
		{name: "later fragments without their first", reason: pipeline.ReasonFragment, ds: [][]byte{
			legacy(frags[1]), legacy(frags[2]),
		}},
		{name: "not a relayed group", reason: pipeline.ReasonNotBroadcast, ds: [][]byte{
			legacy(search6(client6, "[ff02::2]:5076", "all routers")),
			legacy(search6(client6, "[ff05::1]:5076", "site scope")),
			legacy(search6(client6, "[fd00:77::21]:5076", "unicast")),
		}},
		{name: "link-local source", reason: pipeline.ReasonLinkLocalSource, ds: [][]byte{
			legacy(src("fe80::11")), legacy(src("fe80::2:3")),
		}},
		{name: "bad source", reason: pipeline.ReasonBadSource, ds: [][]byte{
			legacy(src("::")), legacy(src("::1")), legacy(src("ff02::1")), legacy(src("::ffff:10.77.0.11")),
		}},
		{name: "larger than the MTU", reason: pipeline.ReasonTooBig, ds: [][]byte{
			legacy(search6(client6, "[ff02::1]:5076", strings.Repeat("x", 1500-48+1))),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rig6(t)
			if tc.noIPv6 {
				r.cfg.IPv6, r.cfg.Groups = false, nil
			}
			if out := r.one(peerA, tc.ds...); len(out) != 0 {
				t.Errorf("%d frames passed on", len(out))
			}
			r.wantDrops(map[pipeline.Reason]uint64{tc.reason: uint64(len(tc.ds))})
		})
	}
}

// checkInjectable6 fails unless fr is what the relay must inject for in,
// an IPv6 frame a peer sent: Ethernet to the group's MAC from ours, IPv6
// header (source, group, hop limit) and UDP ports and payload untouched,
// no padding, the UDP checksum valid.
func checkInjectable6(t *testing.T, fr, in []byte) {
	t.Helper()
	group := netip.AddrFrom16([16]byte(in[off6Dst : off6Dst+16]))
	if m := frame.MulticastMAC(group); !bytes.Equal(fr[0:6], m[:]) || !bytes.Equal(fr[6:12], ourMAC[:]) {
		t.Errorf("Ethernet %x > %x, want our MAC > %x", fr[6:12], fr[0:6], m)
	}
	plen := int(binary.BigEndian.Uint16(in[off6PayloadLen:]))
	if len(fr) != 14+40+plen {
		t.Errorf("frame is %d bytes, want %d (no padding)", len(fr), 14+40+plen)
	}
	if !bytes.Equal(fr[12:14+40], in[12:14+40]) {
		t.Errorf("EtherType or IPv6 header changed:\n%x\n%x", fr[12:54], in[12:54])
	}
	if !bytes.Equal(fr[54:60], in[54:60]) || !bytes.Equal(fr[62:], in[62:14+40+plen]) {
		t.Error("UDP ports, length or payload changed")
	}
	if binary.BigEndian.Uint16(fr[off6UDPSum:]) == 0 {
		t.Error("UDP checksum is 0, which IPv6 forbids")
	}
	pseudo := append(append([]byte{}, fr[off6Src:off6Dst+16]...), 0, 0, byte(plen>>8), byte(plen), 0, 0, 0, 17)
	if got := fold(sum16(sum16(0, pseudo), fr[54:])); got != 0xffff {
		t.Errorf("UDP checksum does not verify (sum %#04x)", got)
	}
}

// TestAccepts6: IPv6 searches a peer relays are injected to the group's MAC
// with source, ports, hop limit and payload kept and a valid checksum,
// padding cut, and a partial or missing checksum completed; fragments
// follow their first.
func TestAccepts6(t *testing.T) {
	good := search6(client6, "[ff02::1]:5076", "hello-snowsignal")
	hop := edit(good, func(b []byte) { b[off6HopLimit] = 255 })
	padded := frametest.UDP6{DstMAC: frame.MulticastMAC(allNodes), SrcMAC: clientMAC, Src: client6,
		Dst: netip.MustParseAddrPort("[ff02::1]:5076"), Payload: []byte("x"), Pad: 10}.Frame()
	partial := edit(good, put16(off6UDPSum, 0x1234))
	noSum := edit(good, put16(off6UDPSum, 0))
	global := search6(netip.MustParseAddrPort("[2001:db8::11]:5076"), "[ff02::1]:5076", "from a global address")
	for _, tc := range []struct {
		name string
		d    []byte
		in   []byte
		auth bool
	}{
		{"ULA source", legacy(good), good, false},
		{"global source", legacy(global), global, false},
		{"hop limit kept", legacy(hop), hop, false},
		{"padding cut", legacy(padded), padded, false},
		{"partial checksum completed", legacy(partial), good, false},
		{"zero checksum filled in", legacy(noSum), good, false},
		{"authenticated", sealed(mesh.NewSealer(key1, 9), good), good, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rig6(t)
			if tc.auth {
				r.opener = mesh.NewOpener(key1)
			}
			out := r.one(peerA, tc.d)
			r.wantDrops(nil)
			if len(out) != 1 {
				t.Fatalf("%d frames passed on, want 1", len(out))
			}
			checkInjectable6(t, out[0], tc.in)
		})
	}

	// Fragments: the first is followed, the rest pass untouched but for
	// the Ethernet header.
	frags := frametest.Fragments6(search6(client6, "[ff02::1]:5076", strings.Repeat("f", 3000)), 1448, 0x01020304)
	r := rig6(t)
	var ds [][]byte
	for _, f := range frags {
		ds = append(ds, legacy(f))
	}
	out := r.one(peerA, ds...)
	r.wantDrops(nil)
	if len(out) != len(frags) {
		t.Fatalf("%d of %d fragments passed on", len(out), len(frags))
	}
	for i := range out {
		if !bytes.Equal(out[i][12:], frags[i][12:]) {
			t.Errorf("fragment %d changed beyond the Ethernet addresses", i)
		}
	}
}

// TestDuplicates6: an IPv6 datagram delivered by two relays of its origin
// segment is injected once, and with a neighbour exactly one of the two
// relays injects each.
func TestDuplicates6(t *testing.T) {
	r := rig6(t)
	r.dedup = dedup.New(time.Minute, 1024)
	fr := search6(client6, "[ff02::1]:5076", "once")
	if out := r.run([]dgram{{peerA, legacy(fr)}, {peerC, legacy(fr)}}); len(out) != 1 {
		t.Errorf("%d copies injected, want 1", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonDuplicate: 1})

	r = rig6(t)
	r.seg = segment.NewTable(1, time.Minute)
	r.seg.SetSelf(ourAddr)
	r.seg.HeardCaps(time.Now().UnixNano(), netip.MustParseAddr("10.77.0.4"), 4, [6]byte{2, 0, 10, 77, 0, 4}, mesh.CapIPv6)
	var ds [][]byte
	for i := range 64 {
		ds = append(ds, legacy(search6(client6, "[ff02::1]:5076", strings.Repeat("s", i+1))))
	}
	ours := len(r.one(peerA, ds...))
	if ours == 0 || ours == 64 || uint64(64-ours) != r.m.Drops(pipeline.ReasonOtherInjector) {
		t.Errorf("%d of 64 injected here, %d left to the neighbour; want a share each", ours, r.m.Drops(pipeline.ReasonOtherInjector))
	}
}

// TestProcessAllocs6 is TestProcessAllocs for IPv6 searches, with dedup and
// a neighbour: nothing allocated, every datagram injected here or left to
// the neighbour.
func TestProcessAllocs6(t *testing.T) {
	pp := newPerPacket(t, true, false)
	r := rig6(t)
	r.dedup = dedup.New(dedup.DefaultWindow, dedup.DefaultSize)
	r.seg = segment.NewTable(1, time.Minute)
	r.seg.SetSelf(ourAddr)
	r.seg.HeardCaps(time.Now().UnixNano(), netip.MustParseAddr("10.77.0.4"), 4, [6]byte{2, 0, 10, 77, 0, 4}, mesh.CapIPv6)
	pp.s, pp.m = r.stage(nil, nil), r.m
	for i := range pp.frames {
		payload := make([]byte, 100)
		binary.BigEndian.PutUint64(payload, uint64(i))
		pp.frames[i] = search6(client6, "[ff02::1]:5076", string(payload))
	}
	var kept int
	allocs := testing.AllocsPerRun(100, func() { kept = pp.run() })
	if kept == 0 || kept == pipeline.MaxBatch || uint64(pipeline.MaxBatch-kept)*101 != pp.m.Drops(pipeline.ReasonOtherInjector) {
		t.Fatalf("kept %d of %d; drops %v", kept, pipeline.MaxBatch, pp.m.DropCounts())
	}
	if allocs != 0 {
		t.Errorf("%v allocations per batch of %d packets, want 0", allocs, pipeline.MaxBatch)
	}
}

// FuzzInbound6 feeds arbitrary frames, carried in legacy mesh datagrams from
// a peer, through the inbound steps with --ipv6: none crashes the stage,
// and every IPv6 frame kept is one the segment may receive: to a relayed
// group's MAC from ours, from no link-local or impossible source, to a
// relayed port, with a valid UDP checksum.
func FuzzInbound6(f *testing.F) {
	good := search6(client6, "[ff02::1]:5076", "search")
	f.Add(good)
	f.Add(search6(netip.MustParseAddrPort("[fe80::1]:1"), "[ff02::1]:5076", "link-local"))
	f.Add(frametest.Fragments6(search6(client6, "[ff02::1]:5076", strings.Repeat("f", 3000)), 1448, 9)[0])
	f.Add(edit(good, put16(off6PayloadLen, 0)))
	f.Add(search("10.77.0.255:5076", "ipv4"))
	f.Fuzz(func(t *testing.T, fr []byte) {
		if len(fr) > 1900 {
			return
		}
		r := rig6(t)
		s := r.stage(nil, nil)
		s.set, s.info = s.peers.Load(), s.target.Load()
		s.rules.Begin(time.Now().UnixNano(), 0)
		p := &pipeline.Packet{Buf: make([]byte, 2048), Off: pipeline.Headroom, Addr: peerA}
		p.Len = copy(p.Buf[p.Off:], legacy(fr))
		if !s.keep(p) || !p.Frame.IPv6 {
			return
		}
		b := p.Bytes()
		var g frame.Frame
		if err := g.Decode6(b); err != nil {
			t.Fatalf("kept a frame that does not decode: %v", err)
		}
		if m := frame.MulticastMAC(g.Dst); g.Dst != allNodes || !bytes.Equal(b[0:6], m[:]) || !bytes.Equal(b[6:12], ourMAC[:]) {
			t.Fatalf("kept a frame to %v at %x from %x", g.Dst, b[0:6], b[6:12])
		}
		if frame.CheckSource6(g.Src) != nil {
			t.Fatalf("kept a frame from %v", g.Src)
		}
		if g.IsFragment() {
			return
		}
		if g.DstPort != 5076 {
			t.Fatalf("kept a frame to port %d", g.DstPort)
		}
		udp := b[frame.EthLen+g.IHL : g.Len()]
		if frame.Fold(frame.Checksum(udp, frame.Checksum(b[22:54], frame.ProtoUDP+uint32(len(udp))))) != 0 {
			t.Fatal("kept a frame whose UDP checksum does not verify")
		}
	})
}

// TestInjector6SkipsNeighboursWithoutIPv6: a neighbour that did not announce
// IPv6 drops IPv6 frames, so it is never elected to inject one: every IPv6
// search is injected here, while IPv4 searches are still shared with it.
func TestInjector6SkipsNeighboursWithoutIPv6(t *testing.T) {
	r := rig6(t)
	r.seg = segment.NewTable(1, time.Minute)
	r.seg.SetSelf(ourAddr)
	r.seg.Heard(time.Now().UnixNano(), netip.MustParseAddr("10.77.0.4"), 4, [6]byte{2, 0, 10, 77, 0, 4})
	var v6, v4 [][]byte
	for i := range 64 {
		v6 = append(v6, legacy(search6(client6, "[ff02::1]:5076", strings.Repeat("s", i+1))))
		v4 = append(v4, legacy(search("10.77.0.255:5076", strings.Repeat("s", i+1))))
	}
	if got := len(r.one(peerA, v6...)); got != 64 || r.m.Drops(pipeline.ReasonOtherInjector) != 0 {
		t.Errorf("%d of 64 IPv6 searches injected here (other_injector %d), want all", got, r.m.Drops(pipeline.ReasonOtherInjector))
	}
	if got := len(r.one(peerA, v4...)); got == 0 || got == 64 {
		t.Errorf("%d of 64 IPv4 searches injected here, want a share", got)
	}
}
