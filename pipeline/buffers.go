package pipeline

import "net/netip"

// Buffers adapts a Batch to the plain buffers the socket layer (netio)
// reads into and writes from, as wireguard-go's device adapts its elements
// to conn's [][]byte. Each stage that talks to a socket keeps one, so the
// conversion allocates nothing. Not safe for concurrent use.
type Buffers struct {
	// Bufs are the buffers handed to the socket.
	Bufs [][]byte
	// Sizes, Addrs and Stamps receive the length, sender and kernel
	// receive time of each datagram read.
	Sizes  []int
	Addrs  []netip.AddrPort
	Stamps []int64

	start  int // first slot of the batch that Bufs describe, after Free
	window int // at most how many free slots Free describes (see Filled)
}

// minWindow is the fewest buffers a read is offered. Describing a buffer to
// the kernel (and taking it back) touches its slot and its message header;
// at 1k/s every read finds one datagram, and touching 64 slots on each
// wake-up, with caches cold from the other programs that ran meanwhile,
// was a good part of the relay's own CPU per datagram.
const minWindow = 8

// NewBuffers returns buffers for one batch.
func NewBuffers() *Buffers {
	return &Buffers{Bufs: make([][]byte, 0, MaxBatch), Sizes: make([]int, MaxBatch), Addrs: make([]netip.AddrPort, MaxBatch),
		Stamps: make([]int64, MaxBatch), window: MaxBatch}
}

// Free points Bufs at the whole buffers of b's free slots, as many as the
// window allows, to read into at offset Headroom; Filled then adds what was
// read to b.
func (s *Buffers) Free(b *Batch) {
	s.start = len(b.Pkts)
	s.Bufs = s.Bufs[:0]
	free := b.Pkts[s.start:cap(b.Pkts)]
	free = free[:min(len(free), s.window)]
	clear(s.Stamps[:len(free)]) // a socket that cannot stamp leaves them unknown
	for i := range free {
		s.Bufs = append(s.Bufs, free[i].Buf)
	}
}

// Filled appends to b the n packets a read put into Bufs at Headroom (the
// first n buffers, with Sizes, Stamps and, if addrs is set, Addrs). The socket may
// have reordered Bufs (moving the buffers of datagrams too big to keep
// behind the others), so every free slot takes back its buffer from Bufs.
//
// Filled reports whether the read filled every buffer: more may be
// waiting, and the next read is offered the whole batch. Otherwise the
// window becomes twice what was read (at least minWindow), so a light load
// is read a few slots at a time and a rising one gets room at once.
func (s *Buffers) Filled(b *Batch, n int, addrs bool) (full bool) {
	full = n >= len(s.Bufs)
	if full {
		s.window = MaxBatch
	} else {
		s.window = max(minWindow, min(MaxBatch, 2*n))
	}
	free := b.Pkts[s.start:cap(b.Pkts)]
	for i := range s.Bufs {
		free[i].Buf = s.Bufs[i]
	}
	clear(s.Bufs) // the batch owns them again
	s.Bufs = s.Bufs[:0]
	for i := range n {
		p := b.Slot()
		p.Len = s.Sizes[i]
		p.Stamp = s.Stamps[i]
		if addrs {
			p.Addr = s.Addrs[i]
		}
	}
	return full
}

// Of points Bufs at the bytes of every packet in b, for a write.
func (s *Buffers) Of(b *Batch) [][]byte {
	s.Bufs = s.Bufs[:0]
	for i := range b.Pkts {
		s.Bufs = append(s.Bufs, b.Pkts[i].Bytes())
	}
	return s.Bufs
}
