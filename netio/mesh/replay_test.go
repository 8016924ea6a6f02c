package mesh

import "testing"

// TestReplayFilter follows wireguard-go's replay test: a sequence of
// counters and whether each must be accepted.
func TestReplayFilter(t *testing.T) {
	const w = ReplayWindow
	steps := []struct {
		seq  uint64
		want bool
	}{
		{0, true}, {1, true}, {1, false}, {9, true}, {8, true}, {7, true}, {7, false},
		{w, true}, {w - 1, true}, {w - 1, false}, {w - 2, true}, {2, true}, {2, false},
		{w + 16, true}, {3, false}, {w + 16, false}, {w * 4, true}, {w*4 - (w - 1), true},
		{10, false}, {w*4 - w, true}, {w*4 - (w + 1), false}, {w*4 - (w - 2), true},
		{w*4 + 1 - w, false}, {w*4 - w, false}, {1 << 62, true}, {1<<62 - 1, true},
		{1<<62 - w, true}, {1<<62 - w - 1, false}, {w * 4, false},
		{1<<64 - 1, true}, {1<<64 - 1, false}, {1<<64 - 1 - w, true}, {1<<64 - 2 - w, false},
	}
	var f replayFilter
	for i, s := range steps {
		if got := f.accept(s.seq); got != s.want {
			t.Fatalf("step %d: accept(%d) = %v, want %v", i, s.seq, got, s.want)
		}
	}
}

// TestReplayFilterBlocks walks across block boundaries in order and with
// jumps, checking each number is accepted once.
func TestReplayFilterBlocks(t *testing.T) {
	var f replayFilter
	for seq := uint64(1); seq < 20*ReplayWindow; seq += 1 + seq%97 {
		if !f.accept(seq) {
			t.Fatalf("accept(%d) = false", seq)
		}
		if f.accept(seq) {
			t.Fatalf("accept(%d) twice", seq)
		}
	}
}

func TestReplayTableEvictsLeastRecent(t *testing.T) {
	tab := newReplayTable()
	for id := range uint32(MaxSenders) {
		if !tab.accept(id, 1) {
			t.Fatalf("sender %d: first datagram rejected", id)
		}
	}
	// Touch sender 0, so sender 1 is now the least recently seen.
	if !tab.accept(0, 2) {
		t.Fatal("sender 0, sequence 2")
	}
	if !tab.accept(MaxSenders, 1) { // a new sender evicts sender 1
		t.Fatal("new sender")
	}
	if len(tab.entries) != MaxSenders || len(tab.index) != MaxSenders {
		t.Fatalf("%d entries, %d indexed, want %d", len(tab.entries), len(tab.index), MaxSenders)
	}
	if tab.accept(0, 1) || tab.accept(2, 1) {
		t.Error("kept senders forgot their windows")
	}
	if !tab.accept(1, 1) {
		// The documented limit: an evicted sender's old datagram is new again.
		t.Error("evicted sender 1 still remembered")
	}
	// And the list stays consistent: walk it both ways.
	n := 0
	for i := tab.head; i >= 0; i = tab.entries[i].next {
		n++
	}
	m := 0
	for i := tab.tail; i >= 0; i = tab.entries[i].prev {
		m++
	}
	if n != MaxSenders || m != MaxSenders {
		t.Errorf("list lengths %d forward, %d backward, want %d", n, m, MaxSenders)
	}
}
