package frame_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

// addSeeds adds every table-test frame and every captured vector to f's
// corpus; the same seeds also live in testdata/fuzz/<FuzzName>/.
func addSeeds(f *testing.F, add func(b []byte)) {
	for _, tt := range decodeTests {
		add(tt.b)
	}
	for _, name := range []string{pySegA, pySegB, epicsSegA, epicsSegB} {
		for _, b := range frametest.Vector(f, name) {
			add(b)
		}
	}
}

// FuzzDecode checks that Decode never panics, never claims bytes beyond the
// buffer, and that a decoded frame survives FixChecksums: it decodes again
// to the same Frame, and its checksums verify.
func FuzzDecode(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame.Frame
		if err := fr.Decode(b); err != nil {
			if _, ok := err.(frame.DecodeError); !ok {
				t.Fatalf("error %T is not a DecodeError", err)
			}
			return
		}
		if fr.Len() > len(b) || fr.Len() < frame.EthLen+fr.IHL {
			t.Fatalf("Len() = %d, len(b) = %d, IHL %d", fr.Len(), len(b), fr.IHL)
		}
		if p := fr.Payload(b); len(p) > fr.IPLen {
			t.Fatalf("payload of %d bytes in an IP datagram of %d", len(p), fr.IPLen)
		}
		b = bytes.Clone(b)
		fr.FixChecksums(b)
		var again frame.Frame
		if err := again.Decode(b); err != nil {
			t.Fatalf("after FixChecksums: %v", err)
		}
		if again != fr {
			t.Fatalf("after FixChecksums:\n got %+v\nwant %+v", again, fr)
		}
		if ip, udp := checksumsValid(b, &fr); !ip || !udp {
			t.Fatalf("after FixChecksums: IP valid %v, UDP valid %v", ip, udp)
		}
	})
}

// FuzzRewrite runs the inbound rewrite on every frame that decodes: Ethernet
// broadcast from our MAC, a new IPv4 destination, checksums completed. The
// result must decode to the same datagram with the new destination, valid
// checksums and the payload untouched. It also checks that SetDst on a
// frame with complete checksums leaves them valid without FixChecksums.
func FuzzRewrite(f *testing.F) {
	addSeeds(f, func(b []byte) {
		f.Add(b, uint32(0xffffffff), uint64(0xb20481e11509))
		f.Add(b, uint32(0x0a4d00ff), uint64(0))
	})
	f.Fuzz(func(t *testing.T, b []byte, dst32 uint32, mac64 uint64) {
		var fr frame.Frame
		if fr.Decode(b) != nil {
			return
		}
		var mac [6]byte
		binary.BigEndian.PutUint16(mac[0:], uint16(mac64>>32))
		binary.BigEndian.PutUint32(mac[2:], uint32(mac64))
		var d [4]byte
		binary.BigEndian.PutUint32(d[:], dst32)
		dst := netip.AddrFrom4(d)

		b = bytes.Clone(b)
		payload := bytes.Clone(fr.Payload(b))
		want := fr
		want.Dst = dst

		frame.SetBroadcastEthernet(b, mac)
		fr.SetDst(b, dst)
		fr.FixChecksums(b)

		var got frame.Frame
		if err := got.Decode(b); err != nil {
			t.Fatalf("rewritten frame: %v", err)
		}
		if got != want {
			t.Fatalf("rewritten frame:\n got %+v\nwant %+v", got, want)
		}
		if !bytes.Equal(got.Payload(b), payload) {
			t.Fatal("payload changed")
		}
		if !bytes.Equal(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) || !bytes.Equal(b[6:12], mac[:]) {
			t.Fatalf("Ethernet addresses % x", b[:12])
		}
		if ip, udp := checksumsValid(b, &got); !ip || !udp {
			t.Fatalf("checksums: IP valid %v, UDP valid %v", ip, udp)
		}

		// Incremental update from complete checksums: rewrite to yet
		// another destination without FixChecksums.
		binary.BigEndian.PutUint32(d[:], dst32^0x5a5a0001)
		got.SetDst(b, netip.AddrFrom4(d))
		if ip, udp := checksumsValid(b, &got); !ip || !udp {
			t.Fatalf("after incremental SetDst: IP valid %v, UDP valid %v", ip, udp)
		}
	})
}
