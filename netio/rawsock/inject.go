//go:build linux

package rawsock

import (
	"fmt"
	"net"
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

	// to4 and to6 are the addresses IPv4 and IPv6 frames are sent to: the
	// socket's interface with protocol ETH_P_IP or ETH_P_IPV6 (see
	// WriteBatch).
	to4, to6 unix.RawSockaddrLinklayer

	// Dropped counts frames the kernel refused with ENOBUFS.
	Dropped uint64
}

// dropAll is a filter that accepts nothing. The inject socket is bound with
// protocol 0, which per packet(7) receives nothing: the kernel hooks no
// handler for it (packet_do_bind registers one only for a protocol), so
// no frame arriving on the interface costs it a packet_rcv. The filter
// only guards that.
var dropAll = []bpf.RawInstruction{{Op: 0x06, K: 0}} // ret #0

// ListenInject opens an inject socket on ifi. Every frame it sends carries
// mark in skb->mark (SO_MARK), which the capture filter uses to recognise the
// relay's own injections; zero leaves the mark unset.
func ListenInject(ifi *net.Interface, mark uint32) (*Injector, error) {
	conn, rc, err := open(ifi, "inject", 0, dropAll, func(conn *socket.Conn) error {
		if mark == 0 {
			return nil
		}
		return conn.SetsockoptInt(unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	})
	if err != nil {
		return nil, fmt.Errorf("inject on %s: %w", ifi.Name, err)
	}
	in := &Injector{conn: conn, rc: rc, ifi: ifi, mm: mmsg.NewBatch(mmsg.MaxBatch),
		to4: unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: int32(ifi.Index)},
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
// Per packet_snd a frame leaves with the protocol of its address as
// skb->protocol (without one, the socket's bound protocol: 0 here), which
// qdiscs, offloads and taps may trust. Every frame is therefore sent with
// an address: the interface with ETH_P_IP, or ETH_P_IPV6 for an IPv6
// frame (EtherType 0x86dd), in the same sendmmsg: one socket, one mark,
// the batch's order kept. (A socket per protocol would split each mixed
// batch into two calls, and a socket bound to a protocol receives every
// such frame of the interface.)
func (in *Injector) WriteBatch(bufs [][]byte) (int, error) {
	sent := 0
	for base := 0; base < len(bufs); base += in.mm.Cap() {
		in.mm.Reset()
		for _, b := range bufs[base:min(base+in.mm.Cap(), len(bufs))] {
			if len(b) >= 14 && b[12] == 0x86 && b[13] == 0xdd {
				in.mm.AddLink(b, &in.to6)
				continue
			}
			in.mm.AddLink(b, &in.to4)
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
			// A socket's pending error (sk_err) is reported by the next send,
			// which the kernel then discards untried. (A socket bound to a
			// protocol gets a stale ENETDOWN so when its interface goes down
			// and up again.) Try once more; a second failure is this frame's
			// own.
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
