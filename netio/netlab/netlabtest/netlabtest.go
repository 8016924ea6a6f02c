// Package netlabtest builds netlab labs for tests and benchmarks: it skips
// where labs cannot be built and removes each lab when its test ends. It is
// apart from netlab so that the shipped binary, which runs the demo in a
// lab, never links package testing.
package netlabtest

import (
	"testing"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// Require skips the test when this process cannot build labs (not root, or
// without CAP_SYS_ADMIN and CAP_NET_ADMIN). As root, as in CI, it never skips.
func Require(t testing.TB) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("needs root for network namespaces: %v", err)
	}
}

// NewSwarmT builds a Swarm lab for a test or benchmark: it skips when
// Require would, fails the test if the lab cannot be built, and closes the
// lab when the test ends, pass or fail.
func NewSwarmT(t testing.TB, spec netlab.Spec) *netlab.Lab {
	t.Helper()
	return newT(t, spec, netlab.NewSwarm)
}

// NewRoutedT is NewSwarmT for a Routed lab.
func NewRoutedT(t testing.TB, spec netlab.Spec) *netlab.Lab {
	t.Helper()
	return newT(t, spec, netlab.NewRouted)
}

func newT(t testing.TB, spec netlab.Spec, build func(netlab.Spec) (*netlab.Lab, error)) *netlab.Lab {
	t.Helper()
	Require(t)
	l, err := build(spec)
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab %s: %v", l.ID(), err)
		}
	})
	return l
}
