//go:build linux

package doctor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/sockdiag"
)

// Host returns the facts of this machine (its network namespace), asking a
// running relay with stats.
func Host(stats func(ctx context.Context, path string) ([]byte, error)) Facts {
	return Facts{
		Capabilities: func() (uint64, error) {
			b, err := os.ReadFile("/proc/self/status")
			if err != nil {
				return 0, err
			}
			return parseCapEff(string(b))
		},
		Interface:      hostInterface,
		InterfaceNames: iface.Names,
		Sysctl: func(name string) (string, error) {
			b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
			return strings.TrimSpace(string(b)), err
		},
		BindUDP: func(addr netip.AddrPort) error {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
			if err != nil {
				return err
			}
			return c.Close()
		},
		BoundUDP:   func(ports []uint16) ([]netip.AddrPort, error) { return sockdiag.UDPBound(sockdiag.DumpUDP, ports) },
		LocalAddrs: iface.LocalAddrs,
		LookupHost: func(ctx context.Context, name string) ([]netip.Addr, error) {
			as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
			for i := range as {
				as[i] = as[i].Unmap()
			}
			return as, err
		},
		Probe:          hostProbe,
		Firewall:       nftChains,
		LegacyIPTables: legacyIPTables,
		Stats:          stats,
	}
}

func hostInterface(name string) (*Iface, error) {
	info, err := iface.Lookup(name)
	if errors.Is(err, iface.ErrNotFound) {
		return nil, iface.ErrNotFound // checkInterface lists those that exist
	}
	if err != nil {
		return nil, err
	}
	x := &Iface{Name: info.Name, Up: info.Up, MTU: info.MTU}
	for _, a := range info.Addrs {
		ia := IfaceAddr{Prefix: a.Prefix}
		if a.BroadcastSet {
			ia.Broadcast = a.Broadcast
		}
		x.Addrs = append(x.Addrs, ia)
	}
	return x, nil
}

// hostProbe sends req from a connected UDP socket, so that an ICMP port
// unreachable comes back as ECONNREFUSED, and waits for a matching reply.
func hostProbe(ctx context.Context, peer netip.AddrPort, req []byte, timeout time.Duration, match func([]byte) bool) ([]byte, time.Duration, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(peer))
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	start := time.Now()
	if _, err := c.Write(req); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, 0, err
		}
		if match(buf[:n]) {
			return buf[:n], time.Since(start), nil
		}
	}
}

func legacyIPTables() ([]string, error) {
	var names []string
	for _, f := range []string{"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		for _, n := range strings.Fields(string(b)) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names, nil
}

var familyNames = map[nftables.TableFamily]string{
	nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6",
	nftables.TableFamilyARP: "arp", nftables.TableFamilyNetdev: "netdev", nftables.TableFamilyBridge: "bridge",
}

var hookNames = map[nftables.ChainHook]string{
	*nftables.ChainHookPrerouting: "prerouting", *nftables.ChainHookInput: "input", *nftables.ChainHookForward: "forward",
	*nftables.ChainHookOutput: "output", *nftables.ChainHookPostrouting: "postrouting",
}

// nftChains reads every nftables chain and its rules over netlink.
func nftChains() ([]Chain, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	sets := map[*nftables.Table][]*nftables.Set{}
	var out []Chain
	for _, ch := range chains {
		if ch.Table.Family == nftables.TableFamilyARP || ch.Table.Family == nftables.TableFamilyBridge {
			continue
		}
		x := Chain{Family: familyNames[ch.Table.Family], Table: ch.Table.Name, Name: ch.Name}
		if ch.Hooknum != nil {
			x.Hook = hookNames[*ch.Hooknum]
			if ch.Table.Family == nftables.TableFamilyNetdev {
				x.Hook = "ingress"
			}
			x.Policy = "accept"
			if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
				x.Policy = "drop"
			}
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("nftables: rules of %s %s %s: %w", x.Family, x.Table, x.Name, err)
		}
		for _, r := range rules {
			x.Rules = append(x.Rules, reduceRule(r, func(name string, id uint32) []PortRange {
				if _, ok := sets[ch.Table]; !ok {
					sets[ch.Table], _ = c.GetSets(ch.Table)
				}
				for _, s := range sets[ch.Table] {
					if s.Name == name || (name == "" && s.ID == id) {
						els, err := c.GetSetElements(s)
						if err != nil {
							return nil
						}
						return setRanges(s, els)
					}
				}
				return nil
			}))
		}
		out = append(out, x)
	}
	return out, nil
}

// reduceRule follows the registers of r's expressions: which hold the
// layer-4 protocol or the destination port, and what they are compared to.
func reduceRule(r *nftables.Rule, set func(name string, id uint32) []PortRange) Rule {
	out := Rule{Handle: r.Handle}
	regs := map[uint32]string{}
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch {
			case e.SourceRegister:
				out.Other = true
			case e.Key == expr.MetaKeyL4PROTO:
				regs[e.Register] = "proto"
			case e.Key == expr.MetaKeyNFPROTO:
				regs[e.Register] = "neutral"
			default:
				regs[e.Register] = "other"
			}
		case *expr.Payload:
			switch {
			case e.OperationType != expr.PayloadLoad:
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 9 && e.Len == 1:
				regs[e.DestRegister] = "proto"
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2 && e.Len == 2:
				regs[e.DestRegister] = "dport"
			default:
				regs[e.DestRegister] = "other"
			}
		case *expr.Cmp:
			switch reg := regs[e.Register]; {
			case reg == "neutral":
			case e.Op != expr.CmpOpEq:
				out.Other = true
			case reg == "proto" && len(e.Data) == 1:
				out.Proto = int(e.Data[0])
			case reg == "dport" && len(e.Data) == 2:
				p := binary.BigEndian.Uint16(e.Data)
				out.DPorts = append(out.DPorts, PortRange{p, p})
			default:
				out.Other = true
			}
		case *expr.Range:
			if regs[e.Register] == "dport" && e.Op == expr.CmpOpEq && len(e.FromData) == 2 && len(e.ToData) == 2 {
				out.DPorts = append(out.DPorts, PortRange{binary.BigEndian.Uint16(e.FromData), binary.BigEndian.Uint16(e.ToData)})
			} else {
				out.Other = true
			}
		case *expr.Lookup:
			if regs[e.SourceRegister] == "dport" && !e.Invert && !e.IsDestRegSet {
				if rs := set(e.SetName, e.SetID); rs != nil {
					out.DPorts = append(out.DPorts, rs...)
					continue
				}
			}
			out.Other = true
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictDrop:
				out.Verdict = "drop"
			case expr.VerdictAccept:
				out.Verdict = "accept"
			case expr.VerdictJump, expr.VerdictGoto:
				out.Verdict = "jump"
			}
		case *expr.Reject:
			out.Verdict = "reject"
		case *expr.Counter, *expr.Log, *expr.Immediate:
		default:
			out.Other = true // conntrack state, limits, ...: not every datagram
		}
	}
	return out
}

// setRanges turns a set of ports (or port intervals) into ranges.
func setRanges(s *nftables.Set, els []nftables.SetElement) []PortRange {
	slices.SortFunc(els, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	var out []PortRange
	for i, e := range els {
		if len(e.Key) != 2 || e.IntervalEnd {
			continue
		}
		p := binary.BigEndian.Uint16(e.Key)
		end := p
		if s.Interval {
			end = 0xffff
			if i+1 < len(els) && els[i+1].IntervalEnd && len(els[i+1].Key) == 2 {
				end = binary.BigEndian.Uint16(els[i+1].Key) - 1
			}
		}
		out = append(out, PortRange{p, end})
	}
	return out
}
