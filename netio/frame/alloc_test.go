package frame_test

import (
	"hash/maphash"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// benchFrame returns a valid frame with an n-byte UDP payload.
func benchFrame(n int) []byte {
	return frametest.UDP{
		Src:     netip.MustParseAddrPort("10.77.0.11:38726"),
		Dst:     netip.MustParseAddrPort("10.77.0.255:5076"),
		Payload: make([]byte, n),
	}.Frame()
}

var (
	sinkErr error
	sink32  uint32
	sink64  uint64
)

// perPacket lists every operation the relay runs per packet; each must not
// allocate.
func perPacket(b []byte) map[string]func() {
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		panic(err)
	}
	seed := maphash.MakeSeed()
	dst := netip.MustParseAddr("10.77.0.255")
	mac := [6]byte{0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09}
	return map[string]func(){
		"Decode":               func() { var g frame.Frame; sinkErr = g.Decode(b) },
		"DecodeError":          func() { var g frame.Frame; sinkErr = g.Decode(b[:20]) },
		"Checksum":             func() { sink32 = frame.Checksum(b, 0) },
		"FixChecksums":         func() { f.FixChecksums(b) },
		"SetDst":               func() { f.SetDst(b, dst) },
		"SetBroadcastEthernet": func() { frame.SetBroadcastEthernet(b, mac) },
		"Key":                  func() { sink64 = f.Key(b, seed) },
	}
}

// benchFrame6 returns a valid IPv6 frame, with a hop-by-hop header, with an
// n-byte UDP payload.
func benchFrame6(n int) []byte {
	return frametest.UDP6{
		Src:     netip.MustParseAddrPort("[fd00:77::11]:38726"),
		Dst:     netip.MustParseAddrPort("[ff02::1]:5076"),
		Ext:     []frametest.ExtHeader{{Type: 0, Body: []byte{0x05, 0x02, 0, 0, 0x01, 0x00}}},
		Payload: make([]byte, n),
	}.Frame()
}

// perPacket6 lists the IPv6 per-packet operations; none may allocate.
func perPacket6(b []byte) map[string]func() {
	var f frame.Frame
	if err := f.Decode6(b); err != nil {
		panic(err)
	}
	seed := maphash.MakeSeed()
	mac := [6]byte{0xb2, 0x04, 0x81, 0xe1, 0x15, 0x09}
	groups := []netip.Addr{netip.MustParseAddr("ff02::1:3"), netip.MustParseAddr("ff02::1")}
	return map[string]func(){
		"Decode6":              func() { var g frame.Frame; sinkErr = g.Decode6(b) },
		"DecodeIP":             func() { var g frame.Frame; sinkErr = g.DecodeIP(b) },
		"Decode6Error":         func() { var g frame.Frame; sinkErr = g.Decode6(b[:50]) },
		"FixChecksums":         func() { f.FixChecksums(b) },
		"SetMulticastEthernet": func() { frame.SetMulticastEthernet(b, f.Dst, mac) },
		"Key":                  func() { sink64 = f.Key(b, seed) },
		"StableKey":            func() { sink32 = f.StableKey(b) },
		"CheckGroup":           func() { sinkErr = frame.CheckGroup(f.Dst, groups) },
		"CheckSource6":         func() { sinkErr = frame.CheckSource6(f.Src) },
	}
}

func TestAllocs6(t *testing.T) {
	for _, n := range []int{16, 1424} {
		for name, fn := range perPacket6(benchFrame6(n)) {
			if allocs := testing.AllocsPerRun(1000, fn); allocs != 0 {
				t.Errorf("IPv6 %s (%d-byte payload): %v allocations, want 0", name, n, allocs)
			}
		}
	}
}

func BenchmarkDecode6(b *testing.B) {
	for _, n := range []int{16, 1424} {
		buf := benchFrame6(n)
		fn := perPacket6(buf)["Decode6"]
		b.Run(sizeName(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				fn()
			}
		})
	}
}

func TestAllocs(t *testing.T) {
	for _, n := range []int{16, 1472} {
		for name, fn := range perPacket(benchFrame(n)) {
			if allocs := testing.AllocsPerRun(1000, fn); allocs != 0 {
				t.Errorf("%s (%d-byte payload): %v allocations, want 0", name, n, allocs)
			}
		}
	}
}

func benchmark(b *testing.B, name string, sizes ...int) {
	for _, n := range sizes {
		buf := benchFrame(n)
		fn := perPacket(buf)[name]
		b.Run(sizeName(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				fn()
			}
		})
	}
}

func sizeName(n int) string {
	switch n {
	case 16:
		return "small"
	case 1472, 1424:
		return "mtu"
	}
	return "other"
}

func BenchmarkDecode(b *testing.B)       { benchmark(b, "Decode", 16, 1472) }
func BenchmarkChecksum(b *testing.B)     { benchmark(b, "Checksum", 16, 1472) }
func BenchmarkFixChecksums(b *testing.B) { benchmark(b, "FixChecksums", 16, 1472) }
func BenchmarkSetDst(b *testing.B)       { benchmark(b, "SetDst", 16) }
func BenchmarkSetBroadcastEthernet(b *testing.B) {
	benchmark(b, "SetBroadcastEthernet", 16)
}
func BenchmarkKey(b *testing.B) { benchmark(b, "Key", 16, 1472) }
