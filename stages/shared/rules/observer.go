package rules

import "github.com/snowsignal/snowsignal/pipeline"

// An Observer watches a stage's verdicts without changing them: the insight
// package learns from the packets kept which EPICS names are searched, and
// logs (sampled, at debug level) what was relayed and dropped. The filter
// stage (outbound) and the rewrite stage (inbound) call it from their own
// goroutine; it must not block, keep a packet after returning, or allocate.
type Observer interface {
	// Tracing is called once per batch, before the batch is filtered.
	// Dropped is called for the batch's drops only when it returns true,
	// so an observer that is not logging costs nothing per packet.
	Tracing() bool
	// Dropped reports a packet dropped for reason r.
	Dropped(p *pipeline.Packet, r pipeline.Reason)
	// Kept is called once per batch, with the packets about to be passed on.
	Kept(b *pipeline.Batch)
}
