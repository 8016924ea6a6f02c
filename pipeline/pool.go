package pipeline

import "sync"

// A Pool recycles batches whose buffers fit one frame of up to MaxFrame
// bytes behind Headroom. Memory stays bounded because every batch in flight
// sits in a bounded link or in the one stage that owns it.
type Pool struct {
	bufSize int
	pool    sync.Pool
}

// NewPool returns a pool of batches for frames of up to maxFrame bytes.
func NewPool(maxFrame int) *Pool {
	p := &Pool{bufSize: Headroom + maxFrame}
	p.pool.New = func() any {
		// One arena per batch: MaxBatch buffers in one allocation.
		arena := make([]byte, MaxBatch*p.bufSize)
		b := &Batch{Pkts: make([]Packet, MaxBatch)}
		for i := range b.Pkts {
			b.Pkts[i].Buf = arena[i*p.bufSize : (i+1)*p.bufSize : (i+1)*p.bufSize]
		}
		b.Pkts = b.Pkts[:0]
		return b
	}
	return p
}

// MaxFrame is the largest frame a packet buffer holds behind Headroom.
func (p *Pool) MaxFrame() int { return p.bufSize - Headroom }

// Get returns an empty batch.
func (p *Pool) Get() *Batch { return p.pool.Get().(*Batch) }

// Put returns a batch to the pool. The caller must not touch it afterwards.
func (p *Pool) Put(b *Batch) {
	// Clear metadata so a use after Put cannot leak an old peer address.
	for i := range b.Pkts {
		b.Pkts[i].reset()
	}
	b.Pkts = b.Pkts[:0]
	p.pool.Put(b)
}
