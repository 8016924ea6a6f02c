package frame_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// randomUDP returns a random frame description: addresses, ports, options
// and payload.
func randomUDP(r *rand.Rand) frametest.UDP {
	addr := func() netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}), uint16(r.Uint32()))
	}
	u := frametest.UDP{Src: addr(), Dst: addr(), TTL: uint8(r.Uint32()), ID: uint16(r.Uint32()),
		Options: make([]byte, 4*r.IntN(11)), Payload: make([]byte, r.IntN(3000)), Pad: r.IntN(20)}
	for i := range u.Options {
		u.Options[i] = 1 // NOP
	}
	for i := range u.Payload {
		u.Payload[i] = byte(r.Uint32())
	}
	return u
}

func randomAddr(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
}

// TestSetDstMatchesRecompute is a property test: the incremental update of
// SetDst gives the same bytes as building the frame with the new destination
// from scratch, for whole datagrams and for every fragment of one.
func TestSetDstMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		u := randomUDP(r)
		dst := randomAddr(r)
		if i%10 == 0 {
			dst = u.Dst.Addr() // no change at all
		}
		old := u.Frame()
		u.Dst = netip.AddrPortFrom(dst, u.Dst.Port())
		want := u.Frame()

		oldFrags, wantFrags := [][]byte{old}, [][]byte{want}
		if len(u.Payload) > 600 {
			mtu := 8 * (10 + r.IntN(150))
			oldFrags, wantFrags = frametest.Fragments(old, mtu), frametest.Fragments(want, mtu)
		}
		for j, b := range oldFrags {
			var f frame.Frame
			if err := f.Decode(b); err != nil {
				t.Fatal(err)
			}
			f.SetDst(b, dst)
			if f.Dst != dst {
				t.Fatalf("f.Dst = %v, want %v", f.Dst, dst)
			}
			if !bytes.Equal(b, wantFrags[j]) {
				t.Fatalf("frame %d fragment %d of %d: incremental update differs from recomputation\n got % x\nwant % x",
					i, j, len(oldFrags), b[:min(len(b), 64)], wantFrags[j][:min(len(b), 64)])
			}
		}
	}
}

func TestSetDstKeepsZeroUDPChecksum(t *testing.T) {
	b := cat(eth, ip20(44, 0, 17), udp8(24), payload16)
	b[40], b[41] = 0, 0 // UDP checksum: none
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		t.Fatal(err)
	}
	f.SetDst(b, limited)
	if c := binary.BigEndian.Uint16(b[40:]); c != 0 {
		t.Errorf("UDP checksum = %#04x, want 0 (none) kept", c)
	}
	if !bytes.Equal(b[30:34], []byte{255, 255, 255, 255}) {
		t.Errorf("destination = % x", b[30:34])
	}
}

func TestSetBroadcastEthernet(t *testing.T) {
	b := cat([]byte{
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // destination: a unicast MAC
		0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // source
		0x08, 0x00, // EtherType IPv4
	}, []byte{0x45})
	frame.SetBroadcastEthernet(b, [6]byte{0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09})
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
		0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09, // source: ours
		0x08, 0x00, // EtherType untouched
		0x45, // and nothing after it
	}
	if !bytes.Equal(b, want) {
		t.Errorf("got % x\nwant % x", b, want)
	}
}

// TestSetDstUDPChecksumZero covers the rare rewrite whose UDP checksum
// computes to 0, which must be sent as 0xffff (RFC 768) like a full
// recomputation does.
func TestSetDstUDPChecksumZero(t *testing.T) {
	u := frametest.UDP{Src: netip.MustParseAddrPort("10.77.0.11:38726"), Dst: netip.MustParseAddrPort("10.77.0.1:5076"),
		Payload: []byte{0, 0, 'a', 'b', 'c'}}
	dst := netip.MustParseAddrPort("10.77.0.255:5076")
	// Pick the first two payload bytes so that the datagram sent to dst sums
	// to 0xffff with its checksum field zero: its checksum computes to 0.
	w := u
	w.Dst = dst
	b := w.Frame()
	b[40], b[41] = 0, 0
	rest := naiveSum(0, b[26:34], []byte{0, 17, 0, 13}, b[34:47])
	binary.BigEndian.PutUint16(u.Payload, 0xffff-rest)
	w.Payload = u.Payload
	want := w.Frame()
	if c := binary.BigEndian.Uint16(want[40:]); c != 0xffff {
		t.Fatalf("setup: UDP checksum %#04x, want 0xffff", c)
	}

	b = u.Frame()
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		t.Fatal(err)
	}
	f.SetDst(b, dst.Addr())
	if !bytes.Equal(b, want) {
		t.Errorf("got  % x\nwant % x", b, want)
	}
}
