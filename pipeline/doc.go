// Package pipeline is SnowSignal's actor runtime: packets travel in pooled
// batches between long-lived stage goroutines over bounded links, and a
// supervisor restarts any stage that fails.
//
// The runtime knows nothing about sockets or protocols. A stage is anything
// with a name and a Run method; a link is a bounded channel of *Batch with a
// declared policy for when it is full; the supervisor owns the order in which
// stages start, fail, restart and stop.
package pipeline
