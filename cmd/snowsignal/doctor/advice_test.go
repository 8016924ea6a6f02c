package doctor

import (
	"testing"

	"github.com/snowsignal/snowsignal/pipeline"
)

// TestEveryReasonHasAdvice: the doctor explains every drop reason the relay
// counts, and for those with a hint (link_local_source) gives it as the fix.
func TestEveryReasonHasAdvice(t *testing.T) {
	for r := pipeline.Reason(0); r < pipeline.NumReasons; r++ {
		adv, ok := dropAdvice[r.String()]
		if !ok {
			t.Errorf("no advice for %s", r)
			continue
		}
		if h := r.Hint(); h != "" && adv.fix != h {
			t.Errorf("%s: fix %q, want the reason's hint %q", r, adv.fix, h)
		}
	}
}
