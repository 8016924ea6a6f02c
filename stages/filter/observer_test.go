package filter

import (
	"reflect"
	"testing"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/stagetest"
)

func TestObserver(t *testing.T) {
	batches := [][][]byte{
		{search("", "10.77.0.255:5076", "a"), search("", "10.77.0.255:5077", "b"), search("127.0.0.1", "10.77.0.255:5076", "c")},
		{search("", "10.77.0.255:5064", "d")},
	}
	for _, tracing := range []bool{true, false} {
		r := newRig(t)
		o := &stagetest.Recorder{Trace: tracing}
		r.cfg.Observer = o
		if got := r.run(batches...); len(got) != 2 {
			t.Fatalf("tracing %v: %d frames passed, want 2", tracing, len(got))
		}
		want := &stagetest.Recorder{Trace: tracing, Batches: 2, Passed: []int{1, 1}}
		if tracing {
			want.Drops = []string{"wrong_port", "bad_source"}
		}
		if !reflect.DeepEqual(o, want) {
			t.Errorf("tracing %v: observer saw %+v, want %+v", tracing, o, want)
		}
		// Counting does not depend on tracing.
		r.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonWrongPort: 1, pipeline.ReasonBadSource: 1})
	}
}

// countingObserver counts without allocating.
type countingObserver struct{ drops, kept int }

func (o *countingObserver) Tracing() bool                             { return true }
func (o *countingObserver) Dropped(*pipeline.Packet, pipeline.Reason) { o.drops++ }
func (o *countingObserver) Kept(b *pipeline.Batch)                    { o.kept += len(b.Pkts) }

func TestObserverAllocatesNothing(t *testing.T) {
	r := newRig(t)
	o := &countingObserver{}
	r.cfg.Observer = o
	st := New(r.cfg, nil, nil, r.m.Stage("filter"), r.m, nil, nil, r.seed)
	st.rules.Begin(0, 0) // asks the observer: it traces
	p := &pipeline.Packet{Buf: make([]byte, pipeline.Headroom+2048), Off: pipeline.Headroom}
	p.Len = copy(p.Buf[p.Off:], search("", "10.77.0.255:5077", "x")) // wrong port: dropped, traced
	if err := p.Frame.Decode(p.Bytes()); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { st.keep(p) }); n != 0 {
		t.Errorf("%v allocations per traced drop", n)
	}
	if o.drops == 0 {
		t.Error("the observer was not told of the drops")
	}
}
