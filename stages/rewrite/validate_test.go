//go:build linux

package rewrite

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
)

// Offsets in a frame with a 20-byte IPv4 header.
const (
	offEtherType = 12
	offVerIHL    = 14
	offTotalLen  = 16
	offFrag      = 20
	offProto     = 23
	offSrc       = 26
	offDst       = 30
	offUDPLen    = 38
)

// edit returns a copy of fr changed by fn.
func edit(fr []byte, fn func(b []byte)) []byte {
	b := bytes.Clone(fr)
	fn(b)
	return b
}

func put16(off int, v uint16) func(b []byte) {
	return func(b []byte) { binary.BigEndian.PutUint16(b[off:], v) }
}

// from returns a valid search frame with IP source src.
func from(src string) []byte {
	return edit(search("10.77.0.255:5076", "search"), func(b []byte) {
		a := netip.MustParseAddr(src).As4()
		copy(b[offSrc:], a[:])
	})
}

// TestRejects sends, for every check of the inbound path, mesh datagrams
// that fail it and only it, and checks that nothing was passed on and that
// exactly that check's counter moved, once per datagram.
func TestRejects(t *testing.T) {
	good := search("10.77.0.255:5076", "search") // 14+20+8+6 = 48 bytes
	big := search("10.77.0.255:5076", strings.Repeat("x", 1100))
	firstFrag := frametest.Fragments(search("10.77.0.255:5076", strings.Repeat("f", 3000)), 1480)
	wrongPortFrag := frametest.Fragments(search("10.77.0.255:5077", strings.Repeat("f", 3000)), 1480)

	for _, tc := range []struct {
		name   string
		reason pipeline.Reason
		from   netip.AddrPort // peerA when zero
		noFrag bool           // fragments disabled
		ds     [][]byte
	}{
		{name: "not a peer", reason: pipeline.ReasonUnknownPeer, from: stranger, ds: [][]byte{legacy(good)}},
		{name: "mesh datagram too short or unknown magic", reason: pipeline.ReasonMalformedMesh, ds: [][]byte{
			{},                            // empty
			{'S'},                         // shorter than the magic
			append([]byte("XX"), good...), // unknown magic
			append([]byte("ss"), good...), // magic is case-sensitive
		}},
		{name: "authenticated datagram at a relay without a key", reason: pipeline.ReasonBadAuth, ds: [][]byte{
			sealed(mesh.NewSealer(key1, 7), good),
		}},
		{name: "truncated frame", reason: pipeline.ReasonTruncatedFrame, ds: [][]byte{
			legacy(nil),        // "SS" and nothing
			legacy(good[:13]),  // Ethernet header cut
			legacy(good[:30]),  // IPv4 header cut
			legacy(big[:1024]), // cut after 1024 bytes, as the Python relay does
			legacy(edit(good, put16(offTotalLen, 20+4))[:14+24]), // UDP header cut
		}},
		{name: "not IPv4", reason: pipeline.ReasonNotIPv4, ds: [][]byte{
			legacy(edit(good, put16(offEtherType, 0x0806))),            // ARP
			legacy(edit(good, put16(offEtherType, 0x86dd))),            // IPv6
			legacy(edit(good, put16(offEtherType, 0x8100))),            // VLAN tag
			legacy(edit(good, func(b []byte) { b[offVerIHL] = 0x65 })), // IP version 6
		}},
		{name: "bad IPv4 header", reason: pipeline.ReasonBadIPHeader, ds: [][]byte{
			legacy(edit(good, func(b []byte) { b[offVerIHL] = 0x44 })), // IHL 4: 16 bytes
			legacy(edit(good, put16(offTotalLen, 19))),                 // total length below the header
			legacy(edit(good, put16(offFrag, 0x1fff))),                 // last fragment ending past 65535
		}},
		{name: "not UDP", reason: pipeline.ReasonNotUDP, ds: [][]byte{
			legacy(edit(good, func(b []byte) { b[offProto] = 6 })), // TCP
			legacy(edit(good, func(b []byte) { b[offProto] = 1 })), // ICMP
		}},
		{name: "bad UDP length", reason: pipeline.ReasonBadUDPLength, ds: [][]byte{
			legacy(edit(good, put16(offUDPLen, 7))),      // below the header
			legacy(edit(good, put16(offUDPLen, 8+6-1))),  // short of the IP payload
			legacy(edit(good, put16(offUDPLen, 8+6+1))),  // beyond the IP payload
			legacy(edit(good, put16(offUDPLen, 0xffff))), // far beyond
		}},
		{name: "wrong port", reason: pipeline.ReasonWrongPort, ds: [][]byte{
			legacy(search("10.77.0.255:5077", "search")),
			legacy(search("10.77.0.255:7124", "search")), // the mesh port
			legacy(wrongPortFrag[0]),                     // a first fragment
		}},
		{name: "fragments disabled", reason: pipeline.ReasonFragment, noFrag: true, ds: [][]byte{
			legacy(firstFrag[0]), legacy(firstFrag[1]),
		}},
		{name: "later fragment without its first", reason: pipeline.ReasonFragment, ds: [][]byte{
			legacy(firstFrag[1]), legacy(firstFrag[2]),
		}},
		{name: "not a broadcast", reason: pipeline.ReasonNotBroadcast, ds: [][]byte{
			legacy(search("10.77.0.21:5076", "search")),  // unicast to the server
			legacy(search("10.77.0.2:5076", "search")),   // unicast to us
			legacy(search("10.77.0.252:5076", "search")), // low bits not all set
			legacy(search("224.0.0.1:5076", "search")),   // multicast
			legacy(search("239.255.255.255:5076", "search")),
			legacy(search("127.0.0.255:5076", "search")), // loopback
			legacy(search("0.0.0.255:5076", "search")),   // this network
			legacy(search("240.0.0.255:5076", "search")), // class E
			legacy(search("0.0.0.0:5076", "search")),
		}},
		{name: "bad source", reason: pipeline.ReasonBadSource, ds: [][]byte{
			legacy(from("255.255.255.255")),
			legacy(from("10.77.0.255")), // our subnet's broadcast
			legacy(from("127.0.0.1")),
			legacy(from("224.0.0.5")),
			legacy(from("0.0.0.0")),
			legacy(from("0.1.2.3")),
			legacy(from("240.1.2.3")),
		}},
		{name: "larger than the MTU", reason: pipeline.ReasonTooBig, ds: [][]byte{
			legacy(search("10.77.0.255:5076", strings.Repeat("x", 1500-28+1))),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.cfg.Fragments = !tc.noFrag
			src := tc.from
			if !src.IsValid() {
				src = peerA
			}
			if out := r.one(src, tc.ds...); len(out) != 0 {
				t.Errorf("%d frames passed on", len(out))
			}
			r.wantDrops(map[pipeline.Reason]uint64{tc.reason: uint64(len(tc.ds))})
		})
	}
}

// TestRejectsAuthenticated is TestRejects for a relay with a key.
func TestRejectsAuthenticated(t *testing.T) {
	good := search("10.77.0.255:5076", "search")
	s1 := mesh.NewSealer(key1, 7)
	flip := func(d []byte, i int) []byte { return edit(d, func(b []byte) { b[i] ^= 1 }) }
	for _, tc := range []struct {
		name   string
		reason pipeline.Reason
		ds     [][]byte
	}{
		{"another key", pipeline.ReasonBadAuth, [][]byte{sealed(mesh.NewSealer(key2, 7), good)}},
		{"forged or corrupted", pipeline.ReasonBadAuth, [][]byte{
			flip(sealed(s1, good), 20),                    // tag
			flip(sealed(s1, good), mesh.AuthHeaderLen+20), // frame
			flip(sealed(s1, good), 9),                     // sequence number
			flip(sealed(s1, good), 5),                     // sender id
		}},
		{"legacy datagram", pipeline.ReasonBadAuth, [][]byte{legacy(good)}},
		{"malformed header", pipeline.ReasonMalformedMesh, [][]byte{
			[]byte("SN\x01"), // shorter than the header
			append([]byte("XX"), sealed(s1, good)[2:]...),
			edit(sealed(s1, good), func(b []byte) { b[2] = 2 }), // unknown version
		}},
		{"valid seal, invalid frame", pipeline.ReasonNotUDP, [][]byte{
			sealed(s1, edit(good, func(b []byte) { b[offProto] = 6 })),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.opener = mesh.NewOpener(key1)
			if out := r.one(peerA, tc.ds...); len(out) != 0 {
				t.Errorf("%d frames passed on", len(out))
			}
			r.wantDrops(map[pipeline.Reason]uint64{tc.reason: uint64(len(tc.ds))})
		})
	}
}

func TestReplayInjectedOnce(t *testing.T) {
	r := newRig(t)
	r.opener = mesh.NewOpener(key1)
	d := sealed(mesh.NewSealer(key1, 7), search("10.77.0.255:5076", "search"))
	// Within one batch and across batches.
	out := r.run([]dgram{{peerA, d}, {peerA, d}}, []dgram{{peerA, d}})
	if len(out) != 1 {
		t.Errorf("%d frames passed on, want 1", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonReplay: 2})
}

// TestAccepts checks frames that must be injected, and what the relay makes
// of them.
func TestAccepts(t *testing.T) {
	directed := search("10.77.0.255:5076", "hello-snowsignal")
	withOptions := frametest.UDP{SrcMAC: clientMAC, Src: client, Dst: netip.MustParseAddrPort("10.77.0.255:5076"),
		Options: []byte{0x01, 0x01, 0x01, 0x00}, Payload: []byte("options")}.Frame() // NOP NOP NOP EOL
	padded := frametest.UDP{SrcMAC: clientMAC, Src: client, Dst: netip.MustParseAddrPort("255.255.255.255:5076"),
		Payload: []byte("x"), Pad: 60 - 43}.Frame()
	partial := edit(directed, func(b []byte) {
		// What a capture of the local stack carries: the pseudo-header sum
		// only (CHECKSUM_PARTIAL), not the final checksum.
		binary.BigEndian.PutUint16(b[40:], 0x1234)
	})
	noChecksum := edit(directed, put16(40, 0))
	for _, tc := range []struct {
		name    string
		opener  bool
		d       []byte
		in      []byte
		wantDst string
	}{
		{"legacy, directed broadcast", false, legacy(directed), directed, "10.77.0.255"},
		{"authenticated", true, sealed(mesh.NewSealer(key1, 9), directed), directed, "10.77.0.255"},
		{"authenticated with the second key", true, sealed(mesh.NewSealer(key2, 9), directed), directed, "10.77.0.255"},
		{"IP options", false, legacy(withOptions), withOptions, "10.77.0.255"},
		{"padding cut", false, legacy(padded), padded, "255.255.255.255"},
		{"partial UDP checksum completed", false, legacy(partial), directed, "10.77.0.255"},
		{"UDP checksum filled in", false, legacy(noChecksum), directed, "10.77.0.255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			if tc.opener {
				r.opener = mesh.NewOpener(key1, key2)
			}
			out := r.one(peerA, tc.d)
			r.wantDrops(nil)
			if len(out) != 1 {
				t.Fatalf("%d frames passed on, want 1", len(out))
			}
			checkInjectable(t, out[0], tc.in, netip.MustParseAddr(tc.wantDst))
		})
	}
}

func TestAcceptAnyPeer(t *testing.T) {
	r := newRig(t)
	r.cfg.AcceptAnyPeer = true
	if out := r.one(stranger, legacy(search("10.77.0.255:5076", "x"))); len(out) != 1 {
		t.Errorf("%d frames passed on from a stranger with AcceptAnyPeer, want 1", len(out))
	}
	r.wantDrops(nil)
}

func TestUnknownSourcesCounted(t *testing.T) {
	r := newRig(t)
	var kicked []netip.Addr
	r.cfg.OnUnknownPeer = func(a netip.Addr) { kicked = append(kicked, a) }
	d := legacy(search("10.77.0.255:5076", "x"))
	other := netip.MustParseAddrPort("10.77.0.98:40000")
	in := pipeline.NewLink("in", 2, pipeline.Block, r.pool)
	out := pipeline.NewLink("out", 2, pipeline.Block, r.pool)
	st := r.stage(in, out)
	b := r.pool.Get()
	for _, from := range []netip.AddrPort{stranger, stranger, other, peerA} {
		p := b.Slot()
		p.Addr, p.Len = from, copy(p.Buf[p.Off:], d)
	}
	in.Send(b)
	in.Close()
	st.Run(t.Context())
	got := st.UnknownSources()
	if len(got) != 2 || got[stranger.Addr()] != 2 || got[other.Addr()] != 1 {
		t.Errorf("UnknownSources = %v, want %v: 2, %v: 1", got, stranger.Addr(), other.Addr())
	}
	if len(kicked) != 3 {
		t.Errorf("OnUnknownPeer called %d times, want 3", len(kicked))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonUnknownPeer: 3})
}

// TestDestinationModes checks --rebroadcast-destination: the IP destination
// each mode gives, with both checksums valid after the rewrite.
func TestDestinationModes(t *testing.T) {
	for _, tc := range []struct {
		mode     DestMode
		dst, out string
	}{
		{Auto, "255.255.255.255", "255.255.255.255"},
		{Auto, "10.77.0.255", "10.77.0.255"},
		{Auto, "10.1.0.255", "10.77.0.255"}, // another subnet's: ours instead
		{Keep, "10.1.0.255", "10.1.0.255"},
		{Keep, "255.255.255.255", "255.255.255.255"},
		{Limited, "10.77.0.255", "255.255.255.255"},
		{Limited, "10.1.0.255", "255.255.255.255"},
		{Subnet, "255.255.255.255", "10.77.0.255"},
		{Subnet, "10.1.0.255", "10.77.0.255"},
	} {
		t.Run(tc.mode.String()+"/"+tc.dst, func(t *testing.T) {
			r := newRig(t)
			r.cfg.Dest = tc.mode
			in := search(tc.dst+":5076", "search")
			out := r.one(peerA, legacy(in))
			if len(out) != 1 {
				t.Fatalf("%d frames passed on, want 1", len(out))
			}
			checkInjectable(t, out[0], in, netip.MustParseAddr(tc.out))
		})
	}
}

// TestDestinationSecondaryAddresses: with a secondary IPv4 address on the
// interface, a broadcast from a client of the secondary subnet goes to that
// subnet's broadcast address, either subnet's broadcast address is kept in
// auto, and neither is accepted as a source.
func TestDestinationSecondaryAddresses(t *testing.T) {
	second := netip.MustParseAddrPort("192.168.5.20:40000")
	for _, tc := range []struct {
		mode          DestMode
		src, dst, out string
	}{
		{Auto, client.String(), "10.1.0.255", "10.77.0.255"},      // primary subnet's client
		{Auto, second.String(), "10.1.0.255", "192.168.5.255"},    // secondary subnet's client
		{Auto, client.String(), "192.168.5.255", "192.168.5.255"}, // ours too: kept
		{Subnet, second.String(), "255.255.255.255", "192.168.5.255"},
		{Subnet, "10.9.9.9:40000", "255.255.255.255", "10.77.0.255"}, // in neither: the primary's
	} {
		t.Run(tc.mode.String()+"/"+tc.src+"/"+tc.dst, func(t *testing.T) {
			r := newRig(t)
			info := ourInfo()
			info.Addrs = []iface.Address{
				{Prefix: netip.MustParsePrefix("10.77.0.2/24"), Broadcast: ourBcast},
				{Prefix: netip.MustParsePrefix("192.168.5.1/24"), Broadcast: netip.MustParseAddr("192.168.5.255")},
			}
			r.target.Store(info)
			r.cfg.Dest = tc.mode
			in := frametest.UDP{
				DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: clientMAC,
				Src: netip.MustParseAddrPort(tc.src), Dst: netip.MustParseAddrPort(tc.dst + ":5076"), ID: 7, Payload: []byte("search"),
			}.Frame()
			out := r.one(peerA, legacy(in))
			if len(out) != 1 {
				t.Fatalf("%d frames passed on, want 1", len(out))
			}
			checkInjectable(t, out[0], in, netip.MustParseAddr(tc.out))
		})
	}
	r := newRig(t)
	info := ourInfo()
	info.Addrs = []iface.Address{{Prefix: netip.MustParsePrefix("10.77.0.2/24"), Broadcast: ourBcast},
		{Prefix: netip.MustParsePrefix("192.168.5.1/24"), Broadcast: netip.MustParseAddr("192.168.5.255")}}
	r.target.Store(info)
	in := frametest.UDP{
		DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: clientMAC,
		Src: netip.MustParseAddrPort("192.168.5.255:40000"), Dst: netip.MustParseAddrPort("255.255.255.255:5076"), Payload: []byte("x"),
	}.Frame()
	if out := r.one(peerA, legacy(in)); len(out) != 0 {
		t.Errorf("a frame from the secondary subnet's broadcast address was passed on")
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonBadSource: 1})
}

// TestFragments relays a datagram too large for one frame, in fragments:
// all pass, in order, each with a valid header checksum, and the UDP
// checksum of the reassembled datagram verifies for the rewritten
// destination.
func TestFragments(t *testing.T) {
	r := newRig(t)
	whole := search("10.1.0.255:5076", strings.Repeat("0123456789", 300))
	frags := frametest.Fragments(whole, 1480)
	if len(frags) != 3 {
		t.Fatalf("%d fragments, want 3", len(frags))
	}
	var ds [][]byte
	for _, f := range frags {
		ds = append(ds, legacy(f))
	}
	out := r.one(peerA, ds...)
	r.wantDrops(nil)
	if len(out) != 3 {
		t.Fatalf("%d frames passed on, want 3", len(out))
	}
	var udp []byte
	for i, fr := range out {
		checkIPChecksum(t, fr)
		if got := netip.AddrFrom4([4]byte(fr[offDst:])); got != ourBcast {
			t.Errorf("fragment %d to %v, want %v", i, got, ourBcast)
		}
		var f frame.Frame
		if err := f.Decode(fr); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if int(f.FragOff)*8 != len(udp) {
			t.Fatalf("fragment %d at offset %d, want %d", i, int(f.FragOff)*8, len(udp))
		}
		udp = append(udp, fr[14+f.IHL:f.Len()]...)
	}
	checkUDPChecksum(t, client.Addr(), ourBcast, udp)
	if !bytes.Equal(udp[8:], whole[42:]) {
		t.Error("reassembled payload differs")
	}
}

// TestFragmentsOfRefusedFirst: once a first fragment is refused, the rest
// of its datagram is refused too.
func TestFragmentsOfRefusedFirst(t *testing.T) {
	r := newRig(t)
	frags := frametest.Fragments(search("10.77.0.255:5077", strings.Repeat("f", 3000)), 1480)
	if out := r.one(peerA, legacy(frags[0]), legacy(frags[1]), legacy(frags[2])); len(out) != 0 {
		t.Errorf("%d frames passed on", len(out))
	}
	r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonWrongPort: 1, pipeline.ReasonFragment: 2})
}

func TestFrameReasonCoversEveryDecodeError(t *testing.T) {
	for e := frame.ErrTruncated; e.String() != "unknown"; e++ {
		if r := pipeline.FrameReason(e); r == pipeline.ReasonMalformedFrame {
			t.Errorf("frame error %v has no reason of its own", e)
		}
	}
	if r := pipeline.FrameReason(nil); r != pipeline.ReasonMalformedFrame {
		t.Errorf("pipeline.FrameReason(nil) = %v", r)
	}
}

// TestCheckOrder sends frames that fail several checks: the first failing
// check in the documented order (see validate) names the reason.
func TestCheckOrder(t *testing.T) {
	bad := func(dst, src string, fn func(b []byte)) []byte {
		b := search(dst, "search")
		a := netip.MustParseAddr(src).As4()
		copy(b[offSrc:], a[:])
		if fn != nil {
			fn(b)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		fr   []byte
		want pipeline.Reason
	}{
		{"not UDP before wrong port", bad("10.77.0.21:5077", "127.0.0.1", func(b []byte) { b[offProto] = 6 }), pipeline.ReasonNotUDP},
		{"bad UDP length before wrong port", bad("10.77.0.21:5077", "127.0.0.1", put16(offUDPLen, 9)), pipeline.ReasonBadUDPLength},
		{"wrong port before not broadcast", bad("10.77.0.21:5077", "127.0.0.1", nil), pipeline.ReasonWrongPort},
		{"not broadcast before bad source", bad("10.77.0.21:5076", "127.0.0.1", nil), pipeline.ReasonNotBroadcast},
		{"bad source before too big", bad("10.77.0.255:5076", "127.0.0.1", nil), pipeline.ReasonBadSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.target.Store(&iface.Info{MTU: 40, MAC: ourMAC, Addr: ourAddr, Broadcast: ourBcast}) // everything is too big
			if out := r.one(peerA, legacy(tc.fr)); len(out) != 0 {
				t.Errorf("%d frames passed on", len(out))
			}
			r.wantDrops(map[pipeline.Reason]uint64{tc.want: 1})
		})
	}
}
