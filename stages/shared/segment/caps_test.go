package segment

import (
	"net/netip"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/stages/shared/splitmix"
)

// TestOwner6: of three relays on a segment, one without ipv6 in its hello,
// every IPv6 key has exactly one owner among the two that announced ipv6
// and none at the third (which would not inject it); IPv4 keys still spread
// over all three. The relays are IPv6-only (hellos from ULA addresses).
func TestOwner6(t *testing.T) {
	addrs := []netip.Addr{addr("fd00:77::1"), addr("fd00:77::2"), addr("fd00:77::3")}
	caps := []mesh.Caps{mesh.CapIPv6, mesh.CapIPv6, 0}
	tables := make([]*Table, len(addrs))
	for i, a := range addrs {
		tables[i] = NewTable(uint32(i+1), time.Second)
		tables[i].SetSelf(a)
		for j, b := range addrs {
			if i != j {
				tables[i].HeardCaps(0, b, uint32(j+1), [6]byte{byte(j)}, caps[j])
			}
		}
	}
	share6 := make([]int, len(addrs))
	share4 := make([]int, len(addrs))
	for k := uint64(0); k < 3000; k++ {
		key := k * 0x9e3779b97f4a7c15
		owners6, owners4 := 0, 0
		for i, tb := range tables {
			if caps[i].Has(mesh.CapIPv6) && tb.Owner6(key) {
				owners6++
				share6[i]++
			}
			if tb.Owner(key) {
				owners4++
				share4[i]++
			}
		}
		if owners6 != 1 || owners4 != 1 {
			t.Fatalf("key %d has %d IPv6 owners and %d IPv4 owners, want 1 and 1", k, owners6, owners4)
		}
	}
	if share6[2] != 0 || share6[0] < 1200 || share6[1] < 1200 {
		t.Errorf("IPv6 shares %v: want about 1500, 1500, 0", share6)
	}
	for i, n := range share4 {
		if n < 700 || n > 1300 {
			t.Errorf("relay %d owns %d of 3000 IPv4 keys: poorly spread", i, n)
		}
	}
	if c := tables[0].NeighbourCaps(addrs[1]); c != mesh.CapIPv6 {
		t.Errorf("NeighbourCaps = %v, want ipv6", c)
	}
}

// TestAddrHashIPv4Unchanged: the IPv4 member hash is the first version's,
// so relays of both versions on one segment agree on the injector.
func TestAddrHashIPv4Unchanged(t *testing.T) {
	// The first version's formula, written out for 10.77.0.1.
	if got, want := addrHash(addr("10.77.0.1")), splitmix.Mix(10<<24|77<<16|0<<8|1|1<<40); got != want {
		t.Errorf("addrHash(10.77.0.1) = %#x, want the first version's %#x", got, want)
	}
	if addrHash(addr("10.77.0.1")) != addrHash(addr("::ffff:10.77.0.1")) {
		t.Error("an IPv4-mapped address hashes differently from its IPv4 address")
	}
	if addrHash(addr("fd00:77::1")) == addrHash(addr("fd00:77::2")) {
		t.Error("two IPv6 addresses hash alike")
	}
}

// TestHelloCapsByte: the capabilities go in the flags byte, as in the
// protocol document's example.
func TestHelloCapsByte(t *testing.T) {
	b := PutHelloCaps(make([]byte, HelloLen), 0x0a0b0c0d, [6]byte{2, 0, 0x0a, 0x4d, 0, 2}, mesh.CapIPv6)
	want := []byte{0x53, 0x48, 0x01, 0x01, 0x0a, 0x0b, 0x0c, 0x0d, 0x02, 0x00, 0x0a, 0x4d, 0x00, 0x02, 0x00, 0x00}
	if string(b) != string(want) {
		t.Errorf("hello % x, want % x", b, want)
	}
	if _, _, ok := ParseHello(b); !ok {
		t.Error("a hello with caps does not parse")
	}
}
