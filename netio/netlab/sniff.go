package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"
)

// Sniffer reads every frame on a host's eth0, both directions, like
// tcpdump -i eth0: an AF_PACKET socket bound to eth0 for ETH_P_ALL.
// Next and Collect must not be called concurrently; Close may be.
type Sniffer struct {
	c   *socket.Conn
	buf []byte

	mu     sync.Mutex
	closed bool
	stop   func() bool // unregisters the context.AfterFunc
	err    error
}

// Frame is one frame a Sniffer read.
type Frame struct {
	// Data is the whole frame from the Ethernet header on.
	Data []byte
	// PktType is the packet type the kernel reports, as in packet(7):
	// unix.PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST,
	// PACKET_OTHERHOST, or PACKET_OUTGOING for frames the host sent.
	PktType uint8
}

// Sniff starts capturing on the host's eth0. Closing the lab or cancelling
// ctx closes the Sniffer.
func (h *Host) Sniff(ctx context.Context) (*Sniffer, error) {
	var c *socket.Conn
	err := h.Do(func() error {
		var err error
		// Protocol 0 at socket(2) receives nothing until bind(2) names the
		// protocol and interface: no frame of another interface slips in.
		c, err = socket.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0, "sslab-sniff", nil)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: h.Ifindex}
		if err := c.Bind(sa); err != nil {
			c.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: %s: sniff %s: %w", h.Name, IfName, err)
	}
	s := &Sniffer{c: c, buf: make([]byte, 1<<16)}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	s.mu.Lock()
	s.stop = stop
	s.mu.Unlock()
	if err := h.lab.track(s); err != nil {
		return nil, err
	}
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Next returns the next frame, waiting at most timeout. When none comes, the
// error satisfies errors.Is(err, os.ErrDeadlineExceeded); after Close,
// errors.Is(err, os.ErrClosed).
func (s *Sniffer) Next(timeout time.Duration) (Frame, error) {
	err := s.c.SetReadDeadline(time.Now().Add(timeout))
	var n int
	var from unix.Sockaddr
	if err == nil {
		n, _, _, from, err = s.c.Recvmsg(context.Background(), s.buf, nil, 0)
	}
	if err != nil {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Frame{}, fmt.Errorf("lab: sniffer: %w", os.ErrClosed)
		}
		return Frame{}, err
	}
	f := Frame{Data: append([]byte(nil), s.buf[:n]...)}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		f.PktType = ll.Pkttype
	}
	return f, nil
}

// Collect reads frames for d and returns those keep accepts (all if keep is
// nil). Use it to show that something did not arrive.
func (s *Sniffer) Collect(d time.Duration, keep func(Frame) bool) ([]Frame, error) {
	var out []Frame
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return out, nil
		}
		f, err := s.Next(left)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if keep == nil || keep(f) {
			out = append(out, f)
		}
	}
}

// Close stops the capture. It is idempotent.
func (s *Sniffer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.stop != nil {
		s.stop()
	}
	s.err = s.c.Close()
	return s.err
}

// Outgoing reports whether the host sent the frame.
func (f Frame) Outgoing() bool { return f.PktType == unix.PACKET_OUTGOING }

// Dst returns the Ethernet destination, or nil for a runt.
func (f Frame) Dst() net.HardwareAddr {
	if len(f.Data) < 14 {
		return nil
	}
	return net.HardwareAddr(f.Data[0:6])
}

// Src returns the Ethernet source, or nil for a runt.
func (f Frame) Src() net.HardwareAddr {
	if len(f.Data) < 14 {
		return nil
	}
	return net.HardwareAddr(f.Data[6:12])
}

// EtherType returns the Ethernet type (0x0800 IPv4, 0x0806 ARP), or 0.
func (f Frame) EtherType() uint16 {
	if len(f.Data) < 14 {
		return 0
	}
	return binary.BigEndian.Uint16(f.Data[12:14])
}

// IsIPv4Broadcast reports an IPv4 frame to ff:ff:ff:ff:ff:ff.
func (f Frame) IsIPv4Broadcast() bool {
	d := f.Dst()
	return f.EtherType() == 0x0800 && d != nil && d[0]&d[1]&d[2]&d[3]&d[4]&d[5] == 0xff
}

// UDP decodes an unfragmented IPv4 UDP frame. ok is false for anything else
// (other protocols, fragments, truncated frames). The payload aliases
// f.Data.
func (f Frame) UDP() (src, dst netip.AddrPort, payload []byte, ok bool) {
	if f.EtherType() != 0x0800 || len(f.Data) < 14+20 {
		return
	}
	ip := f.Data[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	fragment := binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 // MF or offset
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != unix.IPPROTO_UDP || fragment || total < ihl+8 || total > len(ip) {
		return
	}
	u := ip[ihl:total]
	srcIP := netip.AddrFrom4([4]byte(ip[12:16]))
	dstIP := netip.AddrFrom4([4]byte(ip[16:20]))
	src = netip.AddrPortFrom(srcIP, binary.BigEndian.Uint16(u[0:2]))
	dst = netip.AddrPortFrom(dstIP, binary.BigEndian.Uint16(u[2:4]))
	return src, dst, u[8:], true
}
