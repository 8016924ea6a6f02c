// Package frametest helps tests that handle Ethernet/IPv4/UDP frames: it
// reads the captured vectors in testdata/vectors and builds valid frames,
// whole or fragmented.
package frametest

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/snowsignal/snowsignal/netio/frame"
)

// ReadPcap returns the Ethernet frames of the pcap file at path, in order,
// each in its own slice. It fails the test if the file cannot be read, is not
// an Ethernet capture, or holds a packet cut by the snap length.
func ReadPcap(t testing.TB, path string) [][]byte {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r, err := pcapgo.NewReader(fh)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	var frames [][]byte
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", path, len(frames)+1, err)
		}
		if ci.CaptureLength != ci.Length {
			t.Fatalf("%s: packet %d: captured %d of %d bytes", path, len(frames)+1, ci.CaptureLength, ci.Length)
		}
		frames = append(frames, data)
	}
}

// VectorsDir returns the repository's testdata/vectors directory, found by
// walking up from the working directory (a package directory under go test)
// to the directory holding go.mod.
func VectorsDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "vectors")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Vector returns the frames of the named capture in testdata/vectors, e.g.
// Vector(t, "python-relay-segA-capture-and-mesh.pcap").
func Vector(t testing.TB, name string) [][]byte {
	t.Helper()
	return ReadPcap(t, filepath.Join(VectorsDir(t), name))
}

// UDP describes an Ethernet/IPv4/UDP frame to build.
type UDP struct {
	DstMAC, SrcMAC [6]byte        // Ethernet addresses; zero values are fine
	Src, Dst       netip.AddrPort // IPv4 addresses and UDP ports
	TTL            uint8          // 0 means 64
	ID             uint16         // IPv4 identification
	DF             bool           // set the "don't fragment" flag
	Options        []byte         // IPv4 options; length a multiple of 4, at most 40
	Payload        []byte         // UDP payload
	Pad            int            // bytes of zero padding after the datagram
}

// Frame returns the frame u describes, with valid IPv4 and UDP checksums.
// It panics if the frame cannot be expressed (options too long, datagram
// larger than 65535 bytes, non-IPv4 addresses).
func (u UDP) Frame() []byte {
	if len(u.Options)%4 != 0 || len(u.Options) > 40 {
		panic("frametest: bad IPv4 options length")
	}
	ihl := frame.IPv4MinLen + len(u.Options)
	udpLen := frame.UDPLen + len(u.Payload)
	ipLen := ihl + udpLen
	if ipLen > frame.MaxDatagram {
		panic("frametest: datagram too large")
	}
	b := make([]byte, frame.EthLen+ipLen+u.Pad)
	copy(b[0:6], u.DstMAC[:])
	copy(b[6:12], u.SrcMAC[:])
	binary.BigEndian.PutUint16(b[12:], frame.EtherTypeIPv4)
	ip := b[frame.EthLen:]
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	binary.BigEndian.PutUint16(ip[4:], u.ID)
	if u.DF {
		ip[6] = 0x40
	}
	ip[8] = u.TTL
	if ip[8] == 0 {
		ip[8] = 64
	}
	ip[9] = frame.ProtoUDP
	src, dst := u.Src.Addr().As4(), u.Dst.Addr().As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	copy(ip[20:], u.Options)
	udp := ip[ihl:]
	binary.BigEndian.PutUint16(udp[0:], u.Src.Port())
	binary.BigEndian.PutUint16(udp[2:], u.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[frame.UDPLen:], u.Payload)
	var f frame.Frame
	if err := f.Decode(b); err != nil {
		panic("frametest: built frame does not decode: " + err.Error())
	}
	f.FixChecksums(b)
	return b
}

// Fragments splits the valid unfragmented frame whole into IPv4 fragments
// carrying at most maxPayload bytes of IP payload each (rounded down to a
// multiple of 8), as a sending kernel would: each fragment repeats the
// Ethernet and IPv4 headers (options included) with its own offset, "more
// fragments" flag, total length and header checksum. The UDP header and its
// checksum, computed over the whole datagram, travel in the first fragment.
func Fragments(whole []byte, maxPayload int) [][]byte {
	var f frame.Frame
	if err := f.Decode(whole); err != nil || f.IsFragment() {
		panic("frametest: Fragments needs a valid unfragmented frame")
	}
	maxPayload &^= 7
	if maxPayload <= 0 {
		panic("frametest: maxPayload below 8")
	}
	hdr := whole[:frame.EthLen+f.IHL]
	data := whole[frame.EthLen+f.IHL : f.Len()]
	var frags [][]byte
	for off := 0; off < len(data); off += maxPayload {
		end := min(off+maxPayload, len(data))
		b := make([]byte, 0, len(hdr)+end-off)
		b = append(b, hdr...)
		b = append(b, data[off:end]...)
		ip := b[frame.EthLen:]
		binary.BigEndian.PutUint16(ip[2:], uint16(f.IHL+end-off))
		ff := binary.BigEndian.Uint16(ip[6:])&0x4000 | uint16(off/8)
		if end < len(data) {
			ff |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], ff)
		var g frame.Frame
		if err := g.Decode(b); err != nil {
			panic("frametest: fragment does not decode: " + err.Error())
		}
		g.FixChecksums(b) // IPv4 header only: fragments keep the UDP checksum
		frags = append(frags, b)
	}
	return frags
}

// ExtHeader is an IPv6 extension header for UDP6 to insert: its type (the
// next-header value that announces it) and its bytes after the next-header
// and length bytes, which UDP6 fills in. 2+len(Body) must be a multiple of 8.
type ExtHeader struct {
	Type uint8
	Body []byte
}

// UDP6 describes an Ethernet/IPv6/UDP frame to build.
type UDP6 struct {
	DstMAC, SrcMAC [6]byte        // Ethernet addresses; zero values are fine
	Src, Dst       netip.AddrPort // IPv6 addresses and UDP ports
	HopLimit       uint8          // 0 means 1, the default for multicast
	FlowLabel      uint32         // low 20 bits used
	Ext            []ExtHeader    // extension headers between IPv6 and UDP
	Payload        []byte         // UDP payload
	Pad            int            // bytes of zero padding after the datagram
}

// Frame returns the frame u describes, with a valid UDP checksum. It panics
// if the frame cannot be expressed.
func (u UDP6) Frame() []byte {
	ext := 0
	for _, e := range u.Ext {
		if (2+len(e.Body))%8 != 0 {
			panic("frametest: extension header length not a multiple of 8")
		}
		ext += 2 + len(e.Body)
	}
	udpLen := frame.UDPLen + len(u.Payload)
	plen := ext + udpLen
	if plen > frame.MaxDatagram {
		panic("frametest: datagram too large")
	}
	b := make([]byte, frame.EthLen+frame.IPv6HdrLen+plen+u.Pad)
	copy(b[0:6], u.DstMAC[:])
	copy(b[6:12], u.SrcMAC[:])
	binary.BigEndian.PutUint16(b[12:], frame.EtherTypeIPv6)
	ip := b[frame.EthLen:]
	binary.BigEndian.PutUint32(ip[0:], 6<<28|u.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(ip[4:], uint16(plen))
	ip[7] = u.HopLimit
	if ip[7] == 0 {
		ip[7] = 1
	}
	src, dst := u.Src.Addr().As16(), u.Dst.Addr().As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	nh, off := 6, frame.IPv6HdrLen // where the next-header byte to fill is
	for _, e := range u.Ext {
		ip[nh] = e.Type
		ip[off+1] = byte((2+len(e.Body))/8 - 1)
		if e.Type == 44 {
			ip[off+1] = 0 // reserved in the fragment header
		}
		copy(ip[off+2:], e.Body)
		nh, off = off, off+2+len(e.Body)
	}
	ip[nh] = frame.ProtoUDP
	udp := ip[off:]
	binary.BigEndian.PutUint16(udp[0:], u.Src.Port())
	binary.BigEndian.PutUint16(udp[2:], u.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[frame.UDPLen:], u.Payload)
	var f frame.Frame
	if err := f.Decode6(b); err != nil {
		panic("frametest: built IPv6 frame does not decode: " + err.Error())
	}
	f.FixChecksums(b)
	return b
}

// Fragments6 splits the valid unfragmented IPv6 frame whole into fragments
// carrying at most maxPayload bytes of fragmentable part each (rounded down
// to a multiple of 8), as a sending kernel would: each repeats the Ethernet
// header, the IPv6 header and its extension headers (the unfragmentable
// part), then a fragment header with identification id, then its piece of
// the UDP datagram. The UDP header and its checksum, computed over the whole
// datagram, travel in the first fragment.
func Fragments6(whole []byte, maxPayload int, id uint32) [][]byte {
	var f frame.Frame
	if err := f.Decode6(whole); err != nil || f.IsFragment() {
		panic("frametest: Fragments6 needs a valid unfragmented IPv6 frame")
	}
	maxPayload &^= 7
	if maxPayload <= 0 {
		panic("frametest: maxPayload below 8")
	}
	// The next-header byte announcing UDP: in the IPv6 header, or in the
	// last extension header.
	nh := frame.EthLen + 6
	for off := frame.EthLen + frame.IPv6HdrLen; off < frame.EthLen+f.IHL; {
		nh = off
		off += (int(whole[off+1]) + 1) * 8
	}
	unfrag := whole[:frame.EthLen+f.IHL]
	data := whole[frame.EthLen+f.IHL : f.Len()]
	var frags [][]byte
	for off := 0; off < len(data); off += maxPayload {
		end := min(off+maxPayload, len(data))
		b := make([]byte, 0, len(unfrag)+8+end-off)
		b = append(b, unfrag...)
		b[nh] = 44
		fo := uint16(off/8) << 3
		if end < len(data) {
			fo |= 1
		}
		b = append(b, frame.ProtoUDP, 0, byte(fo>>8), byte(fo), byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
		b = append(b, data[off:end]...)
		binary.BigEndian.PutUint16(b[frame.EthLen+4:], uint16(len(b)-frame.EthLen-frame.IPv6HdrLen))
		var g frame.Frame
		if err := g.Decode6(b); err != nil {
			panic("frametest: IPv6 fragment does not decode: " + err.Error())
		}
		frags = append(frags, b)
	}
	return frags
}
