package netlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by a Lab or Host method called after Lab.Close.
var ErrClosed = errors.New("lab: closed")

// IfName is the name of every host's one interface.
const IfName = "eth0"

// Lab is a set of network namespaces: one per host, a "switch" namespace
// holding the bridges, and in a Routed lab a "router" namespace. Its methods
// are safe for concurrent use.
type Lab struct {
	id     string // Prefix + "<pid>-<4 hex>"
	routed bool
	swPath string // the switch namespace
	hosts  []*Host
	byName map[string]*Host

	mu         sync.Mutex
	closed     bool
	namespaces []string    // names of the namespaces made, in order
	etcDirs    []string    // /etc/netns folders made
	closers    []io.Closer // sockets handed out
}

var (
	registryMu sync.Mutex
	registry   = map[*Lab]struct{}{}
	usedIDs    = map[string]bool{}
)

// newLab picks an unused id and registers the lab, so CloseAll can find it
// while it is still being built.
func newLab(routed bool) (*Lab, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for range 100 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		id := fmt.Sprintf("%s%d-%s", Prefix, os.Getpid(), hex.EncodeToString(b[:]))
		if usedIDs[id] || idInUse(id) {
			continue
		}
		usedIDs[id] = true
		l := &Lab{id: id, routed: routed, byName: map[string]*Host{}}
		registry[l] = struct{}{}
		return l, nil
	}
	return nil, errors.New("lab: no free lab id")
}

func idInUse(id string) bool {
	for _, dir := range []string{NetNSDir, EtcNetNSDir} {
		m, _ := filepath.Glob(filepath.Join(dir, id+"-*"))
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// ID returns the prefix shared by the names of all the lab's namespaces,
// e.g. "sslab-4242-9f3c".
func (l *Lab) ID() string { return l.id }

// Routed reports whether the lab was made by NewRouted.
func (l *Lab) Routed() bool { return l.routed }

// nsName returns the namespace name for a host (or "switch", "router").
func (l *Lab) nsName(host string) string { return l.id + "-" + host }

// Namespaces returns the names of the namespaces the lab made and has not yet
// removed: the switch, the router (Routed) and one per host.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	return append([]string(nil), l.namespaces...)
}

// Host returns the host of that name. It panics on an unknown name: that is
// a mistake in the calling code, not a condition to handle.
func (l *Lab) Host(name string) *Host {
	h, ok := l.byName[name]
	if !ok {
		panic(fmt.Sprintf("lab: no host %q in lab %s", name, l.id))
	}
	return h
}

// Hosts returns every host, in the order of the spec.
func (l *Lab) Hosts() []*Host { return append([]*Host(nil), l.hosts...) }

// SwitchSysctl sets a sysctl in the switch namespace, the one holding the
// bridges: for example net.bridge.bridge-nf-call-iptables=0 takes the
// kernel's br_netfilter (iptables hooks on bridged frames) out of the path.
func (l *Lab) SwitchSysctl(name, value string) error {
	return inNS(l.swPath, func() error { return writeSysctl(name, value) })
}

// EtcHosts returns an /etc/hosts text naming every host of the lab, for
// Host.WriteEtc("hosts", ...): then programs in the lab find each other by
// host name.
func (l *Lab) EtcHosts() []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	for _, h := range l.hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, h.Name)
	}
	return b.Bytes()
}

// createNS makes the namespace for host (or "switch", "router") and records
// it for Close before it exists, holding the lock, so a Close running at the
// same time (a signal) either prevents it or removes it.
func (l *Lab) createNS(host string, sysctls [][2]string, setup func() error) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", ErrClosed
	}
	name := l.nsName(host)
	l.namespaces = append(l.namespaces, name)
	path := filepath.Join(NetNSDir, name)
	return path, createNS(path, func() error {
		for _, kv := range sysctls {
			if err := writeSysctl(kv[0], kv[1]); err != nil {
				// A kernel without IPv6 has no net.ipv6 tree: nothing to turn off.
				if strings.HasPrefix(kv[0], "net.ipv6.") && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return err
			}
		}
		return setup()
	})
}

// track registers a socket to close with the lab. It closes c and returns
// ErrClosed if the lab is already closed.
func (l *Lab) track(c io.Closer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return ErrClosed
	}
	l.closers = append(l.closers, c)
	return nil
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close closes the sockets the lab handed out (ListenUDP, BroadcastUDP,
// Sniff), unmounts and removes every namespace it made and removes the
// /etc/netns folders it wrote. It is idempotent and safe to call from any
// goroutine, a signal handler's included. Processes started with
// Host.Command are the caller's to stop; a namespace lives on, unnamed,
// while a process still runs in it.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, c := range l.closers {
		c.Close() // already closed by the caller is fine
	}
	l.closers = nil
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		if err := removeNS(filepath.Join(NetNSDir, l.namespaces[i])); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range l.etcDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("lab: %w", err))
		}
	}
	registryMu.Lock()
	delete(registry, l)
	registryMu.Unlock()
	return errors.Join(errs...)
}

// CloseAll closes every lab of this process, finished or still being built.
func CloseAll() error {
	registryMu.Lock()
	labs := make([]*Lab, 0, len(registry))
	for l := range registry {
		labs = append(labs, l)
	}
	registryMu.Unlock()
	var errs []error
	for _, l := range labs {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// CloseOnSignal makes the process close all its labs when it receives one
// of sigs (default: SIGINT, SIGTERM) and then die of that signal as it
// otherwise would have. For test binaries (call it in TestMain) and small
// programs; a program with its own signal handling should call Close itself.
// stop undoes it.
func CloseOnSignal(sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			CloseAll()
			signal.Reset(sigs...)
			if ss, ok := s.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), ss)
				// The signal may be delivered to another thread: give it
				// time to end the process before falling back to Exit.
				time.Sleep(2 * time.Second)
			}
			os.Exit(1)
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
}

// NewSwarm builds a Swarm lab: one subnet, hosts on several segments of one
// bridge, and a switch that drops IPv4 broadcast and multicast frames between
// segments while unicast and ARP cross, like a Docker Swarm overlay network.
func NewSwarm(spec Spec) (*Lab, error) { return build(spec, false) }

// NewRouted builds a Routed lab: one subnet and bridge per segment, joined by
// a router namespace; hosts have a default route via their segment's
// gateway. Unicast is routed; broadcast stays on its segment.
func NewRouted(spec Spec) (*Lab, error) { return build(spec, true) }

// Host is one host of a lab: a network namespace with lo and one interface,
// eth0, up. Its fields are read-only.
type Host struct {
	Name    string
	Segment string
	// NetNS is the namespace name, as `ip netns` shows it.
	NetNS string
	// IP is the address of eth0.
	IP netip.Addr
	// Prefix is the subnet eth0 is on (masked: 10.77.0.0/24).
	Prefix netip.Prefix
	// MAC of eth0: 02:00 followed by the four bytes of IP.
	MAC net.HardwareAddr
	// Broadcast is the directed broadcast address of Prefix (10.77.0.255).
	Broadcast netip.Addr
	// Gateway is the router's address on the host's segment in a Routed lab;
	// zero in a Swarm lab.
	Gateway netip.Addr
	// Ifindex of eth0 inside the namespace.
	Ifindex int
	// IP6 is eth0's IPv6 address in Spec.IPv6 (fd00:77::11 for 10.77.0.11),
	// and LinkLocal6 its link-local one; both zero when IPv6 is off.
	IP6, LinkLocal6 netip.Addr

	lab  *Lab
	path string // NetNSDir/NetNS
	port string // the switch's end of eth0
}
