package frame

import (
	"encoding/binary"
	"net/netip"
)

// broadcastMAC is the Ethernet broadcast address.
var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// SetBroadcastEthernet sets the Ethernet destination of the frame b to
// ff:ff:ff:ff:ff:ff and its source to src, leaving the EtherType. b must hold
// at least the first 12 bytes of an Ethernet header.
func SetBroadcastEthernet(b []byte, src [6]byte) {
	_ = b[11] // one bounds check for both copies
	copy(b[0:6], broadcastMAC[:])
	copy(b[6:12], src[:])
}

// SetDst rewrites the IPv4 destination of the decoded IPv4 frame b to dst,
// which must be an IPv4 address, and updates f.Dst. IPv6 frames keep their
// destination group (see SetMulticastEthernet). The IPv4 header checksum is
// updated incrementally, and so is the UDP checksum when this frame carries
// the UDP header and the checksum is in use (non-zero): the pseudo-header
// includes the destination, and for a first fragment the checksum covers the
// reassembled datagram, which the rewrite changes the same way.
//
// The update assumes the old checksums were complete. A partial (offloaded)
// UDP checksum must be completed afterwards with FixChecksums, which
// recomputes both from scratch anyway.
func (f *Frame) SetDst(b []byte, dst netip.Addr) {
	d := b[offDst : offDst+4]
	was := [2]uint16{binary.BigEndian.Uint16(d[0:]), binary.BigEndian.Uint16(d[2:])}
	a := dst.As4()
	copy(d, a[:])
	now := [2]uint16{binary.BigEndian.Uint16(a[0:]), binary.BigEndian.Uint16(a[2:])}
	f.Dst = dst

	updateChecksum(b[offIPCsum:], was, now)
	if !f.HasUDPHeader() {
		return
	}
	uc := b[offIP+f.IHL+udpOffCsum:]
	if binary.BigEndian.Uint16(uc) == 0 {
		return // the sender chose no checksum; keep it that way
	}
	updateChecksum(uc, was, now)
	if binary.BigEndian.Uint16(uc) == 0 {
		// A computed 0 is sent as 0xffff (RFC 768); both mean the same
		// sum in ones' complement, and 0 would switch checksums off.
		uc[0], uc[1] = 0xff, 0xff
	}
}

// updateChecksum replaces the 16-bit words was by now in the data covered by
// the checksum stored big-endian in c[0:2], per RFC 1624 eqn. 3.
//
// A checksum is HC = ~C, where C is the ones' complement sum of the covered
// words. Replacing word m by m' changes the sum to C' = C + (-m) + m', and in
// ones' complement -m = ~m, so
//
//	HC' = ~C' = ~(C + ~m + m') = ~(~HC + ~m + m')
//
// Eqn. 3 (unlike RFC 1141's eqn. 2) never yields the -0 that full
// recomputation could not produce, so the result equals recomputing from
// scratch whenever HC was correct.
func updateChecksum(c []byte, was, now [2]uint16) {
	hc := binary.BigEndian.Uint16(c)
	sum := uint32(^hc)
	sum += uint32(^was[0]) + uint32(^was[1])
	sum += uint32(now[0]) + uint32(now[1])
	binary.BigEndian.PutUint16(c, Fold(sum))
}
