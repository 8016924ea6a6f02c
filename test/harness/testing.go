package harness

import (
	"context"
	"testing"

	"github.com/snowsignal/snowsignal/test/lab"
)

// StartT is Start for tests and benchmarks: it fails t if the relay does
// not get ready, and when the test ends it stops the relay (if it still
// runs) and, if the test failed, copies the relay's output into the test
// log.
func StartT(t testing.TB, bin string, host *lab.Host, args ...string) *Relay {
	t.Helper()
	r, err := Start(context.Background(), bin, host, args...)
	if err != nil {
		t.Fatal(err)
	}
	r.StopOnCleanup(t)
	return r
}

// StopOnCleanup registers a t.Cleanup that stops the relay if it still
// runs and, if t failed, logs the relay's output. StartT calls it; use it
// with Options.Start.
func (r *Relay) StopOnCleanup(t testing.TB) {
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("--- output of the relay in %s (%s) ---\n%s", r.Host.Name, r.Host.NetNS, r.Output())
		}
	})
}
