package pipeline

// Link capacities, in batches, in one place (as wireguard-go keeps its queue
// sizes in queueconstants_default.go). With MaxBatch packets per batch a
// link holds up to capacity*MaxBatch packets; at 1500-byte MTU one batch is
// about 100 KiB, so these bound the relay's packet memory to a few MiB.
const (
	// QueueReaderSize is the capacity of links leaving a socket reader
	// (capture→decode, listener→rewrite). When one is full the reader
	// yields to its consumer, and bursts wait in the socket's buffer, which
	// holds thousands of frames; once that buffer is backlogged the link
	// drops its oldest batch instead, so the reader keeps draining the
	// kernel queue and latency stays bounded (StageCounters.PassFrom). In a
	// storm the queue only has to hold the freshest frames worth relaying.
	QueueReaderSize = 8
	// QueueStageSize is the capacity of links between processing stages;
	// those links block (backpressure towards the reader). With one P they
	// decouple nothing, and every batch they hold is work a fresh frame
	// waits behind (a full link of 8 was 13 ms at 40k/s): two let a stage
	// hand on one batch while the next works on the other.
	QueueStageSize = 2
)

// BurstSize is the number of packets from which one batch counts as a
// burst, which a link never hands in (see Link.Send): 16 frames are 16 ms
// of searches at 1k/s, far more than a light load queues during a
// scheduling hiccup of a few ms, and under a quarter of a full batch.
const BurstSize = 16
