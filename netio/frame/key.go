package frame

import (
	"hash/crc32"
	"hash/maphash"
)

// Key returns a 64-bit hash of what identifies the decoded datagram b end to
// end, for duplicate suppression: source and destination addresses,
// protocol, fragment offset and "more fragments" flag, and the bytes after
// the IPv4 header except the UDP checksum.
//
// Everything a relay, router or sending kernel may change in transit is left
// out: the Ethernet header, DSCP/ECN, the DF flag, TTL, IP options, both
// checksums (the UDP one may be partial on one copy and complete on another)
// and trailing padding. Two copies of a datagram that differ only there get
// the same key. The IP ID is left out of unfragmented datagrams' keys too,
// but is part of a fragment's: fragments carry no ports, the ID is what ties
// them to their datagram, and reassembly needs it kept end to end, so two
// different datagrams' fragments with equal bytes at equal offsets must not
// collide.
//
// The seed keeps keys unpredictable to senders (so they cannot aim
// collisions) and must be the same for every key compared.
//
// For IPv6 the same holds with the IPv6 addresses, the fragment header's
// 32-bit identification, and the hop limit, flow label, traffic class and
// extension headers left out (a router may rewrite the first three; the
// last are options the datagram's meaning does not depend on).
func (f *Frame) Key(b []byte, seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.Write(f.addrs(b)) // source, destination
	var mf byte
	if f.MoreFrags {
		mf = 1
	}
	var id uint32
	if f.IsFragment() {
		id = f.FragmentID()
	}
	// The version keeps the families' keys apart even where the bytes
	// after it agree.
	h.Write([]byte{f.version(), f.Proto, mf, byte(f.FragOff >> 8), byte(f.FragOff),
		byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)})
	p := f.ipPayload(b)
	if f.HasUDPHeader() {
		h.Write(p[:udpOffCsum]) // ports, length
		p = p[udpOffCsum+2:]    // skip the checksum
	}
	h.Write(p)
	return h.Sum64()
}

// castagnoli is the CRC-32C table; crc32 computes it with the CPU's CRC
// instruction where there is one.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// StableKey is like Key (the same fields, the same invariances) but the same
// in every process: relays sharing a segment use it to agree on which of
// them injects a datagram, so it cannot use a per-process seed. It is not a
// defence against chosen collisions; Key is.
func (f *Frame) StableKey(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, f.addrs(b)) // source, destination
	p := f.ipPayload(b)
	if f.HasUDPHeader() {
		c = crc32.Update(c, castagnoli, p[:udpOffCsum]) // ports, length
		p = p[udpOffCsum+2:]                            // skip the checksum
	}
	c = crc32.Update(c, castagnoli, p)
	// Fold in protocol and fragment position (and a fragment's ID, as Key
	// does) arithmetically: a byte array passed to crc32 would escape.
	// IPv4 keeps the layout it always had (relays of different versions on
	// one segment must agree); IPv6 moves the offset up for its 32-bit ID
	// and sets bit 49 for the family.
	var meta uint64
	if f.IPv6 {
		meta = uint64(f.Proto)<<56 | 1<<49 | uint64(f.FragOff)<<32
	} else {
		meta = uint64(f.Proto)<<40 | uint64(f.FragOff)<<16
	}
	if f.MoreFrags {
		meta |= 1 << 48
	}
	if f.IsFragment() {
		meta |= uint64(f.FragmentID())
	}
	x := (uint64(c) ^ meta*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	return uint32(x>>32) ^ uint32(x)
}

// addrs returns the source and destination addresses in b, contiguous in
// both IP headers.
func (f *Frame) addrs(b []byte) []byte {
	if f.IPv6 {
		return b[off6Src : off6Dst+16]
	}
	return b[offSrc : offDst+4]
}

// version is the IP version of the frame, 4 or 6.
func (f *Frame) version() byte {
	if f.IPv6 {
		return 6
	}
	return 4
}
