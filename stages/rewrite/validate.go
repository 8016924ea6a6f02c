package rewrite

import (
	"net/netip"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
)

// validate decodes the frame the datagram carries (s.fr), from here on the
// packet's bytes, and checks that it is something a relay may put on this
// segment. The checks run in this order, and the first that fails names the
// drop reason:
//
//  1. Ethernet type IPv4, IP version 4 (not_ipv4);
//  2. the headers, and the datagram the IPv4 total length announces, are
//     all within the frame (truncated_frame); IPv4 header length at least
//     20 and total length at least that, a fragment ending within 65535
//     bytes (bad_ip_header);
//  3. IP protocol UDP (not_udp);
//  4. UDP length at least 8 and equal to the IP payload, or, for a first
//     fragment, covering what it carries (bad_udp_length);
//  5. UDP destination port one of the relayed ports (wrong_port); a later
//     fragment, which carries no port, must follow a first fragment that
//     passed (unmatched_fragment), and fragments must be enabled;
//  6. IP destination a broadcast address: limited, ours, or one that can be
//     a directed broadcast (not_broadcast);
//  7. IP source none that a client can have: unspecified, 0/8, loopback,
//     multicast, class E, limited or our own subnet's broadcast (bad_source);
//  8. the frame fits the interface's MTU (too_big).
//
// Steps 1 to 4 are frame.Decode's, in the order it checks them; 5 and 7 are
// the rules both directions share (stages/shared/rules). Bytes after the
// IPv4 total length (Ethernet padding) are ignored, and cut before the frame
// is injected.
//
// With --ipv6 an IPv6 frame is decoded too (frame.Decode6, whose errors map
// onto the same reasons; without --ipv6 it is not_ipv4), and checked in the
// same order: port and fragments (on the 32-bit fragment id) as above, the
// destination one of the relayed link-scope groups (not_broadcast), the
// source neither link-local (link_local_source) nor one no client can have
// (bad_source), the MTU (too_big).
func (s *Stage) validate(p *pipeline.Packet) bool {
	p.Off += p.Len - len(s.fr)
	p.Len = len(s.fr)
	var err error
	if s.cfg.IPv6 {
		err = p.Frame.DecodeIP(s.fr)
	} else {
		err = p.Frame.Decode(s.fr)
	}
	if err != nil {
		return s.rules.Refuse(pipeline.FrameReason(err))
	}
	if p.Frame.IPv6 {
		return s.rules.RelayedPort(p) &&
			s.rules.Fragment(p) &&
			s.rules.RelayedGroup(p) &&
			s.rules.GoodSource(p) &&
			s.fitsMTU(p)
	}
	return s.rules.RelayedPort(p) &&
		s.rules.Fragment(p) &&
		s.broadcast(p) &&
		s.rules.GoodSource(p) &&
		s.notOurBroadcast(p) &&
		s.fitsMTU(p)
}

// broadcast refuses a frame whose IP destination is not a broadcast address
// (see isBroadcast).
func (s *Stage) broadcast(p *pipeline.Packet) bool {
	if !isBroadcast(p.Frame.Dst, s.info) {
		return s.rules.Refuse(pipeline.ReasonNotBroadcast)
	}
	return true
}

// notOurBroadcast refuses the broadcast address of any of our subnets as IP
// source, which the shared source check cannot know (bad_source).
func (s *Stage) notOurBroadcast(p *pipeline.Packet) bool {
	if s.info.IsBroadcast(p.Frame.Src) {
		return s.rules.Refuse(pipeline.ReasonBadSource)
	}
	return true
}

// fitsMTU refuses a frame larger than the target interface's MTU (too_big).
func (s *Stage) fitsMTU(p *pipeline.Packet) bool {
	if p.Frame.Len() > frame.EthLen+s.info.MTU {
		return s.rules.Refuse(pipeline.ReasonTooBig)
	}
	return true
}

// meshReason is the drop reason for the mesh datagram d that failed to open
// (authenticated mesh) or to decode (legacy mesh) with err.
//
// A datagram of the other format, "SS" on a keyed relay or "SN" on one
// without a key, counts as bad_auth, not malformed_mesh: it is what a relay
// whose key configuration differs from ours sends, and that is what the
// operator must fix.
func meshReason(err error, d []byte) pipeline.Reason {
	switch err {
	case mesh.ErrReplay:
		return pipeline.ReasonReplay
	case mesh.ErrUnknownKey, mesh.ErrBadTag:
		return pipeline.ReasonBadAuth
	case mesh.ErrBadMagic:
		if mesh.Kind(d) != mesh.Unknown {
			return pipeline.ReasonBadAuth
		}
	}
	return pipeline.ReasonMalformedMesh // short, unknown magic, unknown version
}

// isBroadcast accepts the limited broadcast address, the broadcast address
// of any of our subnets, and any address that can be the directed broadcast of some
// subnet from /8 to /30 (its two lowest bits are set), since the origin's
// subnet is not known here. Multicast, loopback, 0/8 and class E (except
// limited) are not.
func isBroadcast(a netip.Addr, info *iface.Info) bool {
	if a == limited || info.IsBroadcast(a) {
		return true
	}
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[0] < 224 && b[0] != 127 && b[0] != 0 && b[3]&3 == 3
}
