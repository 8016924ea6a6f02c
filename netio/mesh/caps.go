package mesh

import "strings"

// Caps are the capabilities a relay announces to other relays: what it can
// receive beyond what every relay, the Python one included, understands.
// Bits a receiver does not know are ignored, so capabilities are added
// without a new format version.
type Caps uint8

// Capabilities.
const (
	// CapIPv6 says the relay relays IPv6: it accepts mesh datagrams that
	// carry Ethernet/IPv6 frames and injects them. A relay sends IPv6
	// frames only to peers that announced it; the Python relay never does,
	// so it never gets one.
	CapIPv6 Caps = 1 << 0

	knownCaps = CapIPv6
)

// Has reports whether c includes every capability in x.
func (c Caps) Has(x Caps) bool { return c&x == x }

// String lists the capabilities, e.g. "ipv6", "none", or "ipv6+0x80" with
// bits this version does not know.
func (c Caps) String() string {
	if c == 0 {
		return "none"
	}
	var parts []string
	if c.Has(CapIPv6) {
		parts = append(parts, "ipv6")
	}
	if u := c &^ knownCaps; u != 0 {
		parts = append(parts, "0x"+hex2(byte(u)))
	}
	return strings.Join(parts, "+")
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// Hello bodies (the segment-local broadcast; see docs/MESH-PROTOCOL.md)
// carry Caps in their flags byte. Relays that predate it send 0 there and
// ignore it on receipt, so setting it is compatible both ways.
const HelloFlagsOffset = 3

// HelloCaps returns the capabilities in the hello body b; none if b is too
// short to be one.
func HelloCaps(b []byte) Caps {
	if len(b) <= HelloFlagsOffset {
		return 0
	}
	return Caps(b[HelloFlagsOffset])
}

// SetHelloCaps writes c into the hello body b, written beforehand by the
// hello encoder.
func SetHelloCaps(b []byte, c Caps) { b[HelloFlagsOffset] = byte(c) }

// The capabilities datagram: a relay's announcement, unicast to each peer at
// its mesh port, because hellos are broadcasts that never leave the segment
// and the peers that receive our captures are on other segments.
//
//	offset  size  field
//	0       2     magic "SC" (CapsMagic)
//	2       1     version, 1 (CapsVersion)
//	3       1     capabilities (Caps)
//	4       4     relay id, big-endian: the id of the sender's hellos
//	8       1     flags: bit 0 = reply wanted (CapsReplyWanted)
//	9       7     zero; ignored on receipt
//
// Without a key it is the whole UDP payload, as a hello is; with a key it
// is sealed like a frame (the body in place of the frame).
const (
	CapsMagic   = "SC" // first bytes of a capabilities body
	CapsVersion = 1    // the capabilities body version this package speaks
	CapsLen     = 16   // length of a capabilities body

	capsOffCaps  = 3
	capsOffID    = 4
	capsOffFlags = 8
)

// CapsReplyWanted in the flags byte asks the receiver to answer with its
// own capabilities at once, so that a relay that just started learns its
// peers' without waiting for their next announcement.
const CapsReplyWanted = 1 << 0

// Announce is what a capabilities body says.
type Announce struct {
	ID        uint32 // the sender's relay id
	Caps      Caps   // what the sender can receive
	WantReply bool   // the sender asks for our capabilities in return
}

// PutCaps writes the capabilities body for a into b, which must hold
// CapsLen bytes, and returns the body.
func PutCaps(b []byte, a Announce) []byte {
	b = b[:CapsLen]
	clear(b)
	b[0], b[1] = CapsMagic[0], CapsMagic[1]
	b[2] = CapsVersion
	b[capsOffCaps] = byte(a.Caps)
	b[capsOffID], b[capsOffID+1], b[capsOffID+2], b[capsOffID+3] = byte(a.ID>>24), byte(a.ID>>16), byte(a.ID>>8), byte(a.ID)
	if a.WantReply {
		b[capsOffFlags] = CapsReplyWanted
	}
	return b
}

// IsCaps reports whether b starts like a capabilities body. A relayed frame
// never does: it starts with the Ethernet destination ff:ff:… (IPv4) or
// 33:33:… (IPv6), the only ones the capture filter takes.
func IsCaps(b []byte) bool { return len(b) >= 2 && b[0] == CapsMagic[0] && b[1] == CapsMagic[1] }

// ParseCaps decodes the capabilities body b: ErrShort if it is shorter than
// CapsLen, ErrBadMagic without "SC", ErrBadVersion for another version.
// Capability bits and reserved bytes it does not know are kept or ignored,
// never an error: later versions add bits there.
func ParseCaps(b []byte) (Announce, error) {
	if len(b) < 2 || !IsCaps(b) {
		if len(b) < 2 {
			return Announce{}, ErrShort
		}
		return Announce{}, ErrBadMagic
	}
	if len(b) < CapsLen {
		return Announce{}, ErrShort
	}
	if b[2] != CapsVersion {
		return Announce{}, ErrBadVersion
	}
	return Announce{
		ID:        uint32(b[capsOffID])<<24 | uint32(b[capsOffID+1])<<16 | uint32(b[capsOffID+2])<<8 | uint32(b[capsOffID+3]),
		Caps:      Caps(b[capsOffCaps]),
		WantReply: b[capsOffFlags]&CapsReplyWanted != 0,
	}, nil
}
