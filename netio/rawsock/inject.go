//go:build linux

package rawsock

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
)

// An Injector writes whole Ethernet frames onto one interface.
type Injector struct {
	conn *socket.Conn
	rc   syscall.RawConn
	ifi  *net.Interface
	mm   *mmsg.Batch
	off  int
	sent int
	err  error
	wfn  func(fd uintptr) bool

	retried bool // the frame at off failed once already

	// to6 is the address IPv6 frames are sent to: the socket's interface
	// with protocol ETH_P_IPV6 (see WriteBatch).
	to6 unix.RawSockaddrLinklayer

	// Dropped counts frames the kernel refused with ENOBUFS.
	Dropped uint64
}

// dropAll is a filter that accepts nothing: the inject socket is bound with
// ETH_P_IP so frames it sends carry that protocol, and per packet(7) binding
// with a protocol also subscribes the socket to receive such frames.
var dropAll = []bpf.RawInstruction{{Op: 0x06, K: 0}} // ret #0

// ListenInject opens an inject socket on ifi. Every frame it sends carries
// mark in skb->mark (SO_MARK), which the capture filter uses to recognise the
// relay's own injections; zero leaves the mark unset.
func ListenInject(ifi *net.Interface, mark uint32) (*Injector, error) {
	conn, rc, err := open(ifi, "inject", unix.ETH_P_IP, dropAll, func(conn *socket.Conn) error {
		if mark == 0 {
			return nil
		}
		return conn.SetsockoptInt(unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	})
	if err != nil {
		return nil, fmt.Errorf("inject on %s: %w", ifi.Name, err)
	}
	in := &Injector{conn: conn, rc: rc, ifi: ifi, mm: mmsg.NewBatch(mmsg.MaxBatch),
		to6: unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IPV6), Ifindex: int32(ifi.Index)}}
	in.wfn = in.writeFn
	return in, nil
}

// WriteBatch sends every buffer of bufs as one Ethernet frame, in one
// sendmmsg(2) per mmsg.MaxBatch frames when the kernel takes them all. It
// waits while the socket's send buffer is full. It returns how many frames
// were sent and the error that stopped it, if any; frames after a failed
// one are not sent.
//
// The socket is bound with ETH_P_IP, and per packet_snd a frame sent
// without an address leaves with the bound protocol as skb->protocol,
// which qdiscs, offloads and taps may trust. An IPv6 frame (EtherType
// 0x86dd) is therefore sent with an address of its own, the interface with
// ETH_P_IPV6, in the same sendmmsg: one socket, one mark, the batch's order
// kept. (A second socket bound to ETH_P_IPV6 would split each mixed batch
// into two calls and need its own mark and filter.)
func (in *Injector) WriteBatch(bufs [][]byte) (int, error) {
	sent := 0
	for base := 0; base < len(bufs); base += in.mm.Cap() {
		in.mm.Reset()
		for _, b := range bufs[base:min(base+in.mm.Cap(), len(bufs))] {
			if len(b) >= 14 && b[12] == 0x86 && b[13] == 0xdd {
				in.mm.AddLink(b, &in.to6)
				continue
			}
			in.mm.Add(b, netip.AddrPort{})
		}
		in.off, in.sent, in.err, in.retried = 0, 0, nil, false
		err := in.rc.Write(in.wfn)
		sent += in.sent
		if err != nil {
			return sent, fmt.Errorf("inject on %s: %w", in.ifi.Name, err)
		}
		if in.err != nil {
			return sent, fmt.Errorf("inject on %s: %w", in.ifi.Name, os.NewSyscallError("sendmmsg", in.err))
		}
	}
	return sent, nil
}

func (in *Injector) writeFn(fd uintptr) bool {
	for in.off < in.mm.Len() {
		n, err := in.mm.Send(fd, in.off)
		if err == unix.EAGAIN {
			return false
		}
		if err == unix.ENOBUFS {
			// The device queue is full: this frame is lost, like any frame
			// a congested NIC drops; waiting would spin on a writable socket.
			in.off++
			in.Dropped++
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil && !in.retried {
			// The socket's pending error is reported by the next send, which
			// the kernel then discards untried: after the interface went
			// down and up again, the first frame would fail with a stale
			// ENETDOWN. Try once more; a second failure is this frame's own.
			in.retried = true
			continue
		}
		if err != nil {
			in.err = err
			return true
		}
		in.off += n
		in.sent += n
		in.retried = false
	}
	return true
}

// Close closes the socket.
func (in *Injector) Close() error { return in.conn.Close() }

// SetWriteDeadline sets the deadline for WriteBatch; a past time unblocks a
// write waiting for buffer space at once.
func (in *Injector) SetWriteDeadline(t time.Time) error { return in.conn.SetWriteDeadline(t) }
