//go:build linux

// Package nstest runs test code in a fresh network namespace holding a
// veth pair with IPv6 addresses, for the netio packages' tests that need a
// real kernel (AF_PACKET filters, multicast memberships).
//
// The namespace is anonymous: it belongs to one locked OS thread, which
// exits when the test ends, so the kernel removes the namespace, its
// interfaces and addresses once the last socket in it is closed. Nothing is
// named, mounted or left behind, and parallel tests cannot collide.
package nstest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The veth pair every namespace holds, with unique-local addresses that
// need no duplicate address detection.
const (
	IfA = "v6a" // fd00:6::1/64
	IfB = "v6b" // fd00:6::2/64
)

// Addresses of IfA and IfB.
var (
	AddrA = netip.MustParseAddr("fd00:6::1")
	AddrB = netip.MustParseAddr("fd00:6::2")
)

// An NS is a network namespace owned by one OS thread.
type NS struct {
	do   chan func()
	done chan struct{}
}

// New creates the namespace and its veth pair; the test's cleanup removes
// them. It skips the test without CAP_SYS_ADMIN (unshare) and fails it if
// the set-up fails.
func New(t testing.TB) *NS {
	t.Helper()
	ns := &NS{do: make(chan func()), done: make(chan struct{})}
	ready := make(chan error)
	go ns.run(ready)
	if err := <-ready; err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("network namespace: %v (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)", err)
		}
		t.Fatalf("network namespace: %v", err)
	}
	t.Cleanup(func() { close(ns.done) })
	if err := ns.Do(setup); err != nil {
		t.Fatalf("network namespace set-up: %v", err)
	}
	return ns
}

// run is the namespace's thread. It never unlocks the thread: when run
// returns, the runtime ends the thread, and the namespace with it.
func (ns *NS) run(ready chan<- error) {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		ready <- os.NewSyscallError("unshare", err)
		return
	}
	ready <- nil
	for {
		select {
		case fn := <-ns.do:
			fn()
		case <-ns.done:
			return
		}
	}
}

// Do runs fn in the namespace and returns its error. Sockets fn opens stay
// in the namespace wherever they are used afterwards.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	select {
	case ns.do <- func() { errc <- fn() }:
	case <-ns.done:
		return errors.New("network namespace closed")
	}
	return <-errc
}

func setup() error {
	// Per-namespace sysctls: addresses usable at once, no DAD delay.
	for _, p := range []string{"/proc/sys/net/ipv6/conf/all/accept_dad", "/proc/sys/net/ipv6/conf/default/accept_dad"} {
		if err := os.WriteFile(p, []byte("0"), 0); err != nil {
			return err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: IfA}, PeerName: IfB}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	for name, a := range map[string]netip.Addr{IfA: AddrA, IfB: AddrB} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		addr, err := netlink.ParseAddr(a.String() + "/64")
		if err != nil {
			return err
		}
		addr.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("%s: address: %w", name, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("%s up: %w", name, err)
		}
	}
	return waitLinkLocal(IfA, IfB)
}

// waitLinkLocal waits until every named interface has its link-local
// address: the kernel adds it from a work queue once the veth has carrier,
// which on a loaded machine can be milliseconds after LinkSetUp returns.
func waitLinkLocal(names ...string) error {
	deadline := time.Now().Add(2 * time.Second)
	for _, name := range names {
		for {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
			if err != nil {
				return fmt.Errorf("%s: addresses: %w", name, err)
			}
			if slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
				return a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0
			}) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no link-local address after 2s", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}
