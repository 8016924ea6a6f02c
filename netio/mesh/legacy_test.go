package mesh

import (
	"bytes"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// headroom mirrors pipeline.Headroom: the free bytes in front of a frame.
const headroom = 64

// inBuffer returns a pipeline-like buffer holding frame at headroom.
func inBuffer(fr []byte) []byte {
	buf := make([]byte, headroom+len(fr))
	copy(buf[headroom:], fr)
	return buf
}

func TestLegacyRoundTrip(t *testing.T) {
	fr := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination
		0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, // Ethernet source
		0x08, 0x00, // EtherType IPv4
		0x45, // and whatever follows: PutLegacy does not look
	}
	buf := inBuffer(fr)
	start := PutLegacy(buf, headroom)
	if start != headroom-2 {
		t.Fatalf("start = %d, want %d", start, headroom-2)
	}
	d := buf[start:]
	if !bytes.Equal(d, append([]byte("SS"), fr...)) {
		t.Fatalf("datagram % x", d)
	}
	if !bytes.Equal(buf[:start], make([]byte, start)) {
		t.Error("PutLegacy wrote before the header")
	}
	got, err := DecodeLegacy(d)
	if err != nil || !bytes.Equal(got, fr) {
		t.Fatalf("DecodeLegacy = % x, %v", got, err)
	}
	if &got[0] != &buf[headroom] {
		t.Error("DecodeLegacy copied the frame")
	}
}

func TestDecodeLegacyErrors(t *testing.T) {
	tests := []struct {
		name string
		d    []byte
		err  error
	}{
		{"empty", nil, ErrShort},
		{"one byte", []byte("S"), ErrShort},
		{"magic only", []byte("SS"), nil},
		{"authenticated", []byte("SN\x01\x00"), ErrBadMagic},
		{"lower case", []byte("ss\xff"), ErrBadMagic},
		{"Ethernet frame without header", []byte{0xff, 0xff, 0xff, 0xff}, ErrBadMagic},
	}
	for _, tt := range tests {
		if _, err := DecodeLegacy(tt.d); err != tt.err {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		d    []byte
		want Format
	}{
		{nil, Unknown},
		{[]byte("S"), Unknown},
		{[]byte("SS"), Legacy},
		{[]byte("SS\xff\xff"), Legacy},
		{[]byte("SN\x01"), Auth},
		{[]byte("NS"), Unknown},
	}
	for _, tt := range tests {
		if got := Kind(tt.d); got != tt.want {
			t.Errorf("Kind(%q) = %v, want %v", tt.d, got, tt.want)
		}
	}
	if Legacy.String() != "legacy" || Auth.String() != "auth" || Unknown.String() != "unknown" {
		t.Error("Format strings")
	}
}

// TestLegacyVectors checks PutLegacy against the Python relay: for every
// client broadcast r1 relayed in the segment-A captures, the legacy datagram
// we build in place must equal the UDP payload of the mesh datagram r1 sent
// next. Python reads at most 1024 bytes of a frame, so for longer frames
// (packets 3 and 4: 1042 and 1442 bytes) it sent only "SS" + the first 1024;
// there we check that Python's 1026 bytes are a prefix of ours, and that what
// Python sent does not decode as a frame (its IP total length runs past the
// end): a receiver of ours rejects it instead of re-broadcasting garbage.
func TestLegacyVectors(t *testing.T) {
	tests := []struct {
		file  string
		pairs map[int]int // client frame index -> mesh datagram index
	}{
		{"python-relay-segA-capture-and-mesh.pcap", map[int]int{0: 1, 2: 3, 4: 5, 6: 7}},
		{"epics-search-segA-capture-and-mesh.pcap", map[int]int{0: 1, 2: 3, 4: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pkts := frametest.Vector(t, tt.file)
			found := map[int]int{}
			for i := 0; i+1 < len(pkts); i++ {
				var c, m frame.Frame
				if c.Decode(pkts[i]) != nil || m.Decode(pkts[i+1]) != nil {
					continue
				}
				if pkts[i][0] == 0xff && (m.DstPort == 7124 || m.DstPort == 7125) && m.Src != c.Src {
					found[i] = i + 1
				}
			}
			if len(found) != len(tt.pairs) {
				t.Fatalf("found client/mesh pairs %v, want %v", found, tt.pairs)
			}
			for ci, mi := range tt.pairs {
				if found[ci] != mi {
					t.Fatalf("found client/mesh pairs %v, want %v", found, tt.pairs)
				}
				client := pkts[ci]
				var m frame.Frame
				m.Decode(pkts[mi])
				py := m.Payload(pkts[mi])

				buf := inBuffer(client)
				ours := buf[PutLegacy(buf, headroom):]
				if len(client) <= 1024 {
					if !bytes.Equal(ours, py) {
						t.Errorf("packet %d: ours differs from Python's\n ours % x\n   py % x", ci+1, ours, py)
					}
					continue
				}
				if len(py) != 1026 || !bytes.Equal(ours[:1026], py) {
					t.Errorf("packet %d (%d bytes): Python sent %d bytes, want our first 1026", ci+1, len(client), len(py))
				}
				inner, err := DecodeLegacy(py)
				if err != nil {
					t.Fatal(err)
				}
				var f frame.Frame
				if err := f.Decode(inner); err != frame.ErrTruncated {
					t.Errorf("packet %d: Python's cut frame decodes with %v, want %v", ci+1, err, frame.ErrTruncated)
				}
			}
		})
	}
}
