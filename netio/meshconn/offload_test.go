//go:build linux

package meshconn

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
)

// datagrams returns n mesh-like datagrams of size bytes each, numbered in
// their first two bytes, and one more of last bytes if last > 0.
func datagrams(n, size, last int) [][]byte {
	var ds [][]byte
	for i := range n + min(last, 1) {
		l := size
		if i == n {
			l = last
		}
		d := bytes.Repeat([]byte{byte('a' + i%26)}, l)
		binary.BigEndian.PutUint16(d, uint16(i))
		ds = append(ds, d)
	}
	return ds
}

// listenPlain opens a UDP socket in h's namespace on port, with UDP_GRO set
// if gro; closed when the test ends.
func listenPlain(t *testing.T, h *netlab.Host, port int, gro bool) *net.UDPConn {
	t.Helper()
	uc, err := h.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	if gro {
		rc, _ := uc.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) })
		if serr != nil {
			t.Skipf("UDP_GRO: %v", serr)
		}
	}
	uc.SetReadDeadline(time.Now().Add(2 * time.Second))
	return uc
}

// readGRO reads one datagram from uc and the segment size the kernel gave
// with it (0 for none).
func readGRO(t *testing.T, uc *net.UDPConn) ([]byte, int) {
	t.Helper()
	b, oob := make([]byte, 1<<16), make([]byte, 128)
	n, oobn, _, _, err := uc.ReadMsgUDP(b, oob)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO {
			return b[:n], int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return b[:n], 0
}

// TestSegmentedSend: a batch holding a run of datagrams to one peer
// crosses the lab's veth and bridge as one packet, segmented at the first
// datagram's size (a peer socket with UDP_GRO sees it whole, the last
// segment shorter); a socket without UDP_GRO, as the Python relay's, reads
// the same datagrams one by one, byte for byte, in order. Offload counts
// the messages and the datagrams they held.
func TestSegmentedSend(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	a, b := listen(t, l.Host("relay-a")), l.Host("relay-b")
	whole := listenPlain(t, b, 7125, true)
	plain := listenPlain(t, b, 7126, false)
	toWhole, toPlain := netip.AddrPortFrom(b.IP, 7125), netip.AddrPortFrom(b.IP, 7126)

	run, other := datagrams(10, 142, 100), datagrams(3, 120, 0)
	var bufs [][]byte
	var addrs []netip.AddrPort
	for _, d := range run {
		bufs, addrs = append(bufs, d), append(addrs, toWhole)
	}
	for _, d := range other {
		bufs, addrs = append(bufs, d), append(addrs, toPlain)
	}
	if failed, err := a.WriteBatch(bufs, addrs, nil); failed != 0 || err != nil {
		t.Fatalf("WriteBatch: %d failed, %v", failed, err)
	}

	got, seg := readGRO(t, whole)
	if seg != 142 || !bytes.Equal(got, bytes.Join(run, nil)) {
		t.Errorf("the peer with UDP_GRO read %d bytes segmented at %d; want the run's %d bytes at 142", len(got), seg, 10*142+100)
	}
	for i, want := range other {
		d, seg := readGRO(t, plain)
		if seg != 0 || !bytes.Equal(d, want) {
			t.Errorf("plain datagram %d: %d bytes (segment size %d), want datagram %d's %d", i, len(d), seg, i, len(want))
		}
	}
	if o := a.Offload(); o.Messages != 2 || o.Datagrams != 14 || o.Off || !o.Receiving {
		t.Errorf("Offload = %+v; want 2 messages of 14 datagrams, on, receiving", o)
	}
}

// TestCoalescedReceive: a peer's segmented run reaches the mesh socket as
// one packet and comes out of ReadBatch a datagram per buffer, as sent,
// each with the sender and the kernel's receive time, even when the
// caller's buffers hold fewer than arrived (the rest waits for the next
// call, which does not block); a datagram larger than the caller's buffer
// is counted, not delivered, and what follows it is.
func TestCoalescedReceive(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	a, b := listen(t, l.Host("relay-a")), listen(t, l.Host("relay-b"))
	to := netip.AddrPortFrom(l.Host("relay-b").IP, 7124)
	from := netip.AddrPortFrom(l.Host("relay-a").IP, 7124)
	run := datagrams(10, 142, 100)
	addrs := make([]netip.AddrPort, len(run))
	for i := range addrs {
		addrs[i] = to
	}
	if _, err := a.WriteBatch(run, addrs, nil); err != nil {
		t.Fatal(err)
	}

	bufs, sizes, froms := newBufs(4)
	stamps := make([]int64, 4)
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	var got [][]byte
	var stamp int64
	for reads := 0; len(got) < len(run); reads++ {
		n, tooBig, err := b.ReadBatch(bufs, 8, sizes, froms, stamps)
		if err != nil || tooBig != 0 || n == 0 || n > 4 {
			t.Fatalf("read %d: %d datagrams, %d too big, %v; want 1 to 4", reads, n, tooBig, err)
		}
		for k := range n {
			if froms[k] != from || stamps[k] == 0 || (stamp != 0 && stamps[k] != stamp) {
				t.Errorf("datagram %d from %s stamped %d; want %s and one stamp for all", len(got), froms[k], stamps[k], from)
			}
			stamp = stamps[k]
			got = append(got, append([]byte(nil), bufs[k][8:8+sizes[k]]...))
		}
	}
	for i := range run {
		if !bytes.Equal(got[i], run[i]) {
			t.Errorf("datagram %d = %d bytes %q..., want %d bytes %q...", i, len(got[i]), got[i][:4], len(run[i]), run[i][:4])
		}
	}
	if o := b.Offload(); o.Coalesced != uint64(len(run)) {
		t.Errorf("Offload().Coalesced = %d, want %d", o.Coalesced, len(run))
	}

	// A run whose datagrams are larger than the caller's buffers.
	big := datagrams(3, 1200, 0)
	if _, err := a.WriteBatch(big, addrs[:3], nil); err != nil {
		t.Fatal(err)
	}
	small, sizes, froms := newBufs(4)
	for i := range small {
		small[i] = small[i][:8+1000]
	}
	if n, tooBig, err := b.ReadBatch(small, 8, sizes, froms, nil); err != nil || n != 0 || tooBig != 3 {
		t.Errorf("datagrams of 1200 bytes into buffers of 1000: %d read, %d too big, %v; want 0, 3", n, tooBig, err)
	}
	if _, err := a.WriteBatch(run[:2], addrs[:2], nil); err != nil {
		t.Fatal(err)
	}
	if n, tooBig, err := b.ReadBatch(small, 8, sizes, froms, nil); err != nil || n != 2 || tooBig != 0 ||
		!bytes.Equal(small[1][8:8+sizes[1]], run[1]) {
		t.Errorf("then a run of 2: %d read, %d too big, %v; want 2, 0", n, tooBig, err)
	}
}

// smallMTULab is a lab whose relay-a link has an MTU of 1280, a mesh
// socket there, and a plain socket in relay-b at the address to.
func smallMTULab(t *testing.T) (a *Conn, plain *net.UDPConn, to netip.AddrPort) {
	t.Helper()
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	ha, hb := l.Host("relay-a"), l.Host("relay-b")
	if err := ha.Do(func() error {
		link, err := netlink.LinkByName(netlab.IfName)
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(link, 1280)
	}); err != nil {
		t.Fatal(err)
	}
	return listen(t, ha), listenPlain(t, hb, 7125, false), netip.AddrPortFrom(hb.IP, 7125)
}

// TestSegmentationLearnsTheMTU: segments larger than the route's MTU
// allows are refused by the kernel (EINVAL); the socket then sends that run
// one datagram at a time, fragmented as before, so every datagram still
// arrives, and sends later runs of that size unsegmented from the start,
// while smaller ones are still segmented.
func TestSegmentationLearnsTheMTU(t *testing.T) {
	a, plain, to := smallMTULab(t)
	run := datagrams(4, 1400, 0)
	addrs := []netip.AddrPort{to, to, to, to}
	for round := range 2 {
		if failed, err := a.WriteBatch(run, addrs, nil); failed != 0 || err != nil {
			t.Fatalf("round %d: WriteBatch: %d failed, %v", round, failed, err)
		}
		for i, want := range run {
			if d, _ := readGRO(t, plain); !bytes.Equal(d, want) {
				t.Fatalf("round %d, datagram %d: %d bytes, want %d", round, i, len(d), len(want))
			}
		}
		if o := a.Offload(); o.Messages != 0 || o.Off {
			t.Errorf("round %d: Offload = %+v; want no segmented message, still on", round, o)
		}
	}
	if a.gso.maxSeg != 1399 {
		t.Errorf("largest segment = %d, want 1399 (one less than refused)", a.gso.maxSeg)
	}
	if _, err := a.WriteBatch(datagrams(4, 200, 0), addrs, nil); err != nil {
		t.Fatal(err)
	}
	if o := a.Offload(); o.Messages != 1 || o.Datagrams != 4 {
		t.Errorf("a run of 200-byte datagrams after: Offload = %+v; want 1 message of 4", o)
	}
}

// TestSegmentationCountsARefusedRound: a round in which the kernel takes a
// segmented message and refuses the next (its segments over the MTU) still
// counts the one it took, and every datagram arrives.
func TestSegmentationCountsARefusedRound(t *testing.T) {
	a, plain, to := smallMTULab(t)
	bufs := append(datagrams(4, 200, 0), datagrams(4, 1400, 0)...)
	addrs := make([]netip.AddrPort, len(bufs))
	for i := range addrs {
		addrs[i] = to
	}
	if failed, err := a.WriteBatch(bufs, addrs, nil); failed != 0 || err != nil {
		t.Fatalf("WriteBatch: %d failed, %v", failed, err)
	}
	for i, want := range bufs {
		if d, _ := readGRO(t, plain); !bytes.Equal(d, want) {
			t.Fatalf("datagram %d: %d bytes, want %d", i, len(d), len(want))
		}
	}
	if o := a.Offload(); o.Messages != 1 || o.Datagrams != 4 {
		t.Errorf("Offload = %+v; want the 1 message of 4 sent before the refusal", o)
	}
}

// TestSegmentationPolicy: which runs go as one message, and what each
// refusal teaches.
func TestSegmentationPolicy(t *testing.T) {
	p, q := netip.MustParseAddrPort("10.0.0.1:7124"), netip.MustParseAddrPort("10.0.0.2:7124")
	mk := func(sizes ...int) [][]byte {
		var bs [][]byte
		for _, s := range sizes {
			bs = append(bs, make([]byte, s))
		}
		return bs
	}
	for _, tc := range []struct {
		name  string
		bufs  [][]byte
		addrs []netip.AddrPort
		want  []int // the run ends, in turn
	}{
		{"one peer, same sizes", mk(100, 100, 100), []netip.AddrPort{p, p, p}, []int{3}},
		{"a shorter last ends it", mk(100, 100, 60, 100), []netip.AddrPort{p, p, p, p}, []int{3, 4}},
		{"a longer one starts another", mk(100, 120, 120), []netip.AddrPort{p, p, p}, []int{1, 3}},
		{"peer by peer", mk(100, 100, 100, 100), []netip.AddrPort{p, p, q, q}, []int{2, 4}},
		{"interleaved peers never join", mk(100, 100, 100), []netip.AddrPort{p, q, p}, []int{1, 2, 3}},
		{"empty datagrams go alone", mk(0, 0, 100, 0), []netip.AddrPort{p, p, p, p}, []int{1, 2, 3, 4}},
	} {
		g := newSegmentation()
		var ends []int
		for i := 0; i < len(tc.bufs); {
			i = g.run(tc.bufs, tc.addrs, i)
			ends = append(ends, i)
		}
		if !slices.Equal(ends, tc.want) {
			t.Errorf("%s: runs end at %v, want %v", tc.name, ends, tc.want)
		}
	}

	g := newSegmentation()
	long := mk(make([]int, 100)...)
	for i := range long {
		long[i] = make([]byte, 10)
	}
	addrs := make([]netip.AddrPort, len(long))
	for i := range addrs {
		addrs[i] = p
	}
	if end := g.run(long, addrs, 0); end != 64 {
		t.Errorf("100 datagrams: the run ends at %d, want 64 (UDP_MAX_SEGMENTS)", end)
	}
	if !g.refused(syscall.EINVAL, 1400) || g.maxSeg != 1399 || g.refused(syscall.ECONNREFUSED, 100) {
		t.Errorf("EINVAL for 1400: max %d; ECONNREFUSED must not count as a refusal", g.maxSeg)
	}
	if end := g.run(mk(1400, 1400), []netip.AddrPort{p, p}, 0); end != 1 {
		t.Errorf("after EINVAL, a run of 1400s ends at %d, want 1", end)
	}
	if !g.refused(syscall.EIO, 100) || !g.off.Load() || !(&Conn{gso: g}).Offload().Off {
		t.Error("EIO must turn segmentation off")
	}
	if end := g.run(mk(100, 100), []netip.AddrPort{p, p}, 0); end != 1 {
		t.Errorf("with segmentation off, a run ends at %d, want 1", end)
	}
}

// TestOffloadAllocatesNothing: a segmented WriteBatch and the split of a
// coalesced read allocate nothing.
func TestOffloadAllocatesNothing(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	a, b := listen(t, l.Host("relay-a")), listen(t, l.Host("relay-b"))
	to := netip.AddrPortFrom(l.Host("relay-b").IP, 7124)
	run := datagrams(8, 142, 0)
	addrs := make([]netip.AddrPort, len(run))
	for i := range addrs {
		addrs[i] = to
	}
	bufs, sizes, froms := newBufs(8)
	stamps := make([]int64, 8)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	round := func() {
		if _, err := a.WriteBatch(run, addrs, nil); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(run); {
			n, _, err := b.ReadBatch(bufs, 8, sizes, froms, stamps)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	round()
	if n := testing.AllocsPerRun(50, round); n != 0 {
		t.Errorf("a segmented send and coalesced read allocate %v times", n)
	}
	if o := b.Offload(); o.Coalesced == 0 {
		t.Errorf("nothing arrived coalesced: %+v", o)
	}
}

// TestCoalescedReadTopsUp: the reader has 16 large buffers, but one
// ReadBatch still takes 40 waiting datagrams that were not coalesced (a
// Python peer's), as many as the caller offered room for: a read that
// filled every large buffer is topped up without waiting.
func TestCoalescedReadTopsUp(t *testing.T) {
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	b := listen(t, l.Host("relay-b"))
	tx := listenPlain(t, l.Host("relay-a"), 7200, false)
	to := netip.AddrPortFrom(l.Host("relay-b").IP, 7124)
	for i := range 40 {
		if _, err := tx.WriteToUDPAddrPort(datagrams(1, 100+i, 0)[0], to); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // all 40 queued at relay-b
	bufs, sizes, froms := newBufs(64)
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, tooBig, err := b.ReadBatch(bufs, 8, sizes, froms, nil)
	if err != nil || n != 40 || tooBig != 0 {
		t.Fatalf("ReadBatch = %d, %d too big, %v; want all 40 in one call", n, tooBig, err)
	}
	for i := range n {
		if sizes[i] != 100+i {
			t.Errorf("datagram %d: %d bytes, want %d", i, sizes[i], 100+i)
		}
	}
	if o := b.Offload(); o.Coalesced != 0 {
		t.Errorf("%d datagrams counted as coalesced, want 0", o.Coalesced)
	}
}
