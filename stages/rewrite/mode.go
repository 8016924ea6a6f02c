package rewrite

import "fmt"

// DestMode is what the relay does with the IP destination of a broadcast
// it puts on its segment (--rebroadcast-destination).
type DestMode uint8

// Destination modes.
const (
	// Auto keeps 255.255.255.255 and this segment's broadcast address and
	// rewrites any other destination (another subnet's directed broadcast)
	// to this segment's broadcast address.
	Auto DestMode = iota
	// Keep never changes the destination.
	Keep
	// Limited always sends to 255.255.255.255.
	Limited
	// Subnet always sends to this segment's broadcast address.
	Subnet
)

// DestModes lists the accepted names, for help and errors.
var DestModes = []string{"auto", "keep", "limited", "subnet"}

// ParseDestMode parses a --rebroadcast-destination value.
func ParseDestMode(s string) (DestMode, error) {
	for i, n := range DestModes {
		if s == n {
			return DestMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown rebroadcast destination %q (allowed: auto, keep, limited, subnet)", s)
}

func (m DestMode) String() string {
	if int(m) < len(DestModes) {
		return DestModes[m]
	}
	return "unknown"
}
