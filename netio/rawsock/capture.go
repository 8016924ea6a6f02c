//go:build linux

package rawsock

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
	"github.com/snowsignal/snowsignal/netio/sockmem"
	"github.com/snowsignal/snowsignal/pipeline"
)

// DefaultReadBuffer is the capture socket's receive buffer. Per socket(7) the
// kernel doubles the value for bookkeeping; a few MiB absorb a search storm
// of small frames while the pipeline catches up.
const DefaultReadBuffer = 4 << 20

// A Capture is an AF_PACKET socket bound to one interface with the capture
// filter attached.
type Capture struct {
	conn  *socket.Conn
	rc    syscall.RawConn
	ifi   *net.Interface
	mm    *mmsg.Batch
	batch *pipeline.Batch
	start int  // first slot of batch that mm describes
	ready bool // mm describes batch's free slots (see readFn)
	got   int
	err   error
	read  func(fd uintptr) bool

	drops uint64 // kernel drops accumulated from PACKET_STATISTICS
	mem   sockmem.Reader
}

// ListenCapture opens a capture socket on ifi with the filter from cfg.
// Following mdlayher/packet, the socket is created with protocol 0 so it
// receives nothing, the filter is attached, and only then is it bound with
// ETH_P_ALL: no unfiltered frame can slip in before the filter.
func ListenCapture(ifi *net.Interface, cfg FilterConfig) (*Capture, error) {
	prog, err := CaptureFilter(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := socket.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0, "capture", nil)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", ifi.Name, err)
	}
	c := &Capture{conn: conn, ifi: ifi, mm: mmsg.NewBatch(pipeline.MaxBatch)}
	if err := c.setup(prog); err != nil {
		conn.Close()
		return nil, fmt.Errorf("capture on %s: %w", ifi.Name, err)
	}
	c.read = c.readFn
	return c, nil
}

func (c *Capture) setup(prog []bpf.RawInstruction) error {
	if err := c.conn.SetBPF(prog); err != nil {
		return err
	}
	// Best effort: without CAP_NET_ADMIN the kernel caps it at rmem_max.
	_ = c.conn.SetReadBuffer(DefaultReadBuffer)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: c.ifi.Index}
	if err := c.conn.Bind(sa); err != nil {
		return err
	}
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return err
	}
	c.rc = rc
	return nil
}

// ReadBatch fills b with the frames waiting on the socket, at least one,
// blocking until one arrives or the socket is closed. Each frame lands at
// the packet's Off. Frames too large for the packet buffers are discarded
// and counted in tooBig.
func (c *Capture) ReadBatch(b *pipeline.Batch) (tooBig int, err error) {
	c.batch, c.got, c.err, c.ready = b, 0, nil, false
	for {
		if err := c.rc.Read(c.read); err != nil {
			return 0, fmt.Errorf("capture on %s: %w", c.ifi.Name, err)
		}
		if c.err != nil {
			return 0, fmt.Errorf("capture on %s: %w", c.ifi.Name, os.NewSyscallError("recvmmsg", c.err))
		}
		tooBig = c.got
		c.got = 0
		if len(b.Pkts) > 0 || tooBig > 0 {
			return tooBig, nil
		}
	}
}

// readFn is the RawConn read callback: one recvmmsg(2) for as many frames as
// the batch has room for. Returning false asks the poller to wait.
func (c *Capture) readFn(fd uintptr) bool {
	b := c.batch
	// Once per ReadBatch: a read that finds nothing changes nothing.
	if !c.ready {
		c.start, c.ready = c.mm.Prepare(b, false), true
	}
	start := c.start
	n, err := c.mm.Recv(fd, unix.MSG_TRUNC)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	if err != nil {
		c.err = err
		return true
	}
	c.got += c.mm.Collect(b, start, n, false) // counted as too big by the caller
	c.ready = false
	return true
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

func htons(v uint16) uint16 { return v<<8 | v>>8 }
