package decode

import (
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/pipeline"
)

// TestDecodeIPv6: with --ipv6 an IPv6 search decodes (source and group
// read), allocating nothing; without it, it is dropped as not_ipv4 and
// IPv4 frames decode as before.
func TestDecodeIPv6(t *testing.T) {
	dst := netip.MustParseAddrPort("[ff02::1]:5076")
	fr6 := frametest.UDP6{DstMAC: frame.MulticastMAC(dst.Addr()), SrcMAC: [6]byte{2, 0, 10, 77, 0, 11},
		Src: netip.MustParseAddrPort("[fd00:77::11]:38726"), Dst: dst, Payload: make([]byte, 100)}.Frame()
	for _, ipv6 := range []bool{false, true} {
		m := pipeline.NewMetrics()
		s := NewIP(ipv6, nil, nil, m.Stage("decode"), m)
		b := pipeline.NewPool(2048).Get()
		fill := func() {
			b.Pkts = b.Pkts[:0]
			for range pipeline.MaxBatch {
				p := b.Slot()
				p.Len = copy(p.Buf[p.Off:], fr6)
			}
		}
		var kept int
		allocs := testing.AllocsPerRun(10, func() { fill(); b.Keep(s.decode); kept = len(b.Pkts) })
		if ipv6 {
			if kept != pipeline.MaxBatch || !b.Pkts[0].Frame.IPv6 || b.Pkts[0].Frame.Dst != dst.Addr() || b.Pkts[0].Frame.DstPort != 5076 {
				t.Errorf("--ipv6: kept %d of %d; drops %v", kept, pipeline.MaxBatch, m.DropCounts())
			}
			if allocs != 0 {
				t.Errorf("--ipv6: %v allocations per batch", allocs)
			}
		} else if kept != 0 || m.Drops(pipeline.ReasonNotIPv4) != 11*pipeline.MaxBatch {
			t.Errorf("without --ipv6: kept %d; drops %v, want every frame not_ipv4", kept, m.DropCounts())
		}
	}
}
