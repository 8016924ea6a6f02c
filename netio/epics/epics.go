// Package epics decodes, best-effort, the EPICS discovery datagrams a relay
// carries: PVAccess search requests and beacons (UDP 5076) and Channel Access
// search requests and beacons (UDP 5064, 5065).
//
// The decoders only observe. Nothing they return decides whether a datagram
// is relayed: a payload that does not decode is still relayed untouched, as
// the Python relay would. They trust no length field, allocate nothing, and
// keep offsets into the caller's buffer rather than copies, so a Datagram's
// names are valid only while that buffer is.
//
// Wire formats, from the protocol specifications and the captures in
// testdata/vectors (pvget, pvxget and caget searching for EP:TEMP):
//
//   - PVAccess: every message starts with an 8-byte header: magic 0xCA,
//     version, flags (bit 0: control message, bit 6: sent by a server, bit 7:
//     big-endian), command, and a 32-bit payload size in the byte order the
//     flags give. A datagram may hold several messages back to back.
//   - Channel Access: every message starts with a 16-byte big-endian header:
//     command, payload size, data type, data count, parameter 1, parameter 2;
//     a payload size of 0xFFFF with a data count of 0 announces an extended
//     header with 32-bit size and count. A search datagram starts with a
//     CA_PROTO_VERSION message followed by one CA_PROTO_SEARCH per name.
package epics

import (
	"errors"
	"net/netip"
)

// Protocol is the EPICS protocol of a datagram.
type Protocol uint8

// Protocols.
const (
	Unknown Protocol = iota
	PVA              // PVAccess
	CA               // Channel Access
)

// String returns the protocol's stable label value: "pva", "ca" or "unknown".
func (p Protocol) String() string {
	switch p {
	case PVA:
		return "pva"
	case CA:
		return "ca"
	}
	return "unknown"
}

// Decoding errors. ErrNotPVA and ErrNotCA mean the payload is not the
// protocol at all; the others that it is, but broken.
var (
	ErrNotPVA    = errors.New("epics: not a PVAccess message")
	ErrNotCA     = errors.New("epics: not a Channel Access message")
	ErrTruncated = errors.New("epics: message cut short")
	ErrBadString = errors.New("epics: string or count out of range")
)

// MaxNames is the most names one Datagram records; further names in the same
// datagram are counted in Datagram.Dropped but not recorded. A 1500-byte
// frame holds about 60 short PVAccess names.
const MaxNames = 64

// span locates a name in the decoded buffer.
type span struct{ off, n int32 }

// A Datagram is what one UDP payload held. Reuse one value for many
// datagrams: decoding resets it and allocates nothing.
type Datagram struct {
	// Proto is the protocol the payload was decoded as.
	Proto Protocol
	// Searches counts the search request messages.
	Searches int
	// Beacons counts the server beacons.
	Beacons int
	// Replies counts search replies: servers answering, which are sent by
	// unicast and so reach a relay only when misdirected.
	Replies int
	// Seq is the first search's sequence number (PVAccess) or client
	// channel id (Channel Access).
	Seq uint32
	// Reply is where the first PVAccess search asks for replies; an
	// unspecified address means "the datagram's IP source". Invalid for
	// Channel Access, whose replies always go to the source.
	Reply netip.AddrPort
	// Server is the address the last beacon announces (for Channel Access
	// an unspecified address means "the datagram's IP source").
	Server netip.AddrPort
	// Dropped counts names beyond MaxNames.
	Dropped int

	buf   []byte
	names [MaxNames]span
	n     int
}

func (d *Datagram) reset(p Protocol, b []byte) {
	*d = Datagram{Proto: p, buf: b}
}

// Names is the number of names recorded.
func (d *Datagram) Names() int { return d.n }

// Name returns the i-th name searched for, a subslice of the decoded payload.
func (d *Datagram) Name(i int) []byte {
	s := d.names[i]
	return d.buf[s.off : s.off+s.n]
}

// addName records b[off:off+n]; empty names are not recorded.
func (d *Datagram) addName(off, n int) {
	if n == 0 {
		return
	}
	if d.n == MaxNames {
		d.Dropped++
		return
	}
	d.names[d.n] = span{int32(off), int32(n)}
	d.n++
}

// Decode decodes b as PVAccess if it starts with the PVAccess magic byte,
// as Channel Access otherwise.
func (d *Datagram) Decode(b []byte) error {
	if len(b) > 0 && b[0] == pvaMagic {
		return d.DecodePVA(b)
	}
	return d.DecodeCA(b)
}
