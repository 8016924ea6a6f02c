package epics

import (
	"encoding/binary"
	"net/netip"
)

// PVAccess header fields.
const (
	pvaMagic     = 0xCA
	pvaHeaderLen = 8

	pvaFlagControl   = 0x01 // a control message: the size field is data, no payload follows
	pvaFlagServer    = 0x40 // sent by a server
	pvaFlagBigEndian = 0x80

	// PVAccess commands seen on the broadcast port.
	PVABeacon         = 0x00
	PVASearchRequest  = 0x03
	PVASearchResponse = 0x04
)

// pvaSearchFixed is the length of a search request's fixed part: sequence
// id (4), flags (1), reserved (3), response address (16), response port (2).
const pvaSearchFixed = 26

// pvaBeaconFixed is the length of a beacon's fixed part: GUID (12), flags
// (1), beacon sequence id (1), change count (2), server address (16),
// server port (2).
const pvaBeaconFixed = 34

// pvaOrder is a PVAccess message's byte order, as given by its flags.
type pvaOrder bool

func (bigEndian pvaOrder) u16(b []byte) uint16 {
	if bigEndian {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (bigEndian pvaOrder) u32(b []byte) uint32 {
	if bigEndian {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// DecodePVA decodes the PVAccess messages of the UDP payload b: search
// requests (command 0x03, from a client), beacons (command 0x00, from a
// server) and search responses (0x04, counted); other messages are skipped. It stops at the first message that
// does not decode and returns why; what it found before stays in d.
func (d *Datagram) DecodePVA(b []byte) error {
	d.reset(PVA, b)
	for off := 0; off < len(b); {
		if len(b)-off < pvaHeaderLen {
			return ErrTruncated
		}
		h := b[off : off+pvaHeaderLen]
		if h[0] != pvaMagic {
			return ErrNotPVA
		}
		flags, cmd := h[2], h[3]
		order := pvaOrder(flags&pvaFlagBigEndian != 0)
		off += pvaHeaderLen
		if flags&pvaFlagControl != 0 {
			continue // e.g. a byte order mark or an origin tag with no body
		}
		size := order.u32(h[4:])
		if uint64(size) > uint64(len(b)-off) {
			return ErrTruncated
		}
		body := b[off : off+int(size)]
		var err error
		switch {
		case cmd == PVASearchRequest && flags&pvaFlagServer == 0:
			err = d.pvaSearch(body, off, order)
		case cmd == PVABeacon && flags&pvaFlagServer != 0:
			err = d.pvaBeacon(body, order)
		case cmd == PVASearchResponse && flags&pvaFlagServer != 0:
			d.Replies++
		}
		if err != nil {
			return err
		}
		off += int(size)
	}
	return nil
}

// pvaSearch decodes a search request body found at base in d.buf:
//
//	int32 searchSequenceID, byte flags, byte[3] reserved,
//	byte[16] responseAddress (IPv6, IPv4-mapped), uint16 responsePort,
//	string[] protocols, uint16 count, count × {int32 instanceID, string name}
func (d *Datagram) pvaSearch(body []byte, base int, order pvaOrder) error {
	if len(body) < pvaSearchFixed {
		return ErrTruncated
	}
	d.Searches++
	if d.Searches == 1 {
		d.Seq = order.u32(body[0:])
		addr := netip.AddrFrom16([16]byte(body[8:24])).Unmap()
		d.Reply = netip.AddrPortFrom(addr, order.u16(body[24:]))
	}
	off := pvaSearchFixed
	protocols, off, err := pvaSize(body, off, order)
	if err != nil {
		return err
	}
	for range protocols {
		if _, off, err = pvaString(body, off, order); err != nil {
			return err
		}
	}
	if len(body)-off < 2 {
		return ErrTruncated
	}
	count := int(order.u16(body[off:]))
	off += 2
	for range count {
		if len(body)-off < 4 {
			return ErrTruncated
		}
		off += 4 // instance id
		var n int
		if n, off, err = pvaString(body, off, order); err != nil {
			return err
		}
		d.addName(base+off-n, n)
	}
	return nil
}

// pvaBeacon decodes a beacon body:
//
//	byte[12] guid, byte flags, byte beaconSequenceID, uint16 changeCount,
//	byte[16] serverAddress, uint16 serverPort, string protocol,
//	FieldDesc serverStatus (optional)
func (d *Datagram) pvaBeacon(body []byte, order pvaOrder) error {
	if len(body) < pvaBeaconFixed {
		return ErrTruncated
	}
	d.Beacons++
	addr := netip.AddrFrom16([16]byte(body[16:32])).Unmap()
	d.Server = netip.AddrPortFrom(addr, order.u16(body[32:]))
	_, _, err := pvaString(body, pvaBeaconFixed, order)
	return err
}

// pvaSize decodes a PVAccess size at b[off:]: one byte below 254, 254
// followed by a 32-bit size, or 255 for null (returned as 0). It returns
// the size and the offset after it; a size larger than what is left of b
// is an error, since every counted element takes at least one byte.
func pvaSize(b []byte, off int, order pvaOrder) (int, int, error) {
	if off >= len(b) {
		return 0, off, ErrTruncated
	}
	var n uint64
	switch s := b[off]; s {
	case 0xFF:
		return 0, off + 1, nil
	case 0xFE:
		if len(b)-off < 5 {
			return 0, off, ErrTruncated
		}
		n = uint64(order.u32(b[off+1:]))
		off += 5
	default:
		n = uint64(s)
		off++
	}
	if n > uint64(len(b)-off) {
		return 0, off, ErrBadString
	}
	return int(n), off, nil
}

// pvaString skips a PVAccess string at b[off:] and returns its length and
// the offset after it; the string's bytes are b[next-n:next].
func pvaString(b []byte, off int, order pvaOrder) (n, next int, err error) {
	if n, off, err = pvaSize(b, off, order); err != nil {
		return 0, off, err
	}
	return n, off + n, nil
}
