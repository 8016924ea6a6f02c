//go:build linux

package iface

import (
	"context"
	"errors"
	"time"
)

// LookupEvery is how often Await looks again for an interface that does not
// exist: often enough that a relay relays again well within 2 s of its
// interface coming back, cheap enough (one netlink request) to go on for
// hours.
const LookupEvery = 100 * time.Millisecond

// Await returns the Info of the interface called name as soon as it exists.
// While it does not, Await calls missing (if not nil) once with the lookup
// error, then looks again every LookupEvery, calling idle (if not nil)
// before each look: an error from idle ends the wait with that error, as
// does the end of ctx. A lookup error other than ErrNotFound ends it at once.
//
// The capture and inject stages await their interface at every (re)start,
// so a relay whose interface is removed and re-created (a container's veth,
// a VPN tunnel) carries on by itself.
func Await(ctx context.Context, name string, missing func(error), idle func() error) (*Info, error) {
	info, err := Lookup(name)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return info, err
	}
	if missing != nil {
		missing(err)
	}
	t := time.NewTicker(LookupEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		if idle != nil {
			if err := idle(); err != nil {
				return nil, err
			}
		}
		info, err = Lookup(name)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return info, err
		}
	}
}
