//go:build linux

package assembly

import (
	"fmt"

	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
)

// buildLimits creates the rate limiters the configuration asks for.
func (r *Relay) buildLimits() error {
	var err error
	if r.cfg.RateLimit > 0 {
		if r.ClientLimit, err = ratelimit.New(ratelimit.Config{Rate: r.cfg.RateLimit}); err != nil {
			return fmt.Errorf("client rate limit: %w", err)
		}
	}
	if r.cfg.PeerRateLimit > 0 {
		if r.PeerLimit, err = ratelimit.New(ratelimit.Config{Rate: r.cfg.PeerRateLimit}); err != nil {
			return fmt.Errorf("peer rate limit: %w", err)
		}
	}
	return nil
}

// RateLimited returns, for the client and the peer rate limits, the sources
// that had packets dropped, most first (nil for a limit that is off).
func (r *Relay) RateLimited() (clients, peers []ratelimit.Source) {
	if r.ClientLimit != nil {
		clients = r.ClientLimit.Sources()
	}
	if r.PeerLimit != nil {
		peers = r.PeerLimit.Sources()
	}
	return clients, peers
}
