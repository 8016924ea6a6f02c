package harness

import (
	"context"
	"testing"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// StartT is labrelay.Start for tests and benchmarks: it fails t if the
// relay does not get ready, and when the test ends it stops the relay (if
// it still runs) and, if the test failed, copies the relay's output into
// the test log.
func StartT(t testing.TB, bin string, host *netlab.Host, args ...string) *labrelay.Relay {
	t.Helper()
	r, err := labrelay.Start(context.Background(), bin, host, args...)
	if err != nil {
		t.Fatal(err)
	}
	StopOnCleanup(t, r)
	return r
}

// StopOnCleanup registers a t.Cleanup that stops r if it still runs and,
// if t failed, logs r's output. StartT calls it; use it with
// labrelay.Options.Start.
func StopOnCleanup(t testing.TB, r *labrelay.Relay) {
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("--- output of the relay in %s (%s) ---\n%s", r.Host.Name, r.Host.NetNS, r.Output())
		}
	})
}
