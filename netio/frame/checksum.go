package frame

import (
	"encoding/binary"
	"math/bits"
)

// Checksum adds b to the Internet checksum running sum initial (RFC 1071) and
// returns the new running sum, not folded and not complemented: chain calls
// over the pieces of a datagram and finish with [Fold]. b is summed as
// 16-bit big-endian words as if it started at an even offset, so every piece
// but the last must have even length.
//
// The ones' complement sum is taken 64 bits at a time: 2^16 ≡ 1 modulo
// 0xffff, so adding 64-bit words with end-around carry and folding at the end
// gives the same result as adding 16-bit words (RFC 1071 §2(C), "parallel
// summation").
func Checksum(b []byte, initial uint32) uint32 {
	acc := uint64(initial)
	var c uint64 // carry out of the 64-bit accumulator, added back later
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		// An odd last byte is the high half of a word padded with zero.
		acc, c = bits.Add64(acc, uint64(b[0])<<8, c)
	}
	// Add the pending carry; if that carries too, acc is now 0 and the
	// second add cannot overflow.
	acc, c = bits.Add64(acc, 0, c)
	acc += c
	// Fold 64 -> 32 bits with end-around carry; twice is enough:
	// (2^32-1)+(2^32-1) = 2^33-2 folds to at most 2^32-1.
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	return uint32(acc)
}

// Fold folds a running sum from [Checksum] to 16 bits and complements it,
// giving the value to store in a checksum field.
func Fold(sum uint32) uint16 {
	sum = sum>>16 + sum&0xffff
	sum = sum>>16 + sum&0xffff
	return ^uint16(sum)
}

// pseudoHeaderSum returns the running sum of the IPv4 pseudo-header (RFC 768)
// for a UDP datagram of udpLen bytes: source and destination addresses,
// protocol and UDP length. The addresses are contiguous in the IP header, so
// they are summed straight from b.
func pseudoHeaderSum(b []byte, udpLen int) uint32 {
	return Checksum(b[offSrc:offDst+4], ProtoUDP+uint32(udpLen))
}

// FixChecksums recomputes the IPv4 header checksum and, for an unfragmented
// datagram, the UDP checksum over the pseudo-header and the whole UDP
// datagram; a computed UDP checksum of 0 is sent as 0xffff, because 0 means
// "no checksum" (RFC 768). This also completes partial checksums left by
// checksum offload, and fills in a UDP checksum the sender left at 0.
//
// The UDP checksum of a fragment is left alone: it covers the reassembled
// datagram, which no single frame holds. (The kernel completes offloaded
// checksums before it fragments, so fragments never carry partial ones.)
//
// For IPv6 (no header checksum) it does the same to the UDP checksum, with
// the IPv6 pseudo-header; a zero UDP checksum is not allowed there, so it is
// always filled in.
func (f *Frame) FixChecksums(b []byte) {
	if f.IPv6 {
		f.fixChecksums6(b)
		return
	}
	h := f.ipHeader(b)
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], Fold(Checksum(h, 0)))
	if f.IsFragment() {
		return
	}
	udp := f.ipPayload(b)
	setUDPChecksum(udp, pseudoHeaderSum(b, len(udp)))
}

// setUDPChecksum computes the checksum of the UDP datagram udp, whose
// pseudo-header sums to pseudo, from scratch and stores it. A computed 0 is
// sent as 0xffff: 0 means "no checksum" (RFC 768), which IPv6 forbids.
func setUDPChecksum(udp []byte, pseudo uint32) {
	udp[udpOffCsum], udp[udpOffCsum+1] = 0, 0
	sum := Fold(Checksum(udp, pseudo))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[udpOffCsum:], sum)
}
