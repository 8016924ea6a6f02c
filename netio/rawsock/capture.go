//go:build linux

package rawsock

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
	"github.com/snowsignal/snowsignal/netio/sockmem"
)

// DefaultReadBuffer is the capture socket's receive buffer. Per socket(7) the
// kernel doubles the value for bookkeeping; a few MiB absorb a search storm
// of small frames while the pipeline catches up.
const DefaultReadBuffer = 4 << 20

// A Capture is an AF_PACKET socket bound to one interface with the capture
// filter attached.
type Capture struct {
	conn *socket.Conn
	rc   syscall.RawConn
	ifi  *net.Interface
	r    *mmsg.Reader

	drops uint64 // kernel drops accumulated from PACKET_STATISTICS
	mem   sockmem.Reader
}

// ListenCapture opens a capture socket on ifi with the filter from cfg,
// bound with ETH_P_ALL once the filter is attached (see open).
func ListenCapture(ifi *net.Interface, cfg FilterConfig) (*Capture, error) {
	prog, err := CaptureFilter(cfg)
	if err != nil {
		return nil, err
	}
	conn, rc, err := open(ifi, "capture", unix.ETH_P_ALL, prog, func(conn *socket.Conn) error {
		// Best effort: without CAP_NET_ADMIN the kernel caps it at rmem_max.
		_ = conn.SetReadBuffer(DefaultReadBuffer)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", ifi.Name, err)
	}
	c := &Capture{conn: conn, rc: rc, ifi: ifi, r: mmsg.NewReader(mmsg.MaxBatch)}
	c.r.Flags = unix.MSG_TRUNC // a frame's real length, to tell one cut short
	return c, nil
}

// ReadBatch reads the frames waiting on the socket, at least one, blocking
// until one arrives or the socket is closed or its read deadline passes.
// Frame k lands at bufs[k][offset:] with its length in sizes[k], for k < n;
// one call reads at most mmsg.MaxBatch. Frames too large for their buffer
// are discarded and counted in tooBig, and their buffers move to the end of
// bufs: a caller that tracks buffers by position takes bufs back in its new
// order.
func (c *Capture) ReadBatch(bufs [][]byte, offset int, sizes []int) (n, tooBig int, err error) {
	n, tooBig, err = c.r.Read(c.rc, bufs, offset, sizes, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("capture on %s: %w", c.ifi.Name, err)
	}
	return n, tooBig, nil
}

// KernelDrops returns how many frames the kernel dropped for this socket
// because its receive queue was full, since the socket was opened.
// Per packet(7), reading PACKET_STATISTICS resets the kernel's counters, so
// they are accumulated here; call it from one goroutine at a time.
func (c *Capture) KernelDrops() (uint64, error) {
	st, err := c.conn.GetsockoptTpacketStats(unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return c.drops, fmt.Errorf("capture on %s: %w", c.ifi.Name, err)
	}
	c.drops += uint64(st.Drops)
	return c.drops, nil
}

// Backlogged reports whether the socket's receive queue holds more than a
// quarter of its buffer (see sockmem.Info.Backlogged); false if that cannot be read.
func (c *Capture) Backlogged() bool {
	info, err := c.mem.Read(c.rc)
	return err == nil && info.Backlogged()
}

// Close closes the socket, unblocking a pending ReadBatch.
func (c *Capture) Close() error { return c.conn.Close() }

// SetReadDeadline sets the deadline for ReadBatch, which then fails with an
// error wrapping os.ErrDeadlineExceeded; the zero time removes it.
func (c *Capture) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// CloseOnDone closes the socket when ctx is done; the returned function
// stops the watch.
func (c *Capture) CloseOnDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.conn.Close() })
}
