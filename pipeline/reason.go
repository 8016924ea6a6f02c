package pipeline

// A Reason is why a packet was dropped. Every drop in the relay is counted
// under exactly one reason; the names are stable metric label values.
type Reason uint8

// Drop reasons.
const (
	ReasonNotBroadcast   Reason = iota // Ethernet or IP destination is not a broadcast
	ReasonWrongPort                    // UDP destination port is not a relayed broadcast port
	ReasonOwnInjection                 // a frame this relay injected came back to its capture
	ReasonMalformedFrame               // the Ethernet/IPv4/UDP frame did not decode
	ReasonMalformedMesh                // a mesh datagram with a bad magic, length or header
	ReasonUnknownPeer                  // a mesh datagram from an address outside the peer set
	ReasonDuplicate                    // the same datagram was seen within the dedup window
	ReasonRateLimited                  // a token bucket was empty
	ReasonBadSource                    // IP source is broadcast, multicast, loopback or unspecified
	ReasonBadAuth                      // authenticated mesh: bad tag or unknown key
	ReasonReplay                       // authenticated mesh: sequence number seen or too old
	ReasonFragment                     // an IP fragment with no matching first fragment
	ReasonTooBig                       // a frame larger than the interface can send
	ReasonSendError                    // the kernel refused to send it
	ReasonSameSegment                  // a mesh datagram from a relay on our own segment: its frame is already here
	ReasonOtherInjector                // another relay on our segment is the one that injects this datagram
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNotBroadcast:   "not_broadcast",
	ReasonWrongPort:      "wrong_port",
	ReasonOwnInjection:   "own_injection",
	ReasonMalformedFrame: "malformed_frame",
	ReasonMalformedMesh:  "malformed_mesh",
	ReasonUnknownPeer:    "unknown_peer",
	ReasonDuplicate:      "duplicate",
	ReasonRateLimited:    "rate_limited",
	ReasonBadSource:      "bad_source",
	ReasonBadAuth:        "bad_auth",
	ReasonReplay:         "replay",
	ReasonFragment:       "unmatched_fragment",
	ReasonTooBig:         "too_big",
	ReasonSendError:      "send_error",
	ReasonSameSegment:    "same_segment",
	ReasonOtherInjector:  "other_injector",
}

// String returns the reason's stable label value.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
