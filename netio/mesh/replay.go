package mesh

// Replay protection, after wireguard-go's replay package: per sender, a
// bitmap of the last ReplayWindow sequence numbers kept as a ring of 64-bit
// blocks, so sliding the window forward clears whole blocks instead of
// shifting bits.

const (
	blockBits  = 64 // bits per ring block
	ringBlocks = 32 // blocks per window; a power of two

	// ReplayWindow is how far behind a sender's newest sequence number a
	// datagram may arrive and still be accepted, once. Older ones are
	// rejected as replays. One block of the ring is kept free so the newest
	// block can be cleared while the window still covers ReplayWindow.
	ReplayWindow = (ringBlocks - 1) * blockBits // 1984

	// MaxSenders bounds the senders whose windows an Opener keeps (256
	// bytes each); when full, the least recently seen sender is forgotten.
	// Each relay start is a new sender, so this allows thousands of
	// restarts before an old window is forgotten, after which that old
	// sender's captured datagrams could be replayed once.
	MaxSenders = 4096
)

// replayFilter is one sender's sliding window.
type replayFilter struct {
	last uint64             // newest sequence number accepted
	ring [ringBlocks]uint64 // bit n%64 of block (n/64)%ringBlocks: n was seen
}

// accept reports whether seq is new, and marks it seen.
func (f *replayFilter) accept(seq uint64) bool {
	block := seq / blockBits
	if seq > f.last {
		// Slide forward: clear the blocks between the old newest block and
		// this one (all of them if it jumped a whole ring or more).
		cur := f.last / blockBits
		n := min(block-cur, ringBlocks)
		for i := cur + 1; i <= cur+n; i++ {
			f.ring[i%ringBlocks] = 0
		}
		f.last = seq
	} else if f.last-seq > ReplayWindow {
		return false // too old to tell
	}
	i, bit := block%ringBlocks, uint64(1)<<(seq%blockBits)
	if f.ring[i]&bit != 0 {
		return false
	}
	f.ring[i] |= bit
	return true
}

// replayTable holds the windows of up to MaxSenders senders, in a slice
// threaded by a doubly linked list in order of last use, so finding,
// touching and evicting are O(1) and allocate nothing once a sender is known.
type replayTable struct {
	index      map[uint32]int32
	entries    []senderWindow
	head, tail int32 // most and least recently seen; -1 when empty
}

type senderWindow struct {
	id         uint32
	prev, next int32 // neighbours in the use order; -1 at the ends
	filter     replayFilter
}

func newReplayTable() replayTable {
	return replayTable{index: make(map[uint32]int32), head: -1, tail: -1}
}

// accept reports whether seq from sender is new, and marks it seen.
func (t *replayTable) accept(sender uint32, seq uint64) bool {
	i, ok := t.index[sender]
	switch {
	case ok:
		t.unlink(i)
	case len(t.entries) < MaxSenders:
		i = int32(len(t.entries))
		t.entries = append(t.entries, senderWindow{id: sender})
		t.index[sender] = i
	default:
		// Full: reuse the least recently seen sender's slot.
		i = t.tail
		t.unlink(i)
		delete(t.index, t.entries[i].id)
		t.entries[i] = senderWindow{id: sender}
		t.index[sender] = i
	}
	t.pushFront(i)
	return t.entries[i].filter.accept(seq)
}

func (t *replayTable) unlink(i int32) {
	e := &t.entries[i]
	if e.prev >= 0 {
		t.entries[e.prev].next = e.next
	} else {
		t.head = e.next
	}
	if e.next >= 0 {
		t.entries[e.next].prev = e.prev
	} else {
		t.tail = e.prev
	}
}

func (t *replayTable) pushFront(i int32) {
	e := &t.entries[i]
	e.prev, e.next = -1, t.head
	if t.head >= 0 {
		t.entries[t.head].prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}
