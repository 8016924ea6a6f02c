package netlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
)

// quiet is how long a test waits to show that something does not arrive.
const quiet = 300 * time.Millisecond

// patience bounds the wait for something that must arrive.
const patience = 2 * time.Second

const port = 5076

func TestMain(m *testing.M) {
	// Ctrl-C during `go test` removes the labs instead of leaving them to
	// the next run's Sweep.
	stop := CloseOnSignal()
	code := m.Run()
	stop()
	os.Exit(code)
}

// recv reads one datagram within d.
func recv(c *net.UDPConn, d time.Duration) ([]byte, netip.AddrPort, error) {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, netip.AddrPort{}, err
	}
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	return buf[:n], from, err
}

// expect fails unless c receives want from src within patience.
func expect(t *testing.T, name string, c *net.UDPConn, want []byte, src netip.Addr) netip.AddrPort {
	t.Helper()
	got, from, err := recv(c, patience)
	if err != nil {
		t.Fatalf("%s: want %q from %v: %v", name, want, src, err)
	}
	if !bytes.Equal(got, want) || from.Addr() != src {
		t.Fatalf("%s: got %q from %v, want %q from %v", name, got, from, want, src)
	}
	return from
}

// expectNothing fails if any of conns receives a datagram within quiet.
// The conns are read one after the other against one deadline.
func expectNothing(t *testing.T, conns map[string]*net.UDPConn) {
	t.Helper()
	deadline := time.Now().Add(quiet)
	for name, c := range conns {
		c.SetReadDeadline(deadline)
		buf := make([]byte, 2048)
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err == nil {
			t.Errorf("%s: got %q from %v, want nothing", name, buf[:n], from)
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func listen(t *testing.T, h *Host, addr string) *net.UDPConn {
	t.Helper()
	c, err := h.ListenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sniff(t *testing.T, h *Host) *Sniffer {
	t.Helper()
	s, err := h.Sniff(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSwarm(t *testing.T) {
	l := NewSwarmT(t, TwoSegmentSwarm())
	client, relayA, server, relayB := l.Host("client"), l.Host("relay-a"), l.Host("server"), l.Host("relay-b")

	la := listen(t, relayA, "0.0.0.0:5076")
	ls := listen(t, server, "0.0.0.0:5076")
	lb := listen(t, relayB, "0.0.0.0:5076")
	sniffA, sniffS := sniff(t, relayA), sniff(t, server)
	send, err := client.BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}

	for _, dst := range []string{"255.255.255.255", "10.77.0.255"} {
		t.Run("broadcast to "+dst, func(t *testing.T) {
			msg := []byte("search via " + dst)
			if _, err := send.WriteToUDPAddrPort(msg, netip.AddrPortFrom(netip.MustParseAddr(dst), port)); err != nil {
				t.Fatal(err)
			}
			expect(t, "relay-a (same segment)", la, msg, client.IP)
			expectNothing(t, map[string]*net.UDPConn{"server (other segment)": ls, "relay-b (other segment)": lb})
		})
	}

	t.Run("on the wire", func(t *testing.T) {
		fromClient := func(f Frame) bool {
			return !f.Outgoing() && f.IsIPv4Broadcast() && bytes.Equal(f.Src(), client.MAC)
		}
		// Everything sent so far is queued in the sniffers: read it all.
		seenA, err := sniffA.Collect(50*time.Millisecond, fromClient)
		if err != nil {
			t.Fatal(err)
		}
		if len(seenA) != 2 {
			t.Errorf("relay-a's eth0 carried %d IPv4 broadcasts from client, want 2", len(seenA))
		}
		for _, f := range seenA {
			if _, dst, payload, ok := f.UDP(); !ok || dst.Port() != port || !strings.HasPrefix(string(payload), "search via ") {
				t.Errorf("relay-a saw %x, want a UDP datagram to port %d", f.Data, port)
			}
		}
		seenS, err := sniffS.Collect(50*time.Millisecond, func(f Frame) bool { return !f.Outgoing() && f.IsIPv4Broadcast() })
		if err != nil {
			t.Fatal(err)
		}
		if len(seenS) != 0 {
			t.Errorf("server's eth0 carried %d IPv4 broadcasts, want 0: %x", len(seenS), seenS[0].Data)
		}
		// Each broadcast was dropped at the two ports of segment b.
		if drops, err := l.SwitchDrops(); err != nil || drops != 4 {
			t.Errorf("switch dropped %d frames (err %v), want 4", drops, err)
		}
	})

	t.Run("unicast crosses both ways", func(t *testing.T) {
		msg := []byte("hello server")
		if _, err := send.WriteToUDPAddrPort(msg, netip.AddrPortFrom(server.IP, port)); err != nil {
			t.Fatal(err)
		}
		from := expect(t, "server", ls, msg, client.IP)
		if _, err := ls.WriteToUDPAddrPort([]byte("hello client"), from); err != nil {
			t.Fatal(err)
		}
		expect(t, "client", send, []byte("hello client"), server.IP)
		// The client had to ask for the server's MAC: the ARP broadcast
		// crossed the segments.
		arp, err := sniffS.Collect(50*time.Millisecond, func(f Frame) bool {
			return f.EtherType() == 0x0806 && bytes.Equal(f.Src(), client.MAC)
		})
		if err != nil || len(arp) == 0 {
			t.Errorf("server saw no ARP from client (err %v)", err)
		}
	})

	t.Run("link down and up", func(t *testing.T) {
		if err := server.SetLink(false); err != nil {
			t.Fatal(err)
		}
		send.WriteToUDPAddrPort([]byte("lost"), netip.AddrPortFrom(server.IP, port))
		expectNothing(t, map[string]*net.UDPConn{"server (link down)": ls})
		if err := server.SetLink(true); err != nil {
			t.Fatal(err)
		}
		send.WriteToUDPAddrPort([]byte("back"), netip.AddrPortFrom(server.IP, port))
		expect(t, "server (link up)", ls, []byte("back"), client.IP)
		// Its default route came back: it can broadcast to 255.255.255.255
		// from a socket bound to 0.0.0.0.
		sb, err := server.BroadcastUDP("0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sb.WriteToUDPAddrPort([]byte("b"), netip.MustParseAddrPort("255.255.255.255:5076")); err != nil {
			t.Fatal(err)
		}
		expect(t, "relay-b", lb, []byte("b"), server.IP)
	})

	// Last: joining a group sends IGMP reports, more multicast to drop.
	t.Run("multicast stays on its segment", func(t *testing.T) {
		group := &net.UDPAddr{IP: net.IPv4(239, 1, 2, 3), Port: 5077}
		join := func(h *Host) *net.UDPConn {
			var c *net.UDPConn
			err := h.Do(func() error {
				ifi, err := net.InterfaceByName(IfName)
				if err == nil {
					c, err = net.ListenMulticastUDP("udp4", ifi, group)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		ma, ms := join(relayA), join(server)
		before, err := l.SwitchDrops()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := send.WriteToUDP([]byte("mc"), group); err != nil {
			t.Fatal(err)
		}
		expect(t, "relay-a", ma, []byte("mc"), client.IP)
		expectNothing(t, map[string]*net.UDPConn{"server": ms})
		if after, err := l.SwitchDrops(); err != nil || after < before+2 {
			t.Errorf("switch drops went from %d to %d (err %v), want 2 more at least", before, after, err)
		}
	})
}

func TestRouted(t *testing.T) {
	l := NewRoutedT(t, TwoSubnetRouted())
	client, relayA, server, relayB := l.Host("client"), l.Host("relay-a"), l.Host("server"), l.Host("relay-b")
	if server.Gateway != netip.MustParseAddr("10.2.0.1") || server.Prefix != netip.MustParsePrefix("10.2.0.0/24") ||
		server.Broadcast != netip.MustParseAddr("10.2.0.255") || server.MAC.String() != "02:00:0a:02:00:15" {
		t.Fatalf("server: %+v", server)
	}

	la := listen(t, relayA, "0.0.0.0:5076")
	ls := listen(t, server, "0.0.0.0:5076")
	lb := listen(t, relayB, "0.0.0.0:5076")
	sniffS := sniff(t, server)
	send, err := client.BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("unicast is routed", func(t *testing.T) {
		msg := []byte("hello server")
		if _, err := send.WriteToUDPAddrPort(msg, netip.AddrPortFrom(server.IP, port)); err != nil {
			t.Fatal(err)
		}
		from := expect(t, "server", ls, msg, client.IP)
		if _, err := ls.WriteToUDPAddrPort([]byte("hello client"), from); err != nil {
			t.Fatal(err)
		}
		expect(t, "client", send, []byte("hello client"), server.IP)
		// On server's wire the datagram came from the router's MAC with
		// the TTL one lower.
		frames, err := sniffS.Collect(50*time.Millisecond, func(f Frame) bool {
			_, _, p, ok := f.UDP()
			return ok && !f.Outgoing() && string(p) == "hello server"
		})
		if err != nil || len(frames) != 1 {
			t.Fatalf("server's eth0 carried %d copies (err %v), want 1", len(frames), err)
		}
		if src := frames[0].Src(); src.String() != "02:00:0a:02:00:01" {
			t.Errorf("source MAC %v, want the router's 02:00:0a:02:00:01", src)
		}
		if ttl := frames[0].Data[14+8]; ttl != 63 {
			t.Errorf("TTL %d, want 63", ttl)
		}
	})

	for _, dst := range []string{"255.255.255.255", "10.1.0.255"} {
		t.Run("broadcast to "+dst+" stays on its segment", func(t *testing.T) {
			msg := []byte("search via " + dst)
			if _, err := send.WriteToUDPAddrPort(msg, netip.AddrPortFrom(netip.MustParseAddr(dst), port)); err != nil {
				t.Fatal(err)
			}
			expect(t, "relay-a", la, msg, client.IP)
			expectNothing(t, map[string]*net.UDPConn{"server": ls, "relay-b": lb})
		})
	}

	t.Run("directed broadcast to the other subnet is not forwarded", func(t *testing.T) {
		if _, err := send.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("10.2.0.255:5076")); err != nil {
			t.Fatal(err)
		}
		expectNothing(t, map[string]*net.UDPConn{"server": ls, "relay-b": lb, "relay-a": la})
	})

	t.Run("link down and up restores the route", func(t *testing.T) {
		if err := server.SetLink(false); err != nil {
			t.Fatal(err)
		}
		if err := server.SetLink(true); err != nil {
			t.Fatal(err)
		}
		// The reply needs server's default route via 10.2.0.1.
		send.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(server.IP, port))
		from := expect(t, "server", ls, []byte("ping"), client.IP)
		ls.WriteToUDPAddrPort([]byte("pong"), from)
		expect(t, "client", send, []byte("pong"), server.IP)
	})
}

func TestHostHelpers(t *testing.T) {
	l := NewSwarmT(t, TwoSegmentSwarm())
	client := l.Host("client")

	out, err := client.Command(t.Context(), "ip", "-4", "-o", "addr", "show", "dev", IfName).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inet 10.77.0.11/24 brd 10.77.0.255") {
		t.Errorf("ip addr in client: %v\n%s", err, out)
	}

	if err := client.WriteEtc("hosts", l.EtcHosts()); err != nil {
		t.Fatal(err)
	}
	out, err = client.Command(t.Context(), "cat", "/etc/hosts").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.77.0.21\tserver\n") {
		t.Errorf("/etc/hosts in client: %v\n%s", err, out)
	}

	// Do runs in the namespace and hands panics over.
	var links []string
	err = client.Do(func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			links = append(links, l.Attrs().Name)
		}
		return err
	})
	if err != nil || strings.Join(links, ",") != "lo,eth0" {
		t.Errorf("links in client: %v (err %v), want lo,eth0", links, err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		client.Do(func() error { panic("boom") })
	}()
	// IPv6 is off: no link-local address, no DAD or router solicitation.
	if err := client.Do(func() error {
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
		if err == nil && len(addrs) > 0 {
			err = fmt.Errorf("IPv6 addresses %v", addrs)
		}
		return err
	}); err != nil {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	Require(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := NewSwarm(TwoSegmentSwarm())
	if err != nil {
		t.Fatal(err)
	}
	h := l.Host("server")
	if _, err := h.ListenUDP(":5076"); err != nil {
		t.Fatal(err)
	}
	s, err := h.Sniff(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WriteEtc("hosts", l.EtcHosts()); err != nil {
		t.Fatal(err)
	}
	if got := len(leftovers(t, l.ID())); got != 6 {
		t.Fatalf("%d namespaces and folders before Close, want 5 namespaces and 1 folder", got)
	}
	inodes := map[uint64]string{}
	for _, ns := range l.Namespaces() {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(NetNSDir, ns), &st); err != nil {
			t.Fatal(err)
		}
		inodes[st.Ino] = ns
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, l.ID()); len(left) != 0 {
		t.Errorf("left after Close: %v", left)
	}
	// No thread of ours stayed in a lab namespace (which would keep it
	// alive, interfaces and all).
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		var st syscall.Stat_t
		if err := syscall.Stat(task, &st); err == nil && inodes[st.Ino] != "" {
			t.Errorf("thread %s is still in %s", task, inodes[st.Ino])
		}
	}
	if _, err := os.Stat(filepath.Join(EtcNetNSDir, h.NetNS)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s/%s: %v, want it removed", EtcNetNSDir, h.NetNS, err)
	}
	if _, err := s.Next(time.Millisecond); !errors.Is(err, os.ErrClosed) {
		t.Errorf("sniffer after Close: %v, want closed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := h.Do(func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
	if _, err := h.ListenUDP(":0"); !errors.Is(err, ErrClosed) {
		t.Errorf("ListenUDP after Close: %v, want ErrClosed", err)
	}
}

// TestCloseWhileBuilding closes labs (as a signal handler would) while one
// is being built: whatever the timing, nothing is left.
func TestCloseWhileBuilding(t *testing.T) {
	Require(t)
	for i := range 5 {
		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Go(func() {
			defer close(done)
			l, err := NewSwarm(TwoSegmentSwarm())
			if err == nil {
				l.Close()
			}
		})
		time.Sleep(time.Duration(i) * 3 * time.Millisecond)
		for loop := true; loop; {
			select {
			case <-done:
				loop = false
			default:
				CloseAll()
				time.Sleep(time.Millisecond)
			}
		}
		wg.Wait()
		if left := leftovers(t, fmt.Sprintf("%s%d-", Prefix, os.Getpid())); len(left) != 0 {
			t.Fatalf("round %d: left: %v", i, left)
		}
	}
}

// leftovers lists entries of NetNSDir and EtcNetNSDir starting with prefix.
func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	var left []string
	for _, dir := range []string{NetNSDir, EtcNetNSDir} {
		m, err := filepath.Glob(filepath.Join(dir, prefix+"*"))
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, m...)
	}
	return left
}

const helperEnv = "SSLAB_TEST_HELPER"

// TestHelperProcess is not a test: the tests below run the test binary
// again with helperEnv set to build a lab in another process.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	l := NewSwarmT(t, TwoSegmentSwarm())
	fmt.Printf("LAB %s\n", l.ID())
	switch mode {
	case "fail":
		t.Run("fails", func(t *testing.T) { t.Fatal("deliberate failure") })
	case "wait":
		fmt.Println("READY")
		time.Sleep(20 * time.Second)
		t.Error("the parent did not stop this helper")
	}
}

// helper runs the test binary as a helper process in mode and returns it
// with its lab's ID once it printed want.
func helper(t *testing.T, mode, want string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	type result struct{ id, text string }
	got := make(chan result, 1)
	go func() {
		var r result
		var text strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			text.WriteString(sc.Text() + "\n")
			if id, ok := strings.CutPrefix(sc.Text(), "LAB "); ok {
				r.id = id
			}
			if strings.Contains(sc.Text(), want) {
				break
			}
		}
		r.text = text.String()
		got <- r
		bufio.NewReader(out).WriteTo(&bytes.Buffer{}) // drain until exit
	}()
	select {
	case r := <-got:
		if r.id == "" {
			t.Fatalf("helper printed no lab ID:\n%s\n%s", r.text, stderr.String())
		}
		return cmd, r.id, &stderr
	case <-time.After(20 * time.Second):
		t.Fatalf("helper did not print %q", want)
	}
	return nil, "", nil
}

func TestCloseAfterFailingTest(t *testing.T) {
	cmd, id, _ := helper(t, "fail", "--- FAIL: TestHelperProcess")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("helper: %v, want exit status 1", err)
	}
	if left := leftovers(t, id); len(left) != 0 {
		t.Errorf("left after a failing test: %v", left)
	}
}

func TestCloseOnInterrupt(t *testing.T) {
	cmd, id, _ := helper(t, "wait", "READY")
	if n := len(leftovers(t, id)); n != 5 {
		t.Fatalf("helper's lab has %d namespaces, want 5", n)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("helper: %v, want killed by SIGINT", err)
	}
	if left := leftovers(t, id); len(left) != 0 {
		t.Errorf("left after SIGINT: %v", left)
	}
}

func TestSweep(t *testing.T) {
	cmd, id, _ := helper(t, "wait", "READY")
	ours := NewSwarmT(t, Spec{Subnet: netip.MustParsePrefix("10.9.0.0/24"), Segments: []SegmentSpec{
		{Name: "a", Hosts: HostNames("one")}, {Name: "b", Hosts: HostNames("two")},
	}})
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if n := len(leftovers(t, id)); n != 5 {
		t.Fatalf("Sweep left %d of a live process's 5 namespaces", n)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// It had no chance to clean up. (Another test process's Sweep may
	// already be at work on them, so this is not checked.)
	t.Logf("a killed helper left %d namespaces", len(leftovers(t, id)))
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, id); len(left) != 0 {
		t.Errorf("left after Sweep: %v", left)
	}
	if n := len(leftovers(t, ours.ID())); n != 3 {
		t.Errorf("Sweep removed our own namespaces: %d left, want 3", n)
	}
}

func TestBuildTime(t *testing.T) {
	spec := TwoSegmentSwarm()
	spec.Segments[1].Hosts = append(spec.Segments[1].Hosts, HostSpec{Name: "extra"})
	start := time.Now()
	l := NewSwarmT(t, spec)
	built := time.Since(start)
	start = time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("5-host swarm: built in %v, closed in %v", built, time.Since(start))
	if built > 2*time.Second {
		t.Errorf("building took %v, want well under a second", built)
	}
	if got := l.Hosts()[4].IP; got != netip.MustParseAddr("10.77.0.3") {
		t.Errorf("allocated %v, want 10.77.0.3 (lowest free)", got)
	}
}

// TestSwarmIPv6: in a lab with IPv6, every host has its ULA address (read
// as its IPv4 one) and a link-local one; a UDP datagram to ff02::1 stays
// on its segment, counted by the switch, while IPv6 unicast (and the
// neighbour discovery it needs) crosses both ways.
func TestSwarmIPv6(t *testing.T) {
	l := NewSwarmT(t, TwoSegmentSwarm6())
	client, relayA, server, relayB := l.Host("client"), l.Host("relay-a"), l.Host("server"), l.Host("relay-b")
	for name, want := range map[string]string{"client": "fd00:77::11", "relay-a": "fd00:77::1", "server": "fd00:77::21", "relay-b": "fd00:77::2"} {
		if h := l.Host(name); h.IP6.String() != want || !h.LinkLocal6.IsLinkLocalUnicast() {
			t.Errorf("%s: IPv6 %v link-local %v, want %s and fe80::/10", name, h.IP6, h.LinkLocal6, want)
		}
	}
	listen6 := func(h *Host, addr string) *net.UDPConn {
		c, err := h.ListenUDP6(addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	la, ls, lb := listen6(relayA, "[::]:5076"), listen6(server, "[::]:5076"), listen6(relayB, "[::]:5076")
	send := listen6(client, "["+client.IP6.String()+"]:0")
	var before uint64
	t.Run("multicast stays on its segment", func(t *testing.T) {
		var err error
		if before, err = l.SwitchDrops(); err != nil {
			t.Fatal(err)
		}
		err = client.Do(func() error {
			_, err := send.WriteToUDPAddrPort([]byte("search6"), netip.MustParseAddrPort("[ff02::1%eth0]:5076"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, "relay-a (same segment)", la, []byte("search6"), client.IP6)
		expectNothing(t, map[string]*net.UDPConn{"server (other segment)": ls, "relay-b (other segment)": lb})
		if after, err := l.SwitchDrops(); err != nil || after != before+2 {
			t.Errorf("switch drops went from %d to %d (err %v), want 2 more (the ports of segment b)", before, after, err)
		}
	})
	t.Run("unicast crosses both ways", func(t *testing.T) {
		if _, err := send.WriteToUDPAddrPort([]byte("hello server"), netip.AddrPortFrom(server.IP6, port)); err != nil {
			t.Fatal(err)
		}
		from := expect(t, "server", ls, []byte("hello server"), client.IP6)
		if _, err := ls.WriteToUDPAddrPort([]byte("hello client"), from); err != nil {
			t.Fatal(err)
		}
		expect(t, "client", send, []byte("hello client"), server.IP6)
	})
}
