package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the host's namespace and waits
// for it. Sockets fn opens belong to the namespace for their whole life,
// whatever thread later uses them. Goroutines fn starts do not run in the
// namespace. The thread returns to its own namespace afterwards, or, if that
// fails, is ended. A panic in fn is carried over to the caller.
func (h *Host) Do(fn func() error) error {
	if h.lab.isClosed() {
		return ErrClosed
	}
	return inNS(h.path, fn)
}

var ipPath = sync.OnceValue(func() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "ip" // Start reports it missing
})

// Command returns a command that runs `ip netns exec <NetNS> name args...`:
// the program runs in the host's namespace, with /sys remounted for it and
// the files of /etc/netns/<NetNS>/ (see WriteEtc) mounted over those of
// /etc. The child is killed if this process dies (Pdeathsig), so a killed
// test does not leave programs holding namespaces; stop it before Close,
// e.g. by cancelling ctx. (Pdeathsig follows the OS thread that started the
// child; Go ends a thread only when a goroutine exits while locked to it.)
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, ipPath(), append([]string{"netns", "exec", h.NetNS, name}, args...)...)
	// `ip netns exec` execs name in place, so the signal reaches name itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// WriteEtc writes a file that programs started with Command see as
// /etc/<name> (only for files that exist in /etc: hosts, resolv.conf, ...).
// Close removes it.
func (h *Host) WriteEtc(name string, data []byte) error {
	if name == "" || filepath.Base(name) != name {
		return fmt.Errorf("lab: WriteEtc: %q is not a plain file name", name)
	}
	dir := filepath.Join(EtcNetNSDir, h.NetNS)
	l := h.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if !contains(l.etcDirs, dir) {
		l.etcDirs = append(l.etcDirs, dir) // before creating it: Close removes it even if we fail half-way
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ListenUDP opens a UDP socket in the host's namespace bound to addr (e.g.
// "0.0.0.0:5076" or ":0"). The lab closes it on Close.
func (h *Host) ListenUDP(addr string) (*net.UDPConn, error) {
	return h.listenUDP(addr, nil)
}

// BroadcastUDP is ListenUDP with SO_BROADCAST set, so the socket may send to
// 255.255.255.255 and to the subnet's broadcast address.
func (h *Host) BroadcastUDP(laddr string) (*net.UDPConn, error) {
	return h.listenUDP(laddr, func(fd uintptr) error {
		return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	})
}

// ListenUDP6 is ListenUDP for IPv6 (a lab with Spec.IPv6): addr is
// "[::]:5076", "[fd00:77::11]:0" or "[fe80::…%eth0]:0". A socket bound to
// [::] receives what is sent to the groups the host is a member of on eth0,
// ff02::1 among them.
func (h *Host) ListenUDP6(addr string) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := h.Do(func() error {
		pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), "udp6", addr)
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: %s: listen udp6 %s: %w", h.Name, addr, err)
	}
	if err := h.lab.track(conn); err != nil {
		return nil, err
	}
	return conn, nil
}

func (h *Host) listenUDP(addr string, opt func(fd uintptr) error) (*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if opt != nil {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var optErr error
			if err := c.Control(func(fd uintptr) { optErr = opt(fd) }); err != nil {
				return err
			}
			return optErr
		}
	}
	var conn *net.UDPConn
	err := h.Do(func() error {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: %s: listen udp %s: %w", h.Name, addr, err)
	}
	if err := h.lab.track(conn); err != nil {
		return nil, err
	}
	return conn, nil
}

// SetLink sets the host's eth0 down or up, to cut it off the switch and
// reconnect it, and returns once the switch has noticed (its port is
// disabled, or forwarding again) and eth0's operational state followed. The
// address and subnet route come back with the link; the kernel deletes the
// default route while the link is down, and SetLink(true) adds it again.
func (h *Host) SetLink(up bool) error {
	err := h.Do(func() error {
		link, err := netlink.LinkByName(IfName)
		if err != nil {
			return err
		}
		if !up {
			if err := netlink.LinkSetDown(link); err != nil {
				return err
			}
			return waitOper([]string{IfName}, false)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return err
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK, Dst: defaultDst()}
		if h.Gateway.IsValid() {
			r = &netlink.Route{LinkIndex: link.Attrs().Index, Gw: h.Gateway.AsSlice()}
		}
		if err := netlink.RouteReplace(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("restore default route: %w", err)
		}
		return waitOper([]string{IfName}, true)
	})
	if err == nil {
		err = waitPorts(h.lab.swPath, []string{h.port}, up)
	}
	if err != nil {
		return fmt.Errorf("lab: %s: set %s up=%v: %w", h.Name, IfName, up, err)
	}
	return nil
}
