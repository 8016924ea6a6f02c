package splitmix

import "testing"

// TestMix pins the finalizer to splitmix64's reference outputs: relays of
// different versions on one segment must score injectors alike.
func TestMix(t *testing.T) {
	// splitmix64 seeded with 0 yields Mix(0x9e3779b97f4a7c15) first,
	// then Mix(2*0x9e3779b97f4a7c15) (Vigna's reference implementation).
	for _, tc := range []struct{ in, want uint64 }{
		{0, 0},
		{0x9e3779b97f4a7c15, 0xe220a8397b1dcdaf},
		{0x3c6ef372fe94f82a, 0x6e789e6aa1b965f4}, // 2 * 0x9e3779b97f4a7c15 mod 2^64,
	} {
		if got := Mix(tc.in); got != tc.want {
			t.Errorf("Mix(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
