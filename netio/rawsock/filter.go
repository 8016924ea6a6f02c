//go:build linux

package rawsock

import (
	"fmt"
	"net/netip"

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
	// IPv6 adds IPv6 to the program (see CaptureFilter): UDP datagrams to
	// link-scope multicast (ff02::/16) on the same ports. Off, the program is
	// the IPv4 one, byte for byte.
	IPv6 bool
	// IPv6Groups, when not empty, narrows IPv6 to these link-scope groups,
	// at most MaxFilterGroups; empty lets every ff02::/16 group through and
	// leaves the group check to user space (frame.CheckGroup).
	IPv6Groups []netip.Addr
}

// MaxFilterGroups is how many IPv6 groups the capture filter tests: eight
// instructions each, and conditional jumps reach 255 instructions.
const MaxFilterGroups = 16

// MaxFilterExtHeaders is how many hop-by-hop or destination options
// headers the capture filter skips before the UDP (or fragment) header.
// Classic BPF has no loops, so the walk is unrolled; a longer chain is
// dropped in the kernel. Hop-by-hop may only be the first (RFC 8200 §4.3).
const MaxFilterExtHeaders = 2

// CaptureFilter assembles the classic BPF program attached to the capture
// socket. It accepts, whole, the IPv4 UDP frames sent to the Ethernet
// broadcast address whose destination port is one of cfg.Ports, and drops
// every frame that carries cfg.Mark:
//
//	ld  mark           ; skb->mark (SKF_AD_MARK)
//	jeq #Mark, drop
//	ldh [12]           ; EtherType
//	jne #0x0800, drop  ; (IPv6: jne #0x0800, ipv6)
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
//
// With cfg.IPv6 the IPv4 part keeps its own drop/frag/accept returns (jumps
// only go forward, at most 255 instructions), and the IPv6 part follows:
//
//	ipv6: jne #0x86dd, drop
//	ldh [0]            ; destination MAC, first 2 bytes
//	jne #0x3333, drop  ; IPv6 multicast (RFC 2464 §7)
//	ldb [14]
//	and #0xf0
//	jne #0x60, drop    ; version 6
//	ldh [38]           ; destination address, first 16 bits
//	jne #0xff02, drop  ; link-scope multicast
//	ld [38]..ld [50]   ; per group in IPv6Groups: all 128 bits, else drop
//	ret #0             ; a drop the checks above reach with 8-bit jumps
//	ldb [20]           ; next header
//	ldx #54            ; X = where the header it announces starts
//	walk, twice (MaxFilterExtHeaders):
//	  jeq #17, udp
//	  jeq #44, frag6
//	  jne #0 (first step) or #60, drop ; hop-by-hop (first only), destination options
//	  ldb [x+0]; st M[0]                 ; its next header
//	  ldb [x+1]; add #1; lsh #3; add x; tax ; X += (length+1)*8
//	  ld M[0]
//	jeq #17, udp
//	jne #44, drop      ; a deeper chain is dropped
//	frag6: ldh [x+2]   ; fragment offset and M
//	jset #0xfff8, later
//	ldb [x+0]          ; a first (or atomic) fragment: UDP must follow
//	jne #17, drop
//	txa; add #8; tax   ; X = the UDP header
//	ja udp
//	later: ldb [x+0]
//	jeq #17, frag, drop ; a later fragment of a UDP datagram
//	udp: ldh [x+2]     ; UDP destination port
//	jeq #port, accept
//	drop, frag, accept as above
//
// A routing header, ESP, AH or anything else before UDP is dropped in the
// kernel; frame.Decode6 judges what passes in full.
func CaptureFilter(cfg FilterConfig) ([]bpf.RawInstruction, error) {
	if len(cfg.Ports) == 0 {
		return nil, fmt.Errorf("capture filter: no ports")
	}
	if len(cfg.Ports) > 200 {
		// Jump offsets are 8 bits.
		return nil, fmt.Errorf("capture filter: %d ports, at most 200", len(cfg.Ports))
	}
	if len(cfg.IPv6Groups) > MaxFilterGroups {
		return nil, fmt.Errorf("capture filter: %d IPv6 groups, at most %d", len(cfg.IPv6Groups), MaxFilterGroups)
	}
	for _, g := range cfg.IPv6Groups {
		if !g.Is6() || g.Is4In6() || g.Zone() != "" || !linkScope.Contains(g) {
			return nil, fmt.Errorf("capture filter: IPv6 group %s is not link-scope multicast (ff02::/16)", g)
		}
	}
	var a asm
	if cfg.Mark != 0 {
		a.add(bpf.LoadExtension{Num: bpf.ExtMark}, 0, 0)
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: cfg.Mark}, toDrop, 0)
	}
	a.add(bpf.LoadAbsolute{Off: 12, Size: 2}, 0, 0)
	notIPv4 := toDrop
	if cfg.IPv6 {
		notIPv4 = toIPv6
	}
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800}, 0, notIPv4)
	a.add(bpf.LoadAbsolute{Off: 0, Size: 4}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffffffff}, 0, toDrop)
	a.add(bpf.LoadAbsolute{Off: 4, Size: 2}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffff}, 0, toDrop)
	a.add(bpf.LoadAbsolute{Off: 23, Size: 1}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17}, 0, toDrop)
	a.add(bpf.LoadAbsolute{Off: 20, Size: 2}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff}, toFrag, 0)
	a.add(bpf.LoadMemShift{Off: 14}, 0, 0)
	a.add(bpf.LoadIndirect{Off: 16, Size: 2}, 0, 0)
	a.ports(cfg.Ports)
	a.returns(cfg.Fragments)
	if cfg.IPv6 {
		a.label(toIPv6)
		a.ipv6(cfg)
		a.returns(cfg.Fragments)
	}
	raw, err := a.assemble()
	if err != nil {
		return nil, fmt.Errorf("capture filter: %w", err)
	}
	return raw, nil
}

// Symbolic jump targets. A label may be placed more than once: a jump goes
// to its first placement after the jump (BPF jumps only go forward).
const (
	toDrop = iota + 1
	toFrag
	toAccept
	toIPv6
	toGroupOK
	toUDP6
	toFrag6
	toLater6
	toNextGroup // per group block; placed at the start of the next one
	toExt       // per walk step: skip the header X points at
)

// linkScope is ff02::/16, the IPv6 groups the filter can relay.
var linkScope = netip.MustParsePrefix("ff02::/16")

// asm builds a program with symbolic jump targets and resolves them.
type asm struct {
	prog   []asmIns
	labels map[int][]int // label -> positions, ascending
}

type asmIns struct {
	in          bpf.Instruction
	jTrue, jFal int // symbolic targets of a conditional jump (or jTrue of Jump); 0 = next
}

func (a *asm) add(in bpf.Instruction, jt, jf int) { a.prog = append(a.prog, asmIns{in, jt, jf}) }

func (a *asm) label(l int) {
	if a.labels == nil {
		a.labels = map[int][]int{}
	}
	a.labels[l] = append(a.labels[l], len(a.prog))
}

// ports tests the destination port in A against every relayed port.
func (a *asm) ports(ports []uint16) {
	for _, p := range ports {
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p)}, toAccept, 0)
	}
}

// returns places the drop, frag and accept returns.
func (a *asm) returns(fragments bool) {
	a.label(toDrop)
	a.add(bpf.RetConstant{Val: 0}, 0, 0)
	a.label(toFrag)
	if fragments {
		a.add(bpf.RetConstant{Val: Snaplen}, 0, 0)
	} else {
		a.add(bpf.RetConstant{Val: 0}, 0, 0)
	}
	a.label(toAccept)
	a.add(bpf.RetConstant{Val: Snaplen}, 0, 0)
}

// ipv6 emits the IPv6 part; A holds the EtherType.
func (a *asm) ipv6(cfg FilterConfig) {
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x86dd}, 0, toDrop)
	a.add(bpf.LoadAbsolute{Off: 0, Size: 2}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x3333}, 0, toDrop)
	a.add(bpf.LoadAbsolute{Off: 14, Size: 1}, 0, 0)
	a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x60}, 0, toDrop)
	a.add(bpf.LoadAbsolute{Off: 38, Size: 2}, 0, 0)
	if len(cfg.IPv6Groups) == 0 {
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xff02}, toGroupOK, toDrop)
	} else {
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xff02}, 0, toDrop)
	}
	for i, g := range cfg.IPv6Groups {
		b := g.As16()
		next := toNextGroup
		if i == len(cfg.IPv6Groups)-1 {
			next = toDrop
		}
		for w := 0; w < 4; w++ {
			v := uint32(b[4*w])<<24 | uint32(b[4*w+1])<<16 | uint32(b[4*w+2])<<8 | uint32(b[4*w+3])
			a.add(bpf.LoadAbsolute{Off: uint32(38 + 4*w), Size: 4}, 0, 0)
			if w < 3 {
				a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, 0, next)
			} else {
				a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v}, toGroupOK, next)
			}
		}
		a.label(toNextGroup)
	}
	// A drop within reach of the checks above: the one at the end may be
	// more than 255 instructions away.
	a.label(toDrop)
	a.add(bpf.RetConstant{Val: 0}, 0, 0)
	a.label(toGroupOK)
	a.add(bpf.LoadAbsolute{Off: 20, Size: 1}, 0, 0)
	a.add(bpf.LoadConstant{Dst: bpf.RegX, Val: 54}, 0, 0)
	for step := 0; step < MaxFilterExtHeaders; step++ {
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17}, toUDP6, 0)
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 44}, toFrag6, 0)
		if step == 0 {
			a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0}, toExt, 0) // hop-by-hop
		}
		a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 60}, 0, toDrop)
		a.label(toExt)
		a.add(bpf.LoadIndirect{Off: 0, Size: 1}, 0, 0)
		a.add(bpf.StoreScratch{Src: bpf.RegA, N: 0}, 0, 0)
		a.add(bpf.LoadIndirect{Off: 1, Size: 1}, 0, 0)
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1}, 0, 0)
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3}, 0, 0)
		a.add(bpf.ALUOpX{Op: bpf.ALUOpAdd}, 0, 0)
		a.add(bpf.TAX{}, 0, 0)
		a.add(bpf.LoadScratch{Dst: bpf.RegA, N: 0}, 0, 0)
	}
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17}, toUDP6, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 44}, 0, toDrop)
	a.label(toFrag6)
	a.add(bpf.LoadIndirect{Off: 2, Size: 2}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0xfff8}, toLater6, 0)
	a.add(bpf.LoadIndirect{Off: 0, Size: 1}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17}, 0, toDrop)
	a.add(bpf.TXA{}, 0, 0)
	a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 8}, 0, 0)
	a.add(bpf.TAX{}, 0, 0)
	a.add(bpf.Jump{}, toUDP6, 0)
	a.label(toLater6)
	a.add(bpf.LoadIndirect{Off: 0, Size: 1}, 0, 0)
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17}, toFrag, toDrop)
	a.label(toUDP6)
	a.add(bpf.LoadIndirect{Off: 2, Size: 2}, 0, 0)
	a.ports(cfg.Ports)
}

// assemble resolves the symbolic targets and assembles the program.
func (a *asm) assemble() ([]bpf.RawInstruction, error) {
	out := make([]bpf.Instruction, len(a.prog))
	for i, p := range a.prog {
		skip := func(target int) (uint32, error) {
			if target == 0 {
				return 0, nil
			}
			for _, pos := range a.labels[target] {
				if pos > i {
					return uint32(pos - i - 1), nil
				}
			}
			return 0, fmt.Errorf("instruction %d: no target %d after it", i, target)
		}
		jt, err := skip(p.jTrue)
		if err != nil {
			return nil, err
		}
		jf, err := skip(p.jFal)
		if err != nil {
			return nil, err
		}
		switch in := p.in.(type) {
		case bpf.JumpIf:
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("instruction %d: jump of %d instructions, at most 255: too many ports or groups", i, max(jt, jf))
			}
			in.SkipTrue, in.SkipFalse = uint8(jt), uint8(jf)
			out[i] = in
		case bpf.Jump:
			in.Skip = jt
			out[i] = in
		default:
			out[i] = p.in
		}
	}
	return bpf.Assemble(out)
}
