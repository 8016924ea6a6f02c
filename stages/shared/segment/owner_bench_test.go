package segment

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkOwner measures the per-packet rendezvous decision with one to
// eight relays on the segment.
func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("relays=%d", n), func(b *testing.B) {
			t := NewTable(1, time.Minute)
			t.SetSelf(netip.MustParseAddr("10.0.0.1"))
			for i := 2; i <= n; i++ {
				t.Heard(0, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), uint32(i), [6]byte{2, 0, 10, 0, 0, byte(i)})
			}
			owned := 0
			b.ReportAllocs()
			for k := uint64(0); b.Loop(); k++ {
				if t.Owner(k * 0x9e3779b97f4a7c15) {
					owned++
				}
			}
			// Each relay owns about 1/n of the keys.
			if share := float64(owned) / float64(b.N); b.N >= 1000 && (share < 0.5/float64(n) || share > 2/float64(n)) {
				b.Errorf("owned %.2f of the keys with %d relays, want about %.2f", share, n, 1/float64(n))
			}
		})
	}
}
