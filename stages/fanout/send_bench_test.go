//go:build linux

package fanout

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
)

// numPeers is how many peers every batch fans out to.
const numPeers = 3

// sendRig is a fan-out stage whose mesh socket lives in a lab host, with
// numPeers peers that are UDP sockets of the same host, and a full batch of
// captured searches.
type sendRig struct {
	s     *Stage
	b     *pipeline.Batch
	peers []*net.UDPConn
	frame []byte
}

// newSendRig builds the lab and the stage; with a key it seals datagrams.
func newSendRig(tb testing.TB, key []byte) *sendRig {
	tb.Helper()
	l := netlabtest.NewSwarmT(tb, netlab.Spec{Subnet: netip.MustParsePrefix("10.77.0.0/24"), Segments: []netlab.SegmentSpec{
		{Name: "a", Hosts: []netlab.HostSpec{{Name: "relay", Addr: netip.MustParseAddr("10.77.0.1")}}}}})
	h := l.Host("relay")
	var conn *meshconn.Conn
	if err := h.Do(func() (err error) {
		conn, err = meshconn.Listen(netip.MustParseAddrPort("10.77.0.1:7124"))
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	r := &sendRig{}
	addrs := map[netip.AddrPort]string{}
	for i := range numPeers {
		// Peers that accept what they get, so no ICMP error comes back;
		// once their buffers are full the kernel drops the rest quietly.
		c, err := h.ListenUDP(fmt.Sprintf("10.77.0.1:%d", 7200+i))
		if err != nil {
			tb.Fatal(err)
		}
		r.peers = append(r.peers, c)
		addrs[c.LocalAddr().(*net.UDPAddr).AddrPort()] = "static"
	}
	t := peers.NewTable()
	t.Update(addrs, false, time.Now())
	var sealer *mesh.Sealer
	if key != nil {
		sealer = mesh.NewSealer(key, 1)
	}
	m := pipeline.NewMetrics()
	pool := pipeline.NewPool(2048)
	r.s = New(nil, pool, conn, t, sealer, pipeline.ShedPolicy{}, m.Stage("fanout"), m, zerolog.Nop())
	r.frame = frametest.UDP{
		DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, SrcMAC: [6]byte{0x02, 0x00, 10, 77, 0, 11},
		Src: netip.MustParseAddrPort("10.77.0.11:38726"), Dst: netip.MustParseAddrPort("10.77.0.255:5076"),
		Payload: bytes.Repeat([]byte{0xab}, 100),
	}.Frame()
	r.b = pool.Get()
	for range pipeline.MaxBatch {
		p := r.b.Slot()
		p.Len = copy(p.Buf[p.Off:], r.frame)
	}
	return r
}

// TestSendAllocs asserts that building and sending the mesh datagrams of a
// batch (header in place, one sendmmsg(2) for every peer) allocates
// nothing, and that each peer receives every frame, "SS" and the frame
// byte for byte.
func TestSendAllocs(t *testing.T) {
	r := newSendRig(t, nil)
	if err := r.s.send(r.b); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(mesh.LegacyMagic), r.frame...)
	buf := make([]byte, 2048)
	for _, c := range r.peers {
		for i := range pipeline.MaxBatch {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("peer %s, datagram %d: %v", c.LocalAddr(), i, err)
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("peer %s got %x, want %x", c.LocalAddr(), buf[:n], want)
			}
		}
	}
	var err error
	if allocs := testing.AllocsPerRun(100, func() { err = r.s.send(r.b) }); allocs != 0 {
		t.Errorf("%v allocations per batch of %d frames to %d peers, want 0", allocs, pipeline.MaxBatch, numPeers)
	}
	if err != nil {
		t.Fatal(err)
	}
	// One send above, and AllocsPerRun runs once more than asked, to warm up.
	if got, want := r.s.c.Out.Load(), uint64((1+1+100)*pipeline.MaxBatch); got != want {
		t.Errorf("fan-out counted %d frames out, want %d", got, want)
	}
}

// BenchmarkSend measures a batch's fan-out to numPeers peers, syscall
// included, in the legacy and the authenticated format.
func BenchmarkSend(b *testing.B) {
	for _, auth := range []bool{false, true} {
		b.Run(fmt.Sprintf("auth=%v", auth), func(b *testing.B) {
			var key []byte
			if auth {
				key = bytes.Repeat([]byte{0x11}, 32)
			}
			r := newSendRig(b, key)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.s.send(r.b); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pipeline.MaxBatch*numPeers), "ns/datagram")
		})
	}
}
