//go:build linux

package rewrite

import (
	"reflect"
	"testing"

	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/stagetest"
)

// TestObserver: the observer sees each batch once, with the frames kept,
// and, only while it traces, every drop with its reason and peer.
func TestObserver(t *testing.T) {
	batches := [][]dgram{
		{{peerA, legacy(search("10.77.0.255:5076", "a"))}, {stranger, legacy(search("10.77.0.255:5076", "b"))},
			{peerA, legacy(search("10.77.0.255:5077", "c"))}},
		{{peerC, legacy(search("255.255.255.255:5076", "d"))}},
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
			want.Drops = []string{"unknown_peer from " + stranger.String(), "wrong_port from " + peerA.String()}
		}
		if !reflect.DeepEqual(o, want) {
			t.Errorf("tracing %v: observer saw %+v, want %+v", tracing, o, want)
		}
		if r.m.Drops(pipeline.ReasonUnknownPeer) != 1 || r.m.Drops(pipeline.ReasonWrongPort) != 1 {
			t.Errorf("tracing %v: drops unknown_peer %d, wrong_port %d, want 1 and 1", tracing,
				r.m.Drops(pipeline.ReasonUnknownPeer), r.m.Drops(pipeline.ReasonWrongPort))
		}
	}
}
