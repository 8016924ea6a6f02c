package pipeline

import "net/netip"

// Buffers adapts a Batch to the plain buffers the socket layer (netio)
// reads into and writes from, as wireguard-go's device adapts its elements
// to conn's [][]byte. Each stage that talks to a socket keeps one, so the
// conversion allocates nothing. Not safe for concurrent use.
type Buffers struct {
	// Bufs are the buffers handed to the socket.
	Bufs [][]byte
	// Sizes and Addrs receive the length and sender of each datagram read.
	Sizes []int
	Addrs []netip.AddrPort

	start int // first slot of the batch that Bufs describe, after Free
}

// NewBuffers returns buffers for one batch.
func NewBuffers() *Buffers {
	return &Buffers{Bufs: make([][]byte, 0, MaxBatch), Sizes: make([]int, MaxBatch), Addrs: make([]netip.AddrPort, MaxBatch)}
}

// Free points Bufs at the whole buffers of b's free slots, to read into at
// offset Headroom; Filled then adds what was read to b.
func (s *Buffers) Free(b *Batch) {
	s.start = len(b.Pkts)
	s.Bufs = s.Bufs[:0]
	free := b.Pkts[s.start:cap(b.Pkts)]
	for i := range free {
		s.Bufs = append(s.Bufs, free[i].Buf)
	}
}

// Filled appends to b the n packets a read put into Bufs at Headroom (the
// first n buffers, with Sizes and, if addrs is set, Addrs). The socket may
// have reordered Bufs (moving the buffers of datagrams too big to keep
// behind the others), so every free slot takes back its buffer from Bufs.
func (s *Buffers) Filled(b *Batch, n int, addrs bool) {
	free := b.Pkts[s.start:cap(b.Pkts)]
	for i := range s.Bufs {
		free[i].Buf = s.Bufs[i]
	}
	clear(s.Bufs) // the batch owns them again
	s.Bufs = s.Bufs[:0]
	for i := range n {
		p := b.Slot()
		p.Len = s.Sizes[i]
		if addrs {
			p.Addr = s.Addrs[i]
		}
	}
}

// Of points Bufs at the bytes of every packet in b, for a write.
func (s *Buffers) Of(b *Batch) [][]byte {
	s.Bufs = s.Bufs[:0]
	for i := range b.Pkts {
		s.Bufs = append(s.Bufs, b.Pkts[i].Bytes())
	}
	return s.Bufs
}
