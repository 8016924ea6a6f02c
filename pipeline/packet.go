package pipeline

import (
	"net/netip"

	"github.com/snowsignal/snowsignal/netio/frame"
)

// Headroom is the number of free bytes kept in front of every frame, so a
// mesh header can be written in place and the datagram sent without a copy.
// It must cover the largest mesh header (netio/mesh.MaxHeaderLen).
const Headroom = 64

// MaxBatch is the largest number of packets carried by one link element.
// Channels carry batches, not packets: one channel operation per packet
// dominated CPU profiles in wireguard-go until it moved to batches.
const MaxBatch = 64

// A Packet is one frame or datagram in a pooled buffer. The bytes live in
// Buf[Off:Off+Len]; everything outside that window is scratch space owned by
// whoever owns the batch.
type Packet struct {
	// Buf is the packet's whole buffer, Headroom plus the maximum frame size.
	Buf []byte
	// Off and Len locate the packet's bytes in Buf.
	Off, Len int
	// Addr is where an inbound mesh datagram came from; zero for captured frames.
	Addr netip.AddrPort
	// Frame is the decoded frame, valid once a decoding stage has set it.
	Frame frame.Frame
	// Key identifies the datagram end to end for duplicate suppression; set
	// by the stage that decodes it.
	Key uint64
	// Stamp is when the kernel received the packet, in nanoseconds since
	// the Unix epoch (CLOCK_REALTIME, as time.Now().UnixNano()), or 0 if it
	// did not say; the last stage sheds packets that waited too long
	// (Shedder).
	Stamp int64
}

// Bytes returns the packet's bytes.
func (p *Packet) Bytes() []byte { return p.Buf[p.Off : p.Off+p.Len] }

// reset prepares the packet to receive a frame at Headroom.
func (p *Packet) reset() {
	p.Off, p.Len = Headroom, 0
	p.Addr = netip.AddrPort{}
	p.Key = 0
	p.Stamp = 0
	p.Frame = frame.Frame{}
}

// A Batch is the element carried by links: up to MaxBatch packets whose
// buffers were allocated with the batch and never leave it.
type Batch struct {
	// Pkts holds the packets in use; its capacity is MaxBatch and the buffers
	// of unused slots beyond len(Pkts) stay attached, ready for reuse.
	Pkts []Packet
}

// Slot extends Pkts by one packet, reset to receive a frame at Headroom, and
// returns it. It returns nil when the batch is full.
func (b *Batch) Slot() *Packet {
	n := len(b.Pkts)
	if n == cap(b.Pkts) {
		return nil
	}
	b.Pkts = b.Pkts[:n+1]
	p := &b.Pkts[n]
	p.reset()
	return p
}

// Unslot drops the packet added last by Slot, for a read that produced nothing.
func (b *Batch) Unslot() { b.Pkts = b.Pkts[:len(b.Pkts)-1] }

// Full reports whether the batch holds MaxBatch packets.
func (b *Batch) Full() bool { return len(b.Pkts) == cap(b.Pkts) }

// Keep retains only the packets for which keep returns true, preserving
// order. Packets are swapped, not copied, so every buffer stays in the batch.
func (b *Batch) Keep(keep func(p *Packet) bool) {
	n := 0
	for i := range b.Pkts {
		if !keep(&b.Pkts[i]) {
			continue
		}
		if i != n {
			b.Pkts[n], b.Pkts[i] = b.Pkts[i], b.Pkts[n]
		}
		n++
	}
	b.Pkts = b.Pkts[:n]
}
