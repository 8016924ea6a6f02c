//go:build linux

package rawsock

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Snaplen is what the capture filter asks the kernel to keep of a matching
// frame: everything. A frame is never larger than 64 KiB.
const Snaplen = 1 << 16

// FilterConfig describes what the capture filter lets through.
type FilterConfig struct {
	// Ports are the UDP destination ports whose broadcasts are relayed.
	Ports []uint16
	// Mark is the SO_MARK of our inject socket; frames carrying it are our
	// own injections and are dropped in the kernel. Zero disables the test.
	Mark uint32
	// Fragments lets non-first IPv4 fragments through: they carry no UDP
	// header, so the kernel cannot tell their port and user space matches
	// them to the first fragment.
	Fragments bool
}

// CaptureFilter assembles the classic BPF program attached to the capture
// socket. It accepts, whole, the IPv4 UDP frames sent to the Ethernet
// broadcast address whose destination port is one of cfg.Ports, and drops
// every frame that carries cfg.Mark:
//
//	ld  mark           ; skb->mark (SKF_AD_MARK)
//	jeq #Mark, drop
//	ldh [12]           ; EtherType
//	jne #0x0800, drop
//	ld  [0]            ; destination MAC, first 4 bytes
//	jne #0xffffffff, drop
//	ldh [4]            ; destination MAC, last 2 bytes
//	jne #0xffff, drop
//	ldb [23]           ; IP protocol
//	jne #17, drop
//	ldh [20]           ; flags and fragment offset
//	jset #0x1fff, frag ; a non-first fragment has no UDP header
//	ldxb 4*([14]&0xf)  ; X = IP header length
//	ldh [x+16]         ; UDP destination port
//	jeq #port, accept  ; once per port
//	drop: ret #0
//	frag: ret #Snaplen (or #0 without Fragments)
//	accept: ret #Snaplen
func CaptureFilter(cfg FilterConfig) ([]bpf.RawInstruction, error) {
	if len(cfg.Ports) == 0 {
		return nil, fmt.Errorf("capture filter: no ports")
	}
	if len(cfg.Ports) > 200 {
		// Jump offsets are 8 bits.
		return nil, fmt.Errorf("capture filter: %d ports, at most 200", len(cfg.Ports))
	}
	// Build with symbolic targets, then resolve to relative skips.
	const (
		toDrop = iota + 1
		toFrag
		toAccept
	)
	type ins struct {
		in          bpf.Instruction
		jTrue, jFal int // symbolic targets for conditional jumps; 0 = next
	}
	var prog []ins
	add := func(in bpf.Instruction, jt, jf int) { prog = append(prog, ins{in, jt, jf}) }

	if cfg.Mark != 0 {
		add(bpf.LoadExtension{Num: bpf.ExtMark}, 0, 0)
		add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: cfg.Mark}, toDrop, 0)
	}
	add(bpf.LoadAbsolute{Off: 12, Size: 2}, 0, 0)
	add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800}, 0, toDrop)
	add(bpf.LoadAbsolute{Off: 0, Size: 4}, 0, 0)
	add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffffffff}, 0, toDrop)
	add(bpf.LoadAbsolute{Off: 4, Size: 2}, 0, 0)
	add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffff}, 0, toDrop)
	add(bpf.LoadAbsolute{Off: 23, Size: 1}, 0, 0)
	add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17}, 0, toDrop)
	add(bpf.LoadAbsolute{Off: 20, Size: 2}, 0, 0)
	add(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff}, toFrag, 0)
	add(bpf.LoadMemShift{Off: 14}, 0, 0)
	add(bpf.LoadIndirect{Off: 16, Size: 2}, 0, 0)
	for _, p := range cfg.Ports {
		add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p)}, toAccept, 0)
	}
	labels := map[int]int{toDrop: len(prog)}
	add(bpf.RetConstant{Val: 0}, 0, 0)
	labels[toFrag] = len(prog)
	if cfg.Fragments {
		add(bpf.RetConstant{Val: Snaplen}, 0, 0)
	} else {
		add(bpf.RetConstant{Val: 0}, 0, 0)
	}
	labels[toAccept] = len(prog)
	add(bpf.RetConstant{Val: Snaplen}, 0, 0)

	out := make([]bpf.Instruction, len(prog))
	for i, p := range prog {
		j, ok := p.in.(bpf.JumpIf)
		if !ok {
			out[i] = p.in
			continue
		}
		skip := func(target int) uint8 {
			if target == 0 {
				return 0
			}
			return uint8(labels[target] - i - 1)
		}
		j.SkipTrue, j.SkipFalse = skip(p.jTrue), skip(p.jFal)
		out[i] = j
	}
	raw, err := bpf.Assemble(out)
	if err != nil {
		return nil, fmt.Errorf("capture filter: %w", err)
	}
	return raw, nil
}
