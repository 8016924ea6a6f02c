// Package splitmix is splitmix64's finalizer, the one 64-bit mixer that the
// rate limiter (choosing a source's set) and the segment table (scoring
// injectors) share. The segment table's scores must agree between relays, so
// the constants never change.
package splitmix

// Mix is splitmix64's finalizer: a cheap, well-distributed 64-bit hash.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
