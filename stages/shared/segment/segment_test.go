package segment

import (
	"net/netip"
	"testing"
	"time"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestHelloRoundTrip(t *testing.T) {
	b := PutHello(make([]byte, HelloLen), 0xdeadbeef, [6]byte{2, 0, 10, 77, 0, 1})
	if !IsHello(b) {
		t.Fatal("IsHello false for a hello")
	}
	id, mac, ok := ParseHello(b)
	if !ok || id != 0xdeadbeef || mac != [6]byte{2, 0, 10, 77, 0, 1} {
		t.Errorf("ParseHello = %#x, %x, %v", id, mac, ok)
	}
	for _, bad := range [][]byte{nil, []byte("SH"), []byte("SS\x01\x00abcd"), {'S', 'H', 9, 0, 1, 2, 3, 4}} {
		if _, _, ok := ParseHello(bad); ok {
			t.Errorf("ParseHello accepted %q", bad)
		}
	}
	// A relayed frame starts with the broadcast MAC, never with "SH".
	if IsHello([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Error("a broadcast frame looks like a hello")
	}
}

// Every relay on a segment must agree on exactly one owner per key.
func TestExactlyOneOwnerPerKey(t *testing.T) {
	addrs := []netip.Addr{addr("10.77.0.1"), addr("10.77.0.2"), addr("10.77.0.3")}
	tables := make([]*Table, len(addrs))
	for i, a := range addrs {
		tables[i] = NewTable(uint32(i+1), time.Second)
		tables[i].SetSelf(a)
		for j, b := range addrs {
			if i != j {
				tables[i].Heard(0, b, uint32(j+1), [6]byte{byte(j)})
			}
		}
	}
	share := make([]int, len(addrs))
	for k := uint64(0); k < 3000; k++ {
		owners := 0
		for i, tb := range tables {
			if tb.Owner(k * 0x9e3779b97f4a7c15) {
				owners++
				share[i]++
			}
		}
		if owners != 1 {
			t.Fatalf("key %d has %d owners", k, owners)
		}
	}
	for i, n := range share {
		if n < 700 || n > 1300 {
			t.Errorf("relay %d owns %d of 3000 keys: poorly spread", i, n)
		}
	}
}

func TestAloneOwnsEverything(t *testing.T) {
	tb := NewTable(1, time.Second)
	tb.SetSelf(addr("10.0.0.1"))
	for k := uint64(0); k < 100; k++ {
		if !tb.Owner(k) {
			t.Fatal("a relay alone on its segment does not own a key")
		}
	}
}

func TestOwnHelloIgnoredAndSilentNeighbourExpires(t *testing.T) {
	tb := NewTable(7, time.Second)
	tb.SetSelf(addr("10.0.0.1"))
	if tb.Heard(0, addr("10.0.0.1"), 7, [6]byte{1}) {
		t.Error("own hello counted as a neighbour")
	}
	if !tb.Heard(0, addr("10.0.0.2"), 8, [6]byte{2}) {
		t.Error("new neighbour not reported as new")
	}
	if tb.Heard(int64(500*time.Millisecond), addr("10.0.0.2"), 8, [6]byte{2}) {
		t.Error("known neighbour reported as new")
	}
	if !tb.IsNeighbour(addr("10.0.0.2")) || tb.IsNeighbour(addr("10.0.0.3")) {
		t.Error("IsNeighbour wrong")
	}
	if !tb.IsNeighbourMAC([6]byte{2}) || tb.IsNeighbourMAC([6]byte{1}) {
		t.Error("IsNeighbourMAC wrong")
	}
	if gone := tb.Expire(int64(1400 * time.Millisecond)); len(gone) != 0 {
		t.Errorf("expired %v too early", gone)
	}
	gone := tb.Expire(int64(1600 * time.Millisecond))
	if len(gone) != 1 || gone[0] != addr("10.0.0.2") {
		t.Errorf("expired %v, want [10.0.0.2]", gone)
	}
	if tb.IsNeighbour(addr("10.0.0.2")) || tb.IsNeighbourMAC([6]byte{2}) {
		t.Error("expired neighbour still listed")
	}
	for k := uint64(0); k < 100; k++ {
		if !tb.Owner(k) {
			t.Fatal("after its neighbour went silent the relay does not own every key")
		}
	}
}

func TestOwnerAllocatesNothing(t *testing.T) {
	tb := NewTable(1, time.Second)
	tb.SetSelf(addr("10.0.0.1"))
	tb.Heard(0, addr("10.0.0.2"), 2, [6]byte{2})
	k := uint64(0)
	if n := testing.AllocsPerRun(1000, func() {
		k++
		tb.Owner(k)
		tb.IsNeighbour(addr("10.0.0.2"))
		tb.IsNeighbourMAC([6]byte{3})
	}); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}
