package frame_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// addSeeds6 adds every IPv6 table-test frame (truncated headers, extension
// header chains, payload length beyond the buffer, jumbograms, fragment
// cases: see decode6Tests) and the frames below to f's corpus.
func addSeeds6(add func(b []byte)) {
	for _, tt := range decode6Tests {
		add(tt.b)
	}
	u := base6()
	u.Payload = make([]byte, 2500)
	for i := range u.Payload {
		u.Payload[i] = byte(i)
	}
	// Every fragment of a datagram, as a kernel sends it.
	for _, b := range frametest.Fragments6(u.Frame(), 1232, 0x8000_0001) {
		add(b)
	}
	// The same with a hop-by-hop header in the unfragmentable part.
	u.Ext = []frametest.ExtHeader{{Type: 0, Body: []byte{0x05, 0x02, 0, 0, 0x01, 0x00}}}
	for _, b := range frametest.Fragments6(u.Frame(), 1000, 7) {
		add(b)
	}
	// Destination options of 2048 bytes (length 255), the longest there is.
	u.Ext = []frametest.ExtHeader{{Type: 60, Body: append([]byte{0x01, 0xff}, make([]byte, 2044)...)}}
	u.Payload = payload16
	add(u.Frame())
	// A routing header with segments left 0, a destination options header
	// and an atomic fragment, in RFC 8200 order.
	u.Ext = []frametest.ExtHeader{
		{Type: 43, Body: []byte{4, 0, 0, 0, 0, 0}},
		{Type: 60, Body: []byte{0x01, 0x04, 0, 0, 0, 0}},
		{Type: 44, Body: []byte{0, 0, 0xca, 0xfe, 0xba, 0xbe}},
	}
	add(u.Frame())
	// Padding after a minimal datagram.
	add(cat(eth6, ip6(8, 17), udp8(8), make([]byte, 30)))
	// A search with the payload length one byte short of what is there.
	add(cat(eth6, ip6(23, 17), udp8(24), payload16))
}

// FuzzDecode6 checks that Decode6 and DecodeIP never panic, agree, return
// only DecodeError values, never claim bytes beyond the buffer, and that a
// decoded frame survives FixChecksums: it decodes again to the same Frame,
// and an unfragmented datagram's checksum then verifies.
func FuzzDecode6(f *testing.F) {
	addSeeds6(func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr, ip frame.Frame
		err := fr.Decode6(b)
		if errIP := ip.DecodeIP(b); err != frame.ErrNotIPv6 && (errIP != err || ip != fr) {
			t.Fatalf("DecodeIP = %+v, %v; Decode6 = %+v, %v", ip, errIP, fr, err)
		}
		if err != nil {
			if _, ok := err.(frame.DecodeError); !ok {
				t.Fatalf("error %T is not a DecodeError", err)
			}
			return
		}
		if !fr.IPv6 || fr.Proto != frame.ProtoUDP || fr.Len() > len(b) || fr.IHL < frame.IPv6HdrLen || frame.EthLen+fr.IHL > fr.Len() {
			t.Fatalf("Frame %+v, len(b) = %d", fr, len(b))
		}
		if fr.HasUDPHeader() && frame.EthLen+fr.IHL+frame.UDPLen > fr.Len() {
			t.Fatalf("UDP header past the datagram: %+v", fr)
		}
		if p := fr.Payload(b); len(p) > fr.IPLen {
			t.Fatalf("payload of %d bytes in an IP datagram of %d", len(p), fr.IPLen)
		}
		b = bytes.Clone(b)
		fr.FixChecksums(b)
		var again frame.Frame
		if err := again.Decode6(b); err != nil || again != fr {
			t.Fatalf("after FixChecksums: %+v, %v; want %+v", again, err, fr)
		}
		if !fr.IsFragment() && !udp6Valid(b, &fr) {
			t.Fatal("after FixChecksums: UDP checksum does not verify")
		}
	})
}

// FuzzRewrite6 runs the inbound IPv6 rewrite on every frame that decodes:
// Ethernet to the group's MAC from our MAC, checksum completed. The result
// must decode to the same datagram, with source, ports, hop limit and
// payload untouched and a valid checksum, and keep its keys.
func FuzzRewrite6(f *testing.F) {
	addSeeds6(func(b []byte) {
		f.Add(b, uint64(0xb20481e11509))
		f.Add(b, uint64(0))
	})
	f.Fuzz(func(t *testing.T, b []byte, mac64 uint64) {
		var fr frame.Frame
		if fr.Decode6(b) != nil {
			return
		}
		var mac [6]byte
		binary.BigEndian.PutUint16(mac[0:], uint16(mac64>>32))
		binary.BigEndian.PutUint32(mac[2:], uint32(mac64))
		b = bytes.Clone(b)
		payload := bytes.Clone(fr.Payload(b))
		hop, sk := fr.HopLimit(b), fr.StableKey(b)
		want := fr

		frame.SetMulticastEthernet(b, fr.Dst, mac)
		fr.FixChecksums(b)

		var got frame.Frame
		if err := got.Decode6(b); err != nil || got != want {
			t.Fatalf("rewritten frame: %+v, %v; want %+v", got, err, want)
		}
		if !bytes.Equal(got.Payload(b), payload) || got.HopLimit(b) != hop {
			t.Fatal("payload or hop limit changed")
		}
		group := frame.MulticastMAC(got.Dst)
		if !bytes.Equal(b[0:6], group[:]) || !bytes.Equal(b[6:12], mac[:]) {
			t.Fatalf("Ethernet addresses % x", b[:12])
		}
		if !got.IsFragment() && !udp6Valid(b, &got) {
			t.Fatal("UDP checksum does not verify")
		}
		if got.StableKey(b) != sk {
			t.Fatal("StableKey changed with the rewrite")
		}
		if netip.AddrFrom16([16]byte(b[22:38])) != want.Src {
			t.Fatal("source changed")
		}
	})
}
