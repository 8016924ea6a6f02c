//go:build linux

package assembly

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a relay
// that has stopped leaves nothing running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
