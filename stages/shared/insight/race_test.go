//go:build race

package insight

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// zerolog's pooled events allocate under it.
const raceEnabled = true
