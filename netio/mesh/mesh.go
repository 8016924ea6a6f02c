// Package mesh defines the datagrams relays exchange: one Ethernet frame per
// UDP datagram, behind one of two headers.
//
//   - Legacy, compatible with the Python SnowSignal: "SS" then the frame.
//   - Authenticated, used when a shared key is configured: "SN", a version,
//     a key id, a sender id, a sequence number and an HMAC-SHA256 tag, then
//     the frame (see [Sealer] for the layout). Python relays drop it, since
//     they drop anything not starting with "SS".
//
// Headers are written in place in the free bytes in front of the frame
// (pipeline.Headroom, at least [MaxHeaderLen]), so sending never copies the
// frame, and decoding returns subslices of the datagram. Nothing here
// allocates per datagram.
package mesh

// Header formats.
const (
	LegacyMagic     = "SS" // first bytes of a legacy datagram
	LegacyHeaderLen = 2    // length of the legacy header
	AuthMagic       = "SN" // first bytes of an authenticated datagram
	AuthVersion     = 1    // the authenticated header version this package speaks
	AuthHeaderLen   = 48   // length of the authenticated header
	MaxHeaderLen    = 48   // the longest header: the headroom a frame needs in front
)

// DecodeError is why a mesh datagram was rejected. It is a small integer so
// that returning it never allocates, and its String is a stable snake_case
// word usable as a metric label value.
type DecodeError uint8

// Decode errors.
const (
	ErrShort      DecodeError = iota + 1 // shorter than its header
	ErrBadMagic                          // does not start with the expected magic
	ErrBadVersion                        // authenticated header of an unknown version
	ErrUnknownKey                        // key id matches none of our keys: the sender uses another key
	ErrBadTag                            // the HMAC tag does not verify: corrupted or forged
	ErrReplay                            // sequence number already seen, or older than the replay window
	numDecodeErrors
)

var decodeErrorNames = [numDecodeErrors]string{
	0:             "ok",
	ErrShort:      "short",
	ErrBadMagic:   "bad_magic",
	ErrBadVersion: "bad_version",
	ErrUnknownKey: "unknown_key",
	ErrBadTag:     "bad_tag",
	ErrReplay:     "replay",
}

// String returns the error's metric label, e.g. "bad_tag".
func (e DecodeError) String() string {
	if e < numDecodeErrors {
		return decodeErrorNames[e]
	}
	return "unknown"
}

// Error implements error; it returns the same word as String.
func (e DecodeError) Error() string { return e.String() }

// Format is the kind of a mesh datagram, told by its magic.
type Format uint8

// Formats.
const (
	Unknown Format = iota // neither magic
	Legacy                // "SS": Python-compatible
	Auth                  // "SN": authenticated
)

// String returns "unknown", "legacy" or "auth".
func (f Format) String() string {
	switch f {
	case Legacy:
		return "legacy"
	case Auth:
		return "auth"
	}
	return "unknown"
}

// Kind returns the format of datagram d by its first two bytes. It does not
// check anything else.
func Kind(d []byte) Format {
	if len(d) < 2 {
		return Unknown
	}
	switch string(d[:2]) { // no allocation: the compiler compares in place
	case LegacyMagic:
		return Legacy
	case AuthMagic:
		return Auth
	}
	return Unknown
}

// PutLegacy writes the legacy header "SS" into buf[frameOff-2:frameOff],
// just in front of a frame that starts at buf[frameOff], and returns the
// offset where the datagram starts, frameOff-2. It panics if frameOff < 2.
//
// The datagram is buf[start:frameOff+frameLen], byte for byte what the
// Python relay sends, except that Python cuts it after 1026 bytes.
func PutLegacy(buf []byte, frameOff int) (start int) {
	start = frameOff - LegacyHeaderLen
	buf[start], buf[start+1] = LegacyMagic[0], LegacyMagic[1]
	return start
}

// DecodeLegacy returns the frame carried by the legacy datagram d, a
// subslice of d. It checks only the magic: the frame itself is for
// frame.Decode to judge.
func DecodeLegacy(d []byte) (frame []byte, err error) {
	if len(d) < LegacyHeaderLen {
		return nil, ErrShort
	}
	if d[0] != LegacyMagic[0] || d[1] != LegacyMagic[1] {
		return nil, ErrBadMagic
	}
	return d[LegacyHeaderLen:], nil
}
