package frame

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 sizes and next-header values (RFC 8200, IANA "Assigned Internet
// Protocol Numbers").
const (
	EtherTypeIPv6 = 0x86dd // EtherType of IPv6
	IPv6HdrLen    = 40     // the fixed IPv6 header

	// MaxExtHeaders is how many extension headers Decode6 walks before it
	// gives up with ErrExtChainTooLong. RFC 8200 §4.1's longest sensible
	// chain without IPsec is hop-by-hop, destination options, routing,
	// fragment, destination options: five; one more is slack.
	MaxExtHeaders = 6

	nhHopByHop = 0   // hop-by-hop options; only directly after the IPv6 header
	nhRouting  = 43  // routing header
	nhFragment = 44  // fragment header, 8 bytes
	nhESP      = 50  // IPsec encapsulating security payload
	nhAH       = 51  // IPsec authentication header
	nhDestOpts = 60  // destination options
	nhMobility = 135 // mobility header (RFC 6275)
	nhHIP      = 139 // host identity protocol (RFC 7401)
	nhShim6    = 140 // shim6 (RFC 5533)
	nhExp1     = 253 // experimentation (RFC 3692)
	nhExp2     = 254 // experimentation (RFC 3692)

	// Offsets in the IPv6 header, relative to the start of the frame.
	off6PayloadLen = offIP + 4
	off6NextHdr    = offIP + 6
	off6HopLimit   = offIP + 7
	off6Src        = offIP + 8
	off6Dst        = offIP + 24
)

// Decode6 parses the Ethernet/IPv6 frame b into f, the IPv6 counterpart of
// [Frame.Decode]; on success f.IPv6 is set. Trailing bytes after the payload
// length are ignored, as for IPv4.
//
// Extension headers are walked explicitly, at most MaxExtHeaders of them:
//
//   - hop-by-hop options, only directly after the IPv6 header (RFC 8200
//     §4.3), and destination options are skipped;
//   - a routing header with segments left 0 is skipped (its route is done,
//     RFC 8200 §4.4); with segments left > 0 the destination is an
//     intermediate hop, not the group the datagram is for: ErrRoutingHeader;
//   - a fragment header (at most one) makes the datagram a fragment, with the
//     offset, the M flag and the 32-bit identification in f. For a fragment
//     (offset or M set) the header after it must be UDP (ErrNotUDP): the
//     header chain of every fragment then reads the same, and the first one
//     carries the UDP header (RFC 7112). An atomic fragment (offset 0, M
//     clear, RFC 6946) is no fragment: the walk goes on;
//   - ESP and AH (ErrIPsec) and the other extension headers
//     (ErrUnknownExtHeader) are rejected; any other next header is not UDP.
//
// A payload length of 0 (a jumbogram, RFC 2675, or no payload at all) is
// ErrZeroPayloadLength. Checksums are not verified (see the package comment);
// a zero UDP checksum, invalid in IPv6 (RFC 8200 §8.1), is left for
// FixChecksums to fill in. On error f is left in an unspecified state.
func (f *Frame) Decode6(b []byte) error {
	if len(b) < EthLen {
		return ErrTruncated
	}
	if binary.BigEndian.Uint16(b[offEtherType:]) != EtherTypeIPv6 {
		return ErrNotIPv6
	}
	if len(b) < EthLen+IPv6HdrLen {
		return ErrTruncated
	}
	if b[offIP]>>4 != 6 {
		return ErrBadIPVersion
	}
	plen := int(binary.BigEndian.Uint16(b[off6PayloadLen:]))
	if plen == 0 {
		return ErrZeroPayloadLength
	}
	end := IPv6HdrLen + plen // relative to the IPv6 header
	if end > len(b)-EthLen {
		return ErrTruncated
	}
	*f = Frame{IPv6: true, IPLen: end, Proto: ProtoUDP,
		Src: netip.AddrFrom16([16]byte(b[off6Src : off6Src+16])),
		Dst: netip.AddrFrom16([16]byte(b[off6Dst : off6Dst+16]))}

	ip := b[offIP : offIP+end]
	nh, off := ip[6], IPv6HdrLen
	fragHdr := false
	for i := 0; ; i++ {
		if nh == ProtoUDP {
			break
		}
		if i == MaxExtHeaders {
			return ErrExtChainTooLong
		}
		switch nh {
		case nhHopByHop, nhDestOpts, nhRouting:
			if nh == nhHopByHop && i != 0 {
				return ErrBadExtHeader
			}
			// Every one of these starts with next header and length in
			// 8-octet units, not counting the first 8.
			if off+8 > end {
				return ErrBadExtHeader
			}
			n := (int(ip[off+1]) + 1) * 8
			if off+n > end {
				return ErrBadExtHeader
			}
			if nh == nhRouting && ip[off+3] != 0 {
				return ErrRoutingHeader
			}
			nh, off = ip[off], off+n
		case nhFragment:
			if fragHdr || off+8 > end {
				return ErrBadFragment
			}
			fragHdr = true
			fo := binary.BigEndian.Uint16(ip[off+2:])
			f.FragOff = fo >> 3
			f.MoreFrags = fo&1 != 0
			f.ID6 = binary.BigEndian.Uint32(ip[off+4:])
			nh, off = ip[off], off+8
			if f.IsFragment() {
				if nh != ProtoUDP {
					return ErrNotUDP
				}
				// The fragmentable part must fit a 65535-byte payload once
				// reassembled (the "ping of death" again), and every
				// fragment but the last is a multiple of 8 long (RFC 8200
				// §4.5).
				unfrag := off - IPv6HdrLen - 8
				if unfrag+int(f.FragOff)*8+end-off > MaxDatagram ||
					f.MoreFrags && (end-off)%8 != 0 {
					return ErrBadFragment
				}
			}
		case nhESP, nhAH:
			return ErrIPsec
		case nhMobility, nhHIP, nhShim6, nhExp1, nhExp2:
			return ErrUnknownExtHeader
		default:
			return ErrNotUDP // TCP, ICMPv6, no next header, ...
		}
	}
	f.IHL = off
	if !f.HasUDPHeader() {
		return nil
	}
	// Once reassembled, the unfragmentable headers before the fragment
	// header and the UDP datagram share the 65535-byte payload.
	return f.decodeUDP(ip[off:end], MaxDatagram-(off-IPv6HdrLen-8))
}

// DecodeIP parses b as IPv4 ([Frame.Decode]) or IPv6 ([Frame.Decode6]) by
// its EtherType. A frame of neither family is ErrNotIPv4, as Decode reports
// it, so code that maps Decode's errors needs no new case for it.
func (f *Frame) DecodeIP(b []byte) error {
	if len(b) >= EthLen && binary.BigEndian.Uint16(b[offEtherType:]) == EtherTypeIPv6 {
		return f.Decode6(b)
	}
	return f.Decode(b)
}

// FragmentID returns what ties a fragment to its datagram: the IPv4
// identification, or the IPv6 fragment header's 32-bit identification.
// Fragment trackers must key on it, not on ID, which is 16 bits and zero for
// IPv6.
func (f *Frame) FragmentID() uint32 {
	if f.IPv6 {
		return f.ID6
	}
	return uint32(f.ID)
}

// HopLimit returns the hop limit of the decoded IPv6 frame b (the TTL of an
// IPv4 one): a relay keeps it, and a receiver may check it (RFC 4861 sends
// neighbour discovery with 255 for that reason).
func (f *Frame) HopLimit(b []byte) uint8 {
	if f.IPv6 {
		return b[off6HopLimit]
	}
	return b[offIP+8]
}

// Link-scope multicast: ff02::/16 (RFC 4291 §2.7, scope 2).
var linkScope = netip.MustParsePrefix("ff02::/16")

// IsLinkScopeMulticast reports whether a is an IPv6 link-scope multicast
// address, ff02::/16: what an IPv6 "broadcast" search goes to, and what
// stops at the segment's edge.
func IsLinkScopeMulticast(a netip.Addr) bool { return linkScope.Contains(a) }

// CheckGroup checks the IPv6 destination dst of a frame to relay: it must be
// link-scope multicast (ErrNotLinkScope) and one of groups
// (ErrGroupNotRelayed). groups is short (a handful), so a linear scan beats
// a map and allocates nothing.
func CheckGroup(dst netip.Addr, groups []netip.Addr) error {
	if !IsLinkScopeMulticast(dst) {
		return ErrNotLinkScope
	}
	for _, g := range groups {
		if g == dst {
			return nil
		}
	}
	return ErrGroupNotRelayed
}

// CheckSource6 checks the IPv6 source of a frame to relay. A link-local
// source (fe80::/10) is ErrLinkLocalSource: a server on another segment
// cannot reply to it, so relaying it only adds load; the client needs a
// global or unique-local address. The unspecified address, loopback,
// multicast and IPv4-mapped addresses are no client's (ErrBadSource).
func CheckSource6(src netip.Addr) error {
	switch {
	case !src.Is6() || src.Is4In6() || src.IsUnspecified() || src.IsLoopback() || src.IsMulticast():
		return ErrBadSource
	case src.IsLinkLocalUnicast():
		return ErrLinkLocalSource
	}
	return nil
}

// MulticastMAC returns the Ethernet address IPv6 multicast to group goes to:
// 33:33 followed by the group's low 32 bits (RFC 2464 §7).
func MulticastMAC(group netip.Addr) [6]byte {
	a := group.As16()
	return [6]byte{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

// SetMulticastEthernet sets the Ethernet destination of the frame b to the
// MAC of the IPv6 multicast group (MulticastMAC) and its source to src,
// leaving the EtherType: the Ethernet rewrite of an IPv6 frame before
// injection. b must hold at least the first 12 bytes of an Ethernet header.
func SetMulticastEthernet(b []byte, group netip.Addr, src [6]byte) {
	_ = b[11]
	m := MulticastMAC(group)
	copy(b[0:6], m[:])
	copy(b[6:12], src[:])
}

// pseudoHeaderSum6 returns the running sum of the IPv6 pseudo-header (RFC
// 8200 §8.1) for a UDP datagram of udpLen bytes: source and destination
// addresses, the 32-bit upper-layer length and the next header UDP. The
// addresses are contiguous in the header, so they are summed straight from
// b; udpLen is below 2^16, so its high word is zero.
func pseudoHeaderSum6(b []byte, udpLen int) uint32 {
	return Checksum(b[off6Src:off6Dst+16], ProtoUDP+uint32(udpLen))
}

// fixChecksums6 is FixChecksums for IPv6, which has no header checksum: it
// recomputes the UDP checksum of an unfragmented datagram from scratch,
// completing a partial one (TP_STATUS_CSUMNOTREADY) and filling in a zero
// one, which IPv6 does not allow.
func (f *Frame) fixChecksums6(b []byte) {
	if f.IsFragment() {
		return
	}
	udp := f.ipPayload(b)
	setUDPChecksum(udp, pseudoHeaderSum6(b, len(udp)))
}
