//go:build linux

package inject

import (
	"errors"

	"github.com/snowsignal/snowsignal/pipeline"
)

// errInputClosed ends the wait for a missing interface when the pipeline
// is stopping.
var errInputClosed = errors.New("inject: input closed")

// dropWhileMissing is the inject stage's idle work while its interface does
// not exist: it drops (and counts) the frames waiting, so the stages before
// it do not stall, and notices when its input is closed. It never blocks.
func (s *Stage) dropWhileMissing() error {
	for {
		b, closed := s.in.TryTake()
		switch {
		case closed:
			return errInputClosed
		case b == nil:
			return nil
		}
		n := len(b.Pkts)
		s.c.In.Add(uint64(n))
		s.m.Drop(pipeline.ReasonSendError, n)
		s.pool.Put(b)
	}
}
