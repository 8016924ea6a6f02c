//go:build linux

package capture

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/rawsock"
)

// downCheckEvery is how often the capture stage looks at its interface while
// it is down: the socket comes back by itself when the same interface comes
// back up, but never if the interface is removed or replaced.
const downCheckEvery = 100 * time.Millisecond

// watchDown is called while the interface the socket is bound to is down,
// each time a read times out. Per af_packet.c's packet_notifier, a socket
// bound to an interface that goes down is unhooked (and reports ENETDOWN
// once) and is hooked again when that interface comes up. An interface that
// is deleted is never seen again by the socket, even if one with the same
// name comes back (with a new index): then watchDown returns an error, so
// the stage ends and the supervisor restarts it on the new interface. It
// reports whether the interface is up again.
func (s *Stage) watchDown(sock *rawsock.Capture, bound *iface.Info) (up bool, err error) {
	cur, err := iface.Lookup(s.cfg.Interface)
	switch {
	case errors.Is(err, iface.ErrNotFound):
		return false, fmt.Errorf("interface removed (%w): %w", unix.ENODEV, err)
	case err != nil:
		// A netlink hiccup says nothing about the interface: look again.
	case cur.Index != bound.Index:
		return false, fmt.Errorf("interface %q was re-created (index %d, was %d)", s.cfg.Interface, cur.Index, bound.Index)
	case cur.Up:
		if err := sock.SetReadDeadline(time.Time{}); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, sock.SetReadDeadline(time.Now().Add(downCheckEvery))
}
