package iface

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestLastAddr(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"10.77.0.0/24", "10.77.0.255"},
		{"10.77.0.17/24", "10.77.0.255"},
		{"10.0.0.0/8", "10.255.255.255"},
		{"192.168.1.128/25", "192.168.1.255"},
		{"192.168.1.0/25", "192.168.1.127"},
		{"172.16.4.4/30", "172.16.4.7"},
		{"10.1.2.3/32", "10.1.2.3"},
		{"0.0.0.0/0", "255.255.255.255"},
	} {
		if got := LastAddr(netip.MustParsePrefix(tc.prefix)); got.String() != tc.want {
			t.Errorf("LastAddr(%s) = %s, want %s", tc.prefix, got, tc.want)
		}
	}
}

func TestLookupUnknownListsInterfaces(t *testing.T) {
	_, err := Lookup("no-such-if0")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "lo") || !strings.Contains(err.Error(), "have:") {
		t.Errorf("error %q does not list the existing interfaces", err)
	}
}

func TestLookupLoopback(t *testing.T) {
	i, err := Lookup("lo")
	if err != nil {
		t.Fatal(err)
	}
	if i.Index != 1 || i.Addr != netip.MustParseAddr("127.0.0.1") || i.Prefix.Bits() != 8 {
		t.Errorf("lo: %+v", i)
	}
}
