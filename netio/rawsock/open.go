//go:build linux

package rawsock

import (
	"net"
	"syscall"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// open is how the capture and the inject socket start: following
// mdlayher/packet, an AF_PACKET socket is created with protocol 0, so it
// receives nothing; prog is attached and setup (if not nil) sets options;
// only then is it bound to ifi with proto, so no frame slips in before the
// filter.
func open(ifi *net.Interface, name string, proto uint16, prog []bpf.RawInstruction, setup func(*socket.Conn) error) (*socket.Conn, syscall.RawConn, error) {
	conn, err := socket.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0, name, nil)
	if err != nil {
		return nil, nil, err
	}
	rc, err := bind(conn, ifi, proto, prog, setup)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rc, nil
}

func bind(conn *socket.Conn, ifi *net.Interface, proto uint16, prog []bpf.RawInstruction, setup func(*socket.Conn) error) (syscall.RawConn, error) {
	if err := conn.SetBPF(prog); err != nil {
		return nil, err
	}
	if setup != nil {
		if err := setup(conn); err != nil {
			return nil, err
		}
	}
	if err := conn.Bind(&unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}); err != nil {
		return nil, err
	}
	return conn.SyscallConn()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
