package epics_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/snowsignal/snowsignal/netio/epics"
	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// decoded is what a test expects from one datagram.
type decoded struct {
	Proto    epics.Protocol
	Searches int
	Beacons  int
	Replies  int
	Seq      uint32
	Reply    netip.AddrPort
	Server   netip.AddrPort
	Names    []string
	Err      error
}

func decode(b []byte) decoded {
	var d epics.Datagram
	err := d.Decode(b)
	out := decoded{Proto: d.Proto, Searches: d.Searches, Beacons: d.Beacons, Replies: d.Replies,
		Seq: d.Seq, Reply: d.Reply, Server: d.Server, Err: err}
	for i := range d.Names() {
		out.Names = append(out.Names, string(d.Name(i)))
	}
	return out
}

// payloads returns the UDP payloads of the named vector's frames.
func payloads(t testing.TB, name string) [][]byte {
	t.Helper()
	var out [][]byte
	for i, b := range frametest.Vector(t, name) {
		var f frame.Frame
		if err := f.Decode(b); err != nil {
			t.Fatalf("%s packet %d: %v", name, i+1, err)
		}
		out = append(out, f.Payload(b))
	}
	return out
}

// The searches of pvget (pvAccessCPP, little-endian), pvxget (PVXS,
// big-endian, two names) and caget, as captured in testdata/vectors.
var (
	wantPvget = decoded{Proto: epics.PVA, Searches: 1, Seq: 1,
		Reply: netip.MustParseAddrPort("0.0.0.0:35579"), Names: []string{"EP:TEMP"}}
	wantPvxget = decoded{Proto: epics.PVA, Searches: 1, Seq: 0x66696e64, // "find"
		Reply: netip.MustParseAddrPort("[::]:54620"), Names: []string{"EP:TEMP", "EP:COUNT"}}
	wantCaget = decoded{Proto: epics.CA, Searches: 1, Seq: 1, Names: []string{"EP:TEMP"}}
)

func TestVectors(t *testing.T) {
	segA := payloads(t, "epics-search-segA-capture-and-mesh.pcap")
	// Client broadcasts are packets 1, 3 and 5; the others are the Python
	// relay's mesh datagrams ("SS" + frame), which are neither protocol.
	for i, want := range map[int]decoded{0: wantPvget, 2: wantPvxget, 4: wantCaget} {
		if got := decode(segA[i]); !reflect.DeepEqual(got, want) {
			t.Errorf("segA packet %d:\n got %+v\nwant %+v", i+1, got, want)
		}
	}
	for _, i := range []int{1, 3, 5} {
		if got := decode(segA[i]); !errors.Is(got.Err, epics.ErrNotCA) || got.Searches != 0 {
			t.Errorf("segA packet %d (mesh datagram): got %+v, want ErrNotCA and no search", i+1, got)
		}
	}

	segB := payloads(t, "epics-search-segB-rebroadcast.pcap")
	if len(segB) != 4 {
		t.Fatalf("segB: %d packets, want 4", len(segB))
	}
	for i, want := range []decoded{wantPvget, wantPvxget, wantCaget} {
		if got := decode(segB[i]); !reflect.DeepEqual(got, want) {
			t.Errorf("segB packet %d:\n got %+v\nwant %+v", i+1, got, want)
		}
	}
	// The Channel Access server's unicast answer: a version message and a
	// CA_PROTO_SEARCH with data count 0, not a search.
	if got := decode(segB[3]); got.Err != nil || got.Replies != 1 || got.Searches != 0 || len(got.Names) != 0 {
		t.Errorf("segB packet 4 (CA reply): got %+v, want one reply", got)
	}
}

// pvaHeader builds a PVAccess message header.
func pvaHeader(flags, cmd byte, size uint32) []byte {
	h := []byte{0xCA, 2, flags, cmd, 0, 0, 0, 0}
	if flags&0x80 != 0 {
		binary.BigEndian.PutUint32(h[4:], size)
	} else {
		binary.LittleEndian.PutUint32(h[4:], size)
	}
	return h
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// beaconBody is a little-endian PVAccess beacon body from 10.0.0.5:5075
// with protocol "tcp" and a null server status.
func beaconBody() []byte {
	return cat(
		make([]byte, 12),   // GUID
		[]byte{0, 7, 1, 0}, // flags, beacon sequence id, change count 1
		make([]byte, 10),   // server address: ::ffff:10.0.0.5
		[]byte{0xff, 0xff, 10, 0, 0, 5},
		[]byte{0xd3, 0x13},       // port 5075, little-endian
		[]byte{3, 't', 'c', 'p'}, // protocol
		[]byte{0xff},             // server status: null
	)
}

func TestPVA(t *testing.T) {
	pvget := payloads(t, "epics-search-segA-capture-and-mesh.pcap")[0]
	beacon := beaconBody()
	tests := []struct {
		name string
		b    []byte
		want decoded
	}{
		{"beacon", cat(pvaHeader(0x40, 0x00, uint32(len(beacon))), beacon), decoded{Proto: epics.PVA, Beacons: 1,
			Server: netip.MustParseAddrPort("10.0.0.5:5075")}},
		{"client beacon ignored", cat(pvaHeader(0x00, 0x00, uint32(len(beacon))), beacon), decoded{Proto: epics.PVA}},
		{"server search ignored", cat(pvaHeader(0x40, 0x03, uint32(len(pvget)-8)), pvget[8:]), decoded{Proto: epics.PVA}},
		{"search response counted", cat(pvaHeader(0x40, 0x04, 0)), decoded{Proto: epics.PVA, Replies: 1}},
		{"control message then search", cat(pvaHeader(0x01, 0x02, 0x12345678), pvget), wantPvget},
		{"two searches", cat(pvget, pvget), decoded{Proto: epics.PVA, Searches: 2, Seq: 1,
			Reply: wantPvget.Reply, Names: []string{"EP:TEMP", "EP:TEMP"}}},
		{"bad magic", []byte{0xCB, 2, 0, 3, 0, 0, 0, 0}, decoded{Proto: epics.CA, Err: epics.ErrNotCA}},
		{"second message bad magic", cat(pvget, []byte{0xCB, 2, 0, 3, 0, 0, 0, 0}), decoded{Proto: epics.PVA,
			Searches: 1, Seq: 1, Reply: wantPvget.Reply, Names: []string{"EP:TEMP"}, Err: epics.ErrNotPVA}},
		{"header cut", pvget[:7], decoded{Proto: epics.PVA, Err: epics.ErrTruncated}},
		{"payload size beyond the datagram", pvget[:len(pvget)-1], decoded{Proto: epics.PVA, Err: epics.ErrTruncated}},
		{"search body shorter than its fixed part", cat(pvaHeader(0, 3, 25), make([]byte, 25)),
			decoded{Proto: epics.PVA, Err: epics.ErrTruncated}},
		{"name longer than the body", func() []byte {
			b := cat(pvget)
			b[len(b)-8] = 8 // "EP:TEMP" claims 8 bytes
			return b
		}(), decoded{Proto: epics.PVA, Searches: 1, Seq: 1, Reply: wantPvget.Reply, Err: epics.ErrBadString}},
		{"protocol count beyond the body", func() []byte {
			b := cat(pvget)
			b[8+26] = 0xFE // 32-bit count follows
			binary.LittleEndian.PutUint32(b[8+27:], 0xFFFFFFFF)
			return b
		}(), decoded{Proto: epics.PVA, Searches: 1, Seq: 1, Reply: wantPvget.Reply, Err: epics.ErrBadString}},
		{"null protocols, no channels", cat(pvaHeader(0, 3, 29), make([]byte, 26), []byte{0xFF, 0, 0}),
			decoded{Proto: epics.PVA, Searches: 1, Reply: netip.MustParseAddrPort("[::]:0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decode(tt.b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// caHeader builds a Channel Access message header.
func caHeader(cmd, size, dataType, count uint16, p1, p2 uint32) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], cmd)
	binary.BigEndian.PutUint16(h[2:], size)
	binary.BigEndian.PutUint16(h[4:], dataType)
	binary.BigEndian.PutUint16(h[6:], count)
	binary.BigEndian.PutUint32(h[8:], p1)
	binary.BigEndian.PutUint32(h[12:], p2)
	return h
}

func TestCA(t *testing.T) {
	version := caHeader(0, 0, 1, 13, 1, 0)
	search := func(name string, cid uint32) []byte {
		body := make([]byte, (len(name)+1+7)&^7)
		copy(body, name)
		return cat(caHeader(6, uint16(len(body)), 5, 13, cid, cid), body)
	}
	tests := []struct {
		name string
		b    []byte
		want decoded
	}{
		{"three names", cat(version, search("A", 7), search("B:C", 8), search("DDDDDDDD", 9)),
			decoded{Proto: epics.CA, Searches: 3, Seq: 7, Names: []string{"A", "B:C", "DDDDDDDD"}}},
		{"beacon", caHeader(13, 0, 13, 5064, 42, 0x0a000005), decoded{Proto: epics.CA, Beacons: 1,
			Server: netip.MustParseAddrPort("10.0.0.5:5064")}},
		{"name without NUL", cat(caHeader(6, 3, 5, 13, 1, 1), []byte("XYZ")),
			decoded{Proto: epics.CA, Searches: 1, Seq: 1, Names: []string{"XYZ"}}},
		{"extended header", cat(caHeader(6, 0xFFFF, 5, 0, 1, 1), []byte{0, 0, 0, 8, 0, 0, 0, 13}, []byte("LONG\x00\x00\x00\x00")),
			decoded{Proto: epics.CA, Replies: 1}}, // data count 0 in the short header: the count field says nothing here
		{"header cut", version[:15], decoded{Proto: epics.CA, Err: epics.ErrTruncated}},
		{"payload beyond the datagram", cat(version, search("A", 1)[:20]), decoded{Proto: epics.CA, Err: epics.ErrTruncated}},
		{"extended header cut", caHeader(6, 0xFFFF, 5, 0, 1, 1), decoded{Proto: epics.CA, Err: epics.ErrTruncated}},
		{"not CA", []byte("hello, world, this is text"), decoded{Proto: epics.CA, Err: epics.ErrNotCA}},
		{"empty", nil, decoded{Proto: epics.CA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decode(tt.b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMaxNames(t *testing.T) {
	var b []byte
	for i := range epics.MaxNames + 3 {
		h := caHeader(6, 8, 5, 13, uint32(i), uint32(i))
		b = cat(b, h, []byte("PV\x00\x00\x00\x00\x00\x00"))
	}
	var d epics.Datagram
	if err := d.DecodeCA(b); err != nil {
		t.Fatal(err)
	}
	if d.Searches != epics.MaxNames+3 || d.Names() != epics.MaxNames || d.Dropped != 3 {
		t.Errorf("searches %d, names %d, dropped %d; want %d, %d, 3", d.Searches, d.Names(), d.Dropped, epics.MaxNames+3, epics.MaxNames)
	}
}

func TestDecodeAllocs(t *testing.T) {
	segA := payloads(t, "epics-search-segA-capture-and-mesh.pcap")
	var d epics.Datagram
	for _, i := range []int{0, 2, 4} {
		if n := testing.AllocsPerRun(1000, func() { d.Decode(segA[i]) }); n != 0 {
			t.Errorf("packet %d: %v allocations per decode, want 0", i+1, n)
		}
	}
}
