package epics

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// Channel Access header fields.
const (
	caHeaderLen    = 16
	caExtHeaderLen = 24 // with the 32-bit payload size and data count

	// Channel Access commands seen on the broadcast ports.
	CAVersion    = 0  // CA_PROTO_VERSION, first in every search datagram
	CASearch     = 6  // CA_PROTO_SEARCH
	CABeacon     = 13 // CA_PROTO_RSRV_IS_UP
	caMaxCommand = 63 // above the largest command any CA version defines
)

// DecodeCA decodes the Channel Access messages of the UDP payload b: search
// requests (CA_PROTO_SEARCH from a client), search replies (counted) and
// beacons (CA_PROTO_RSRV_IS_UP); other messages are skipped. It stops at the first message that does not decode
// and returns why; what it found before stays in d.
func (d *Datagram) DecodeCA(b []byte) error {
	d.reset(CA, b)
	for off := 0; off < len(b); {
		h := b[off:]
		if len(h) >= 2 && binary.BigEndian.Uint16(h) > caMaxCommand {
			return ErrNotCA
		}
		if len(h) < caHeaderLen {
			return ErrTruncated
		}
		cmd := binary.BigEndian.Uint16(h[0:])
		size := uint64(binary.BigEndian.Uint16(h[2:]))
		count := uint32(binary.BigEndian.Uint16(h[6:]))
		p1 := binary.BigEndian.Uint32(h[8:])
		p2 := binary.BigEndian.Uint32(h[12:])
		hdr := caHeaderLen
		if size == 0xFFFF && count == 0 {
			if len(b)-off < caExtHeaderLen {
				return ErrTruncated
			}
			size = uint64(binary.BigEndian.Uint32(h[16:]))
			hdr = caExtHeaderLen
		}
		off += hdr
		if size > uint64(len(b)-off) {
			return ErrTruncated
		}
		body := b[off : off+int(size)]
		switch cmd {
		case CASearch:
			if count == 0 {
				// A server's answer: data type is its TCP port, the
				// body its minor version. Clients always send their
				// minor version (4.4 and later) in the data count.
				d.Replies++
				break
			}
			// Data type: reply flag; count: minor version; p1 and p2:
			// the client's channel id. The body is the name, NUL
			// terminated and padded to a multiple of 8.
			d.Searches++
			if d.Searches == 1 {
				d.Seq = p1
			}
			n := bytes.IndexByte(body, 0)
			if n < 0 {
				n = len(body)
			}
			d.addName(off, n)
		case CABeacon:
			// Data type: minor version; count: server port; p1: beacon
			// id; p2: server address (0: the datagram's source).
			d.Beacons++
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], p2)
			d.Server = netip.AddrPortFrom(netip.AddrFrom4(a), uint16(count))
		}
		off += int(size)
	}
	return nil
}
