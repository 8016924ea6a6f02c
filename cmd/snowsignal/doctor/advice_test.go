package doctor

import (
	"testing"

	"github.com/snowsignal/snowsignal/pipeline"
)

// TestEveryDropReasonExplained: a reason added to the pipeline without an
// explanation here would reach operators as "see docs/OBSERVABILITY.md".
func TestEveryDropReasonExplained(t *testing.T) {
	for r := pipeline.Reason(0); r < pipeline.NumReasons; r++ {
		adv, ok := dropAdvice[r.String()]
		if !ok || adv.why == "" {
			t.Errorf("drop reason %q has no explanation in dropAdvice", r)
		}
		if ok && adv.status != OK && adv.fix == "" {
			t.Errorf("drop reason %q is %v but has no fix", r, adv.status)
		}
	}
}
