// Package frame decodes and rewrites Ethernet II / IPv4 / UDP and
// Ethernet II / IPv6 / UDP frames in place, without allocating.
//
// A [Frame] holds what [Frame.Decode] found as plain values and offsets into
// the caller's buffer, never pointers into it, so a Frame can be kept in a
// pooled packet record and the buffer reused. Every function here works on the
// same buffer b that was decoded; passing a different buffer is a bug.
//
// Decode validates the structure the relay depends on (lengths, IPv4, UDP)
// but not checksums: frames captured from the local stack carry partial UDP
// checksums (CHECKSUM_PARTIAL, see the vectors in testdata/vectors), so a
// checksum check would reject valid traffic. Use [Frame.FixChecksums] to
// complete them before a frame leaves the host.
package frame

import (
	"encoding/binary"
	"net/netip"
)

// Sizes and protocol numbers.
const (
	EthLen        = 14     // Ethernet II header length
	EtherTypeIPv4 = 0x0800 // EtherType of IPv4
	ProtoUDP      = 17     // IPv4 protocol number of UDP
	UDPLen        = 8      // UDP header length

	// IPv4MinLen is the length of an IPv4 header without options (IHL 5).
	IPv4MinLen = 20
	// IPv4MaxLen is the length of an IPv4 header with 40 bytes of options (IHL 15).
	IPv4MaxLen = 60
	// MaxDatagram is the largest IPv4 datagram (total length is 16 bits).
	MaxDatagram = 65535
)

// Offsets in the Ethernet and IPv4 headers, relative to the start of the
// frame. IPv4 options only follow the fixed part, so these never move.
const (
	offEtherType = 12
	offIP        = EthLen
	offVerIHL    = offIP + 0
	offTotalLen  = offIP + 2
	offID        = offIP + 4
	offFlagsFrag = offIP + 6
	offProto     = offIP + 9
	offIPCsum    = offIP + 10
	offSrc       = offIP + 12
	offDst       = offIP + 16

	// Offsets within the UDP header.
	udpOffLen  = 4
	udpOffCsum = 6

	flagMF      = 0x2000 // "more fragments"
	fragOffMask = 0x1fff // fragment offset, in 8-byte units
)

// DecodeError is why a frame failed to decode. It is a small integer so that
// returning it as an error never allocates, and its String is a stable
// snake_case word usable as a metric label value.
type DecodeError uint8

// Decode errors.
const (
	ErrTruncated      DecodeError = iota + 1 // a header, or the IPv4 total length, runs past the end of the buffer
	ErrNotIPv4                               // EtherType is not IPv4 (VLAN-tagged frames included)
	ErrBadIPVersion                          // IP version field is not 4
	ErrBadIHL                                // IHL below 5
	ErrBadTotalLength                        // IPv4 total length smaller than the header
	ErrNotUDP                                // IP protocol is not UDP
	ErrBadUDPLength                          // UDP length field below 8 or inconsistent with the IP length
	ErrBadFragment                           // fragment would end past the 65535-byte limit; IPv6: a second fragment header, or a non-last fragment not a multiple of 8 long

	// IPv6 (Decode6, DecodeIP); ErrTruncated, ErrBadIPVersion, ErrNotUDP,
	// ErrBadUDPLength and ErrBadFragment apply to IPv6 too.
	ErrNotIPv6           // Decode6: EtherType is not IPv6
	ErrZeroPayloadLength // IPv6 payload length 0: a jumbogram (RFC 2675) or no payload
	ErrBadExtHeader      // an extension header runs past the payload, or hop-by-hop options not first
	ErrExtChainTooLong   // more than MaxExtHeaders extension headers before UDP
	ErrRoutingHeader     // a routing header with segments left: the destination is not the final one
	ErrIPsec             // ESP or AH: the UDP header, if any, is not readable or not ours to change
	ErrUnknownExtHeader  // mobility, HIP, shim6 or experimental extension header

	// Checks on a decoded IPv6 frame's addresses (CheckSource6, CheckGroup).
	ErrLinkLocalSource // IPv6 source is link-local (fe80::/10): no server off the segment can reply
	ErrBadSource       // IPv6 source is unspecified, loopback, multicast or IPv4-mapped
	ErrNotLinkScope    // IPv6 destination is not link-scope multicast (ff02::/16)
	ErrGroupNotRelayed // IPv6 destination is a link-scope group that is not configured
	numDecodeErrors
)

var decodeErrorNames = [numDecodeErrors]string{
	0:                 "ok",
	ErrTruncated:      "truncated",
	ErrNotIPv4:        "not_ipv4",
	ErrBadIPVersion:   "bad_ip_version",
	ErrBadIHL:         "bad_ihl",
	ErrBadTotalLength: "bad_total_length",
	ErrNotUDP:         "not_udp",
	ErrBadUDPLength:   "bad_udp_length",
	ErrBadFragment:    "bad_fragment",

	ErrNotIPv6:           "not_ipv6",
	ErrZeroPayloadLength: "zero_payload_length",
	ErrBadExtHeader:      "bad_ext_header",
	ErrExtChainTooLong:   "ext_chain_too_long",
	ErrRoutingHeader:     "routing_header",
	ErrIPsec:             "ipsec",
	ErrUnknownExtHeader:  "unknown_ext_header",
	ErrLinkLocalSource:   "link_local_source",
	ErrBadSource:         "bad_source",
	ErrNotLinkScope:      "not_link_scope",
	ErrGroupNotRelayed:   "group_not_relayed",
}

// String returns the error's metric label, e.g. "truncated".
func (e DecodeError) String() string {
	if e < numDecodeErrors {
		return decodeErrorNames[e]
	}
	return "unknown"
}

// Error implements error; it returns the same word as String.
func (e DecodeError) Error() string { return e.String() }

// Frame holds what Decode (IPv4) or Decode6 (IPv6) found in an Ethernet/IP/UDP
// frame, as values and offsets into the caller's buffer (no pointers into
// it). The zero IPv6 field means IPv4, so IPv4 frames read as they always did.
type Frame struct {
	// IHL is the IP header length in bytes: for IPv4 20..60; for IPv6 the
	// fixed 40 bytes and every extension header up to and including the
	// fragment header, that is where the UDP header (or the fragment's data)
	// starts.
	IHL       int
	IPLen     int        // IP datagram length in bytes: IPv4 total length; IPv6 40 + payload length
	Proto     uint8      // IP protocol or final next header, always ProtoUDP after a successful decode
	ID        uint16     // IPv4 identification; zero for IPv6 (see ID6, FragmentID)
	FragOff   uint16     // fragment offset in 8-byte units
	MoreFrags bool       // the "more fragments" flag (IPv6: M)
	Src, Dst  netip.Addr // IP source and destination
	SrcPort   uint16     // UDP source port; zero for non-first fragments
	DstPort   uint16     // UDP destination port; zero for non-first fragments
	UDPLen    int        // UDP length field; zero for non-first fragments
	IPv6      bool       // decoded by Decode6
	ID6       uint32     // IPv6 fragment header identification; zero without one
}

// Decode parses the Ethernet/IPv4 frame b into f; any other EtherType, IPv6
// included, is ErrNotIPv4 (see Decode6 and DecodeIP). b may carry trailing bytes after
// the IPv4 datagram (Ethernet pads frames to 60 bytes); they are ignored, and
// Len reports where the datagram ends.
//
// Decode accepts an IPv4 UDP datagram, whole or a fragment of one. For a
// datagram that carries the UDP header (unfragmented or first fragment) the
// header must be present and its length at least 8; unfragmented, it must
// equal the IP payload length; a first fragment may announce more than it
// carries. Checksums are not verified (see the package comment). On error f
// is left in an unspecified state.
func (f *Frame) Decode(b []byte) error {
	if len(b) < EthLen {
		return ErrTruncated
	}
	if binary.BigEndian.Uint16(b[offEtherType:]) != EtherTypeIPv4 {
		// 802.1Q tags (0x8100) land here too: the capture socket sees the
		// untagged frame on a VLAN interface, so a tag means the wrong socket.
		return ErrNotIPv4
	}
	if len(b) < EthLen+IPv4MinLen {
		return ErrTruncated
	}
	vihl := b[offVerIHL]
	if vihl>>4 != 4 {
		return ErrBadIPVersion
	}
	ihl := int(vihl&0x0f) * 4
	if ihl < IPv4MinLen {
		return ErrBadIHL
	}
	if len(b) < EthLen+ihl {
		return ErrTruncated
	}
	ipLen := int(binary.BigEndian.Uint16(b[offTotalLen:]))
	if ipLen < ihl {
		return ErrBadTotalLength
	}
	if ipLen > len(b)-EthLen {
		// The capture cut the datagram short (snap length), or the length
		// field lies; either way the bytes are not all here.
		return ErrTruncated
	}
	if b[offProto] != ProtoUDP {
		return ErrNotUDP
	}
	ff := binary.BigEndian.Uint16(b[offFlagsFrag:])
	f.IHL = ihl
	f.IPLen = ipLen
	f.Proto = ProtoUDP
	f.ID = binary.BigEndian.Uint16(b[offID:])
	f.FragOff = ff & fragOffMask
	f.MoreFrags = ff&flagMF != 0
	f.Src = netip.AddrFrom4([4]byte(b[offSrc : offSrc+4]))
	f.Dst = netip.AddrFrom4([4]byte(b[offDst : offDst+4]))
	f.SrcPort, f.DstPort, f.UDPLen = 0, 0, 0
	f.IPv6, f.ID6 = false, 0

	ipPayload := ipLen - ihl
	if f.FragOff != 0 {
		// Reassembly would place this fragment past the largest datagram
		// (the "ping of death"); receivers drop it, so do we.
		if int(f.FragOff)*8+ipPayload > MaxDatagram-ihl {
			return ErrBadFragment
		}
		return nil
	}
	return f.decodeUDP(b[EthLen+ihl:EthLen+ipLen], MaxDatagram-ihl)
}

// decodeUDP reads the UDP header at the start of udp, the rest of an
// unfragmented datagram or a first fragment, into f. A first fragment's UDP
// length may announce at most maxLen bytes: what fits the largest datagram.
func (f *Frame) decodeUDP(udp []byte, maxLen int) error {
	if len(udp) < UDPLen {
		// Also rejects tiny first fragments that split the UDP header
		// (RFC 1858): the ports must be in the first fragment.
		return ErrTruncated
	}
	udpLen := int(binary.BigEndian.Uint16(udp[udpOffLen:]))
	switch {
	case udpLen < UDPLen:
		// Includes 0, the UDP length of an IPv6 jumbogram (RFC 2675).
		return ErrBadUDPLength
	case !f.MoreFrags && udpLen != len(udp):
		return ErrBadUDPLength
	case f.MoreFrags && (udpLen < len(udp) || udpLen > maxLen):
		// A first fragment carries part of the datagram, never more than
		// it, and the whole must fit in one datagram.
		return ErrBadUDPLength
	}
	f.SrcPort = binary.BigEndian.Uint16(udp[0:])
	f.DstPort = binary.BigEndian.Uint16(udp[2:])
	f.UDPLen = udpLen
	return nil
}

// Len returns the number of bytes of b that belong to the frame: the Ethernet
// header and the IP datagram, without trailing padding.
func (f *Frame) Len() int { return EthLen + f.IPLen }

// IsFragment reports whether the datagram is a fragment (first, middle or last).
func (f *Frame) IsFragment() bool { return f.MoreFrags || f.FragOff != 0 }

// HasUDPHeader reports whether this frame carries the UDP header, that is it
// is unfragmented or the first fragment.
func (f *Frame) HasUDPHeader() bool { return f.FragOff == 0 }

// Payload returns the UDP payload bytes carried by this frame, a subslice of
// b. For a first fragment that is the part present; for a later fragment it
// is the whole IP payload, which is all UDP payload.
func (f *Frame) Payload(b []byte) []byte {
	start := EthLen + f.IHL
	if f.HasUDPHeader() {
		start += UDPLen
	}
	return b[start:f.Len()]
}

// ipHeader returns the IPv4 header bytes of b (for IPv6, the fixed header
// and the extension headers).
func (f *Frame) ipHeader(b []byte) []byte { return b[offIP : offIP+f.IHL] }

// ipPayload returns the bytes after the IP header (IPv6: after the extension
// headers), up to the datagram's end.
func (f *Frame) ipPayload(b []byte) []byte { return b[offIP+f.IHL : f.Len()] }
