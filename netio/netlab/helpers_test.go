package netlab

import "testing"

// The package's own tests cannot import netlabtest (it imports netlab), so
// they have these copies of its helpers.

// Require is netlabtest.Require.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("needs root for network namespaces: %v", err)
	}
}

// NewSwarmT is netlabtest.NewSwarmT.
func NewSwarmT(t testing.TB, spec Spec) *Lab { t.Helper(); return newT(t, spec, NewSwarm) }

// NewRoutedT is netlabtest.NewRoutedT.
func NewRoutedT(t testing.TB, spec Spec) *Lab { t.Helper(); return newT(t, spec, NewRouted) }

func newT(t testing.TB, spec Spec, build func(Spec) (*Lab, error)) *Lab {
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
