//go:build linux

package rewrite

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
	"github.com/snowsignal/snowsignal/stages/shared/stagetest"
)

// The lab of the test vectors, seen from relay-b (10.77.0.2) on segment b.
var (
	ourMAC    = [6]byte{0x02, 0x00, 10, 77, 0, 2}
	ourAddr   = netip.MustParseAddr("10.77.0.2")
	ourBcast  = netip.MustParseAddr("10.77.0.255")
	peerA     = netip.MustParseAddrPort("10.77.0.1:7124")  // relay-a, on segment a
	peerC     = netip.MustParseAddrPort("10.77.0.3:7124")  // another peer
	stranger  = netip.MustParseAddrPort("10.77.0.99:7124") // not a peer
	client    = netip.MustParseAddrPort("10.77.0.11:38726")
	clientMAC = [6]byte{0x02, 0x00, 10, 77, 0, 11}
	key1      = bytes.Repeat([]byte{0x11}, 32)
	key2      = bytes.Repeat([]byte{0x22}, 32)
)

func ourInfo() *iface.Info {
	return &iface.Info{Name: "eth0", Index: 2, MTU: 1500, MAC: ourMAC, Up: true, Addr: ourAddr,
		Prefix: netip.MustParsePrefix("10.77.0.0/24"), Broadcast: ourBcast}
}

// search returns a valid frame from the client to dst with the payload.
func search(dst string, payload string) []byte {
	return frametest.UDP{
		DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: clientMAC,
		Src: client, Dst: netip.MustParseAddrPort(dst), ID: 0x2da7, Payload: []byte(payload),
	}.Frame()
}

// legacy returns the "SS" mesh datagram carrying fr.
func legacy(fr []byte) []byte { return append([]byte(mesh.LegacyMagic), fr...) }

// sealed returns the authenticated mesh datagram carrying fr, sealed by s.
func sealed(s *mesh.Sealer, fr []byte) []byte {
	buf := make([]byte, mesh.AuthHeaderLen+len(fr))
	copy(buf[mesh.AuthHeaderLen:], fr)
	return buf[s.Seal(buf, mesh.AuthHeaderLen, len(fr)):]
}

// dgram is a mesh datagram and where it came from.
type dgram struct {
	from netip.AddrPort
	b    []byte
}

// rig holds what a rewrite stage shares between runs: peer set, interface,
// opener, dedup cache, segment table and counters.
type rig struct {
	t      *testing.T
	cfg    Config
	target *iface.Current
	peers  *peers.Table
	opener *mesh.Opener
	dedup  *dedup.Cache
	seg    *segment.Table
	m      *pipeline.Metrics
	pool   *pipeline.Pool
	seed   maphash.Seed
}

// newRig returns a rig for relay-b with peers relay-a and 10.77.0.3,
// relaying port 5076 with fragments, legacy mesh, no dedup, no hellos.
func newRig(t *testing.T) *rig {
	r := &rig{t: t, cfg: Config{Ports: []uint16{5076}, Fragments: true}, target: &iface.Current{},
		peers: peers.NewTable(), m: pipeline.NewMetrics(), pool: pipeline.NewPool(2048), seed: maphash.MakeSeed()}
	r.target.Store(ourInfo())
	r.peers.Update(map[netip.AddrPort]string{peerA: "static", peerC: "static"}, false, time.Now())
	return r
}

// stage returns a stage over r's shared state, reading in and writing out.
func (r *rig) stage(in, out *pipeline.Link) *Stage {
	return New(r.cfg, in, out, r.target, r.peers, r.opener, r.dedup, r.seg, r.seed, r.m.Stage("rewrite"), r.m, zerolog.Nop())
}

// run passes each element of batches through a new stage as one batch and
// returns copies of the frames it passed on, in order.
func (r *rig) run(batches ...[]dgram) [][]byte {
	r.t.Helper()
	return stagetest.Run(r.t, r.pool, len(batches), func(i int, b *pipeline.Batch) {
		for _, d := range batches[i] {
			p := b.Slot()
			if p == nil {
				r.t.Fatal("more datagrams than a batch holds")
			}
			p.Addr = d.from
			if p.Len = copy(p.Buf[p.Off:], d.b); p.Len != len(d.b) {
				r.t.Fatalf("a %d-byte datagram does not fit the buffer", len(d.b))
			}
		}
	}, func(in, out *pipeline.Link) stagetest.Stage { return r.stage(in, out) })
}

// one runs one batch of datagrams from one source.
func (r *rig) one(from netip.AddrPort, ds ...[]byte) [][]byte {
	r.t.Helper()
	var dg []dgram
	for _, d := range ds {
		dg = append(dg, dgram{from, d})
	}
	return r.run(dg)
}

// wantDrops fails the test unless exactly the counters in want moved, by
// exactly that much.
func (r *rig) wantDrops(want map[pipeline.Reason]uint64) {
	r.t.Helper()
	stagetest.WantDrops(r.t, r.m, want)
}

// ones' complement sum of b as 16-bit big-endian words, computed
// independently of netio/frame.
func sum16(sum uint32, b []byte) uint32 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// checkIPChecksum fails unless the IPv4 header checksum of fr verifies.
func checkIPChecksum(t *testing.T, fr []byte) {
	t.Helper()
	ihl := int(fr[14]&0x0f) * 4
	if got := fold(sum16(0, fr[14:14+ihl])); got != 0xffff {
		t.Errorf("IPv4 header checksum does not verify (sum %#04x)", got)
	}
}

// checkUDPChecksum fails unless the UDP checksum of the datagram udp
// (header and payload, possibly reassembled) from src to dst verifies.
func checkUDPChecksum(t *testing.T, src, dst netip.Addr, udp []byte) {
	t.Helper()
	if binary.BigEndian.Uint16(udp[6:]) == 0 {
		t.Error("UDP checksum is 0 (none)")
		return
	}
	s4, d4 := src.As4(), dst.As4()
	pseudo := append(append(s4[:], d4[:]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
	if got := fold(sum16(sum16(0, pseudo), udp)); got != 0xffff {
		t.Errorf("UDP checksum does not verify (sum %#04x)", got)
	}
}

// checkInjectable fails unless fr is what the relay must inject for in,
// the frame a peer sent: Ethernet broadcast from our MAC, IP source, ports
// and payload untouched, IP destination dst, no padding, checksums valid.
func checkInjectable(t *testing.T, fr, in []byte, dst netip.Addr) {
	t.Helper()
	if !bytes.Equal(fr[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) || !bytes.Equal(fr[6:12], ourMAC[:]) {
		t.Errorf("Ethernet %x > %x, want our MAC > broadcast", fr[6:12], fr[0:6])
	}
	ipLen := int(binary.BigEndian.Uint16(fr[16:]))
	if len(fr) != 14+ipLen {
		t.Errorf("frame is %d bytes, want %d (no padding)", len(fr), 14+ipLen)
	}
	if !bytes.Equal(fr[26:30], in[26:30]) {
		t.Errorf("IP source %v, want %v", fr[26:30], in[26:30])
	}
	if got := netip.AddrFrom4([4]byte(fr[30:34])); got != dst {
		t.Errorf("IP destination %v, want %v", got, dst)
	}
	ihl := int(fr[14]&0x0f) * 4
	if !bytes.Equal(fr[14+ihl:14+ihl+6], in[14+ihl:14+ihl+6]) {
		t.Error("UDP ports or length changed")
	}
	if !bytes.Equal(fr[14+ihl+8:], in[14+ihl+8:14+ipLen]) {
		t.Error("UDP payload changed")
	}
	checkIPChecksum(t, fr)
	checkUDPChecksum(t, netip.AddrFrom4([4]byte(fr[26:30])), dst, fr[14+ihl:])
}
