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
	if f.IPv6 {
		return f.key6(&h, b)
	}
	h.Write(b[offSrc : offDst+4]) // source, destination
	var mf byte
	if f.MoreFrags {
		mf = 1
	}
	var id uint16
	if f.IsFragment() {
		id = f.ID
	}
	h.Write([]byte{f.Proto, mf, byte(f.FragOff >> 8), byte(f.FragOff), byte(id >> 8), byte(id)})
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
	if f.IPv6 {
		return f.stableKey6(b)
	}
	c := crc32.Update(0, castagnoli, b[offSrc:offDst+4]) // source, destination
	p := f.ipPayload(b)
	if f.HasUDPHeader() {
		c = crc32.Update(c, castagnoli, p[:udpOffCsum]) // ports, length
		p = p[udpOffCsum+2:]                            // skip the checksum
	}
	c = crc32.Update(c, castagnoli, p)
	// Fold in protocol and fragment position (and a fragment's ID, as Key
	// does) arithmetically: a byte array passed to crc32 would escape.
	meta := uint64(f.Proto)<<40 | uint64(f.FragOff)<<16
	if f.MoreFrags {
		meta |= 1 << 48
	}
	if f.IsFragment() {
		meta |= uint64(f.ID)
	}
	x := (uint64(c) ^ meta*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	return uint32(x>>32) ^ uint32(x)
}

// key6 is Key for IPv6. The leading 6 keeps an IPv6 key apart from every
// IPv4 one even where the bytes hashed after it happen to agree.
func (f *Frame) key6(h *maphash.Hash, b []byte) uint64 {
	h.WriteByte(6)
	h.Write(b[off6Src : off6Dst+16]) // source, destination
	var mf byte
	if f.MoreFrags {
		mf = 1
	}
	var id uint32
	if f.IsFragment() {
		id = f.ID6
	}
	h.Write([]byte{f.Proto, mf, byte(f.FragOff >> 8), byte(f.FragOff),
		byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)})
	p := f.ipPayload(b)
	if f.HasUDPHeader() {
		h.Write(p[:udpOffCsum])
		p = p[udpOffCsum+2:]
	}
	h.Write(p)
	return h.Sum64()
}

// stableKey6 is StableKey for IPv6: the fields of key6, the family folded in
// with the fragment position so that IPv4 keys never change.
func (f *Frame) stableKey6(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[off6Src:off6Dst+16]) // source, destination
	p := f.ipPayload(b)
	if f.HasUDPHeader() {
		c = crc32.Update(c, castagnoli, p[:udpOffCsum])
		p = p[udpOffCsum+2:]
	}
	c = crc32.Update(c, castagnoli, p)
	// Bits 0..31 ID, 32..44 offset, 48 M, 49 the family, 56..63 protocol.
	meta := uint64(f.Proto)<<56 | 1<<49 | uint64(f.FragOff)<<32
	if f.MoreFrags {
		meta |= 1 << 48
	}
	if f.IsFragment() {
		meta |= uint64(f.ID6)
	}
	x := (uint64(c) ^ meta*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	return uint32(x>>32) ^ uint32(x)
}
