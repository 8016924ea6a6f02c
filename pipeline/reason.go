package pipeline

import "github.com/snowsignal/snowsignal/netio/frame"

// A Reason is why a packet was dropped. Every drop in the relay is counted
// under exactly one reason; the names are stable metric label values.
type Reason uint8

// Drop reasons.
const (
	ReasonNotBroadcast       Reason = iota // Ethernet or IP destination is not a broadcast
	ReasonWrongPort                        // UDP destination port is not a relayed broadcast port
	ReasonOwnInjection                     // a frame this relay injected came back to its capture
	ReasonMalformedFrame                   // the Ethernet/IPv4/UDP frame did not decode
	ReasonMalformedMesh                    // a mesh datagram with a bad magic, length or header
	ReasonUnknownPeer                      // a mesh datagram from an address outside the peer set
	ReasonDuplicate                        // the same datagram was seen within the dedup window
	ReasonRateLimited                      // a token bucket was empty
	ReasonBadSource                        // IP source is a broadcast, multicast, loopback, 0.0.0.0/8 or class E address
	ReasonBadAuth                          // mesh authentication: bad tag, another key, or a datagram of the other format (SS on a keyed mesh, SN without a key)
	ReasonReplay                           // authenticated mesh: sequence number seen or too old
	ReasonFragment                         // an IP fragment with no matching first fragment
	ReasonTooBig                           // a frame larger than the interface can send
	ReasonSendError                        // the kernel refused to send it, or the peer's host bounced it (ICMP error)
	ReasonSameSegment                      // a mesh datagram from a relay on our own segment: its frame is already here
	ReasonOtherInjector                    // another relay on our segment is the one that injects this datagram
	ReasonNotIPv4                          // inbound frame: EtherType is not IPv4, or the IP version is not 4
	ReasonTruncatedFrame                   // inbound frame: a header, or the datagram its IPv4 total length announces, is cut short
	ReasonBadIPHeader                      // inbound frame: IPv4 header length below 20, total length below it, or a fragment past 65535
	ReasonNotUDP                           // inbound frame: IP protocol is not UDP
	ReasonBadUDPLength                     // inbound frame: UDP length below 8 or not matching the IP payload
	ReasonNeighbourInjection               // captured a frame another relay on our segment injected
	ReasonLinkLocalSource                  // IPv6 source is link-local (fe80::/10): no server on another segment can answer it
	ReasonStale                            // waited in this relay longer than --max-delay since the kernel received it
	ReasonOverload                         // waited longer than --queue-target while a standing queue persisted: the relay receives more than it can send
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNotBroadcast:       "not_broadcast",
	ReasonWrongPort:          "wrong_port",
	ReasonOwnInjection:       "own_injection",
	ReasonMalformedFrame:     "malformed_frame",
	ReasonMalformedMesh:      "malformed_mesh",
	ReasonUnknownPeer:        "unknown_peer",
	ReasonDuplicate:          "duplicate",
	ReasonRateLimited:        "rate_limited",
	ReasonBadSource:          "bad_source",
	ReasonBadAuth:            "bad_auth",
	ReasonReplay:             "replay",
	ReasonFragment:           "unmatched_fragment",
	ReasonTooBig:             "too_big",
	ReasonSendError:          "send_error",
	ReasonSameSegment:        "same_segment",
	ReasonOtherInjector:      "other_injector",
	ReasonNotIPv4:            "not_ipv4",
	ReasonTruncatedFrame:     "truncated_frame",
	ReasonBadIPHeader:        "bad_ip_header",
	ReasonNotUDP:             "not_udp",
	ReasonBadUDPLength:       "bad_udp_length",
	ReasonNeighbourInjection: "neighbour_injection",
	ReasonLinkLocalSource:    "link_local_source",
	ReasonStale:              "stale",
	ReasonOverload:           "overload",
}

// reasonHints tell the operator what to change, for the reasons whose cause
// is a client's or host's setting rather than the network's doing (stale,
// overload: the relay's CPU, or its --max-delay and --queue-target).
var reasonHints = [NumReasons]string{
	ReasonLinkLocalSource: "client uses a link-local source; give it a global or ULA address",
	ReasonStale:           "give the relay more CPU, or raise --max-delay if late searches are still worth relaying",
	ReasonOverload:        "give the relay more CPU; or raise --queue-target, or set it to 0, to queue a storm (late, up to --max-delay) instead of shedding it",
}

// Hint returns what an operator should do about drops for r, or "" when the
// reason needs no advice; `snowsignal stats` prints it beside the count.
func (r Reason) Hint() string {
	if r < NumReasons {
		return reasonHints[r]
	}
	return ""
}

// ReasonNamed returns the reason whose label value is name.
func ReasonNamed(name string) (Reason, bool) {
	for r, n := range reasonNames {
		if n == name {
			return Reason(r), true
		}
	}
	return NumReasons, false
}

// String returns the reason's stable label value.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// FrameReason is the drop reason for a frame that frame.Decode rejected
// with err: one reason per layer, so an operator can tell a probe (not_ipv4,
// not_udp) from a peer that cuts frames (truncated_frame: the Python relay
// cuts every frame after 1024 bytes) or builds them wrong. The capture side
// and the mesh side use the same reasons.
//
// The IPv6 errors (frame.Decode6, frame.CheckSource6, frame.CheckGroup) map
// onto the same reasons (see docs/IPV6.md), except a link-local source,
// which has its own, link_local_source: the operator must fix the client.
func FrameReason(err error) Reason {
	switch err {
	case frame.ErrTruncated:
		return ReasonTruncatedFrame
	case frame.ErrNotIPv4, frame.ErrBadIPVersion, frame.ErrNotIPv6:
		return ReasonNotIPv4
	case frame.ErrBadIHL, frame.ErrBadTotalLength, frame.ErrBadFragment,
		frame.ErrZeroPayloadLength, frame.ErrBadExtHeader, frame.ErrExtChainTooLong, frame.ErrRoutingHeader:
		return ReasonBadIPHeader
	case frame.ErrNotUDP, frame.ErrIPsec, frame.ErrUnknownExtHeader:
		return ReasonNotUDP
	case frame.ErrBadUDPLength:
		return ReasonBadUDPLength
	case frame.ErrBadSource:
		return ReasonBadSource
	case frame.ErrLinkLocalSource:
		return ReasonLinkLocalSource
	case frame.ErrNotLinkScope, frame.ErrGroupNotRelayed:
		return ReasonNotBroadcast
	}
	return ReasonMalformedFrame
}
