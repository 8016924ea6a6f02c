package mesh

import "encoding/binary"

// A probe asks a relay, on its mesh port, to say who it is: `snowsignal
// doctor` sends one to every peer and reports the answer. Like a hello, the
// body travels bare on a legacy mesh and sealed (in place of the frame) on an
// authenticated one. Python relays drop it: it does not start with "SS".
//
// The request is ProbeLen bytes and the reply never longer, so a forged
// source address earns its owner no more bytes than the forger sent
// (responders also rate-limit their answers).
//
// Request body:
//
//	offset  size  field
//	0       2     magic "SP" (ProbeMagic)
//	2       1     version, 1
//	3       1     flags, 0
//	4       8     nonce, echoed in the reply
//	12      52    zero: room for the reply
//
// Reply body:
//
//	offset  size  field
//	0       2     magic "SR" (ProbeReplyMagic)
//	2       1     version, 1
//	3       1     flags: ProbeKnownPeer, ProbeAuthRequired
//	4       8     the request's nonce
//	12      2     MTU of the responder's target interface (0: withheld)
//	14      1     the responder's mesh format: 1 legacy, 2 authenticated
//	15      1     the responder's key id (KeyID of its sending key; 0 without)
//	16      1     length n of the version string (0: withheld), at most 47
//	17      n     the responder's version, e.g. "1.4.0"
//	17+n    ...   zero up to ProbeLen
const (
	ProbeMagic      = "SP"
	ProbeReplyMagic = "SR"
	ProbeLen        = 64 // request and reply body length
	probeVersion    = 1
	maxProbeVersion = ProbeLen - 17
)

// Probe reply flags.
const (
	// ProbeKnownPeer: the prober's address is in the responder's peer set,
	// so the responder accepts its mesh datagrams.
	ProbeKnownPeer = 1 << 0
	// ProbeAuthRequired: the responder uses the authenticated format and the
	// probe was not sealed with one of its keys; it withholds its MTU and
	// version.
	ProbeAuthRequired = 1 << 1
)

// ProbeReply is what a relay says about itself.
type ProbeReply struct {
	Nonce     uint64
	Flags     byte
	MTU       int
	Format    Format
	KeyID     byte
	Version   string
	KnownPeer bool // Flags&ProbeKnownPeer
}

// PutProbe writes a request body with nonce into b (at least ProbeLen bytes)
// and returns it.
func PutProbe(b []byte, nonce uint64) []byte {
	b = b[:ProbeLen]
	clear(b)
	copy(b, ProbeMagic)
	b[2] = probeVersion
	binary.BigEndian.PutUint64(b[4:], nonce)
	return b
}

// IsProbe reports whether b starts like a probe request body. A relayed
// frame starts with ff:ff, a hello with "SH", a legacy datagram with "SS".
func IsProbe(b []byte) bool { return len(b) >= 2 && string(b[:2]) == ProbeMagic }

// ParseProbe returns the nonce of request body b, and false if b is not a
// whole request of this version (too short to leave room for the reply).
func ParseProbe(b []byte) (nonce uint64, ok bool) {
	if len(b) < ProbeLen || !IsProbe(b) || b[2] != probeVersion {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[4:]), true
}

// PutProbeReply writes reply body r into b (at least ProbeLen bytes) and
// returns it, ProbeLen bytes. A version longer than fits is cut.
func PutProbeReply(b []byte, r ProbeReply) []byte {
	b = b[:ProbeLen]
	clear(b)
	copy(b, ProbeReplyMagic)
	b[2] = probeVersion
	b[3] = r.Flags
	binary.BigEndian.PutUint64(b[4:], r.Nonce)
	binary.BigEndian.PutUint16(b[12:], uint16(min(max(r.MTU, 0), 0xffff)))
	b[14] = byte(r.Format)
	b[15] = r.KeyID
	v := r.Version
	if len(v) > maxProbeVersion {
		v = v[:maxProbeVersion]
	}
	b[16] = byte(len(v))
	copy(b[17:], v)
	return b
}

// ParseProbeReply decodes reply body b.
func ParseProbeReply(b []byte) (ProbeReply, bool) {
	if len(b) < 17 || string(b[:2]) != ProbeReplyMagic || b[2] != probeVersion {
		return ProbeReply{}, false
	}
	n := int(b[16])
	if n > maxProbeVersion || 17+n > len(b) {
		return ProbeReply{}, false
	}
	r := ProbeReply{
		Flags:   b[3],
		Nonce:   binary.BigEndian.Uint64(b[4:]),
		MTU:     int(binary.BigEndian.Uint16(b[12:])),
		Format:  Format(b[14]),
		KeyID:   b[15],
		Version: string(b[17 : 17+n]),
	}
	r.KnownPeer = r.Flags&ProbeKnownPeer != 0
	return r, true
}

// SealedBody returns the body of an authenticated datagram d without
// checking its tag, for telling a sealed probe from a sealed frame before
// Opener.Open verifies it; nil if d is not an authenticated datagram.
func SealedBody(d []byte) []byte {
	if Kind(d) != Auth || len(d) < AuthHeaderLen {
		return nil
	}
	return d[AuthHeaderLen:]
}

// KeyID returns the key id the Sealer writes.
func (s *Sealer) KeyID() byte { return s.keyID }
