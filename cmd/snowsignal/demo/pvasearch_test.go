package demo

import (
	"bytes"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// TestPVASearchMatchesPvget: the demo's search is byte for byte the one
// pvget sent in the EPICS vector, given the same sequence number, port and
// channel ID.
func TestPVASearchMatchesPvget(t *testing.T) {
	frames := frametest.Vector(t, "epics-search-segA-capture-and-mesh.pcap")
	src, _, want, ok := netlab.Frame{Data: frames[0]}.UDP()
	if !ok {
		t.Fatal("vector packet 1 is not a UDP frame")
	}
	// pvget's sequence number and channel ID, read from the capture.
	got := pvaSearch(1, src.Port(), 0x10203041, "EP:TEMP")
	if !bytes.Equal(got, want) {
		t.Errorf("pvaSearch:\n got %x\nwant %x", got, want)
	}
}
