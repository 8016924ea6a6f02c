package test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// demoTimeout bounds a whole demo run; it takes about 1.5 s.
const demoTimeout = 20 * time.Second

// TestDemo runs `snowsignal demo` as a user would: it exits 0, reports
// success, and leaves no namespace behind.
func TestDemo(t *testing.T) {
	netlabtest.Require(t)
	bin := harness.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("snowsignal demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"nothing reached the server",
		"10.77.0.255:5076, 53 B, broadcast by relay-b",
		"255.255.255.255:5076, 1472 B, broadcast by relay-b",
		"nothing (port 5077 is not relayed)",
		"the client received it. ✓",
		"injected 4",
		"Success: 4 broadcasts crossed",
		"Removed the lab",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "✗") {
		t.Errorf("output shows a failed check")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	checkNoNamespaces(t, cmd.Process.Pid)
}

// TestDemoIPv6: `snowsignal demo --ipv6` adds the IPv6 step: a search from
// the client's ULA address crosses once and is answered, one from its
// link-local address is not relayed and is counted.
func TestDemoIPv6(t *testing.T) {
	netlabtest.Require(t)
	bin := harness.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--ipv6")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("snowsignal demo --ipv6: %v\n%s", err, out)
	}
	for _, want := range []string{
		"client fd00:77::11, relay-a fd00:77::1",
		"snowsignal run -t eth0 --other-relays 10.77.0.2 --ipv6",
		"searches by multicast to [ff02::1%eth0]:5076",
		"the server received 1 copy from [fd00:77::11]:",
		"the client received it. ✓",
		"the server received nothing (not relayed: counted as link_local_source) ✓",
		"dropped: link_local_source 1",
		"Success: 5 broadcasts crossed",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "✗") {
		t.Errorf("output shows a failed check")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	checkNoNamespaces(t, cmd.Process.Pid)
}

// TestDemoInterrupted: Ctrl-C while the relays run stops them, removes
// every namespace and exits non-zero.
func TestDemoInterrupted(t *testing.T) {
	netlabtest.Require(t)
	bin := harness.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for both relays to be up, noting their PIDs.
	pidLine := regexp.MustCompile(`^\s+relay-[ab]\s+pid (\d+)`)
	var pids []int
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for len(pids) < 2 && sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if m := pidLine.FindStringSubmatch(sc.Text()); m != nil {
			pid, _ := strconv.Atoi(m[1])
			pids = append(pids, pid)
		}
	}
	if len(pids) < 2 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the demo never reported two relays:\n%s", out.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Errorf("exit after Ctrl-C: %v, want a non-zero status", err)
	}
	if !strings.Contains(stderr.String(), "demo: interrupted") || !strings.Contains(out.String(), "Removed the lab") {
		t.Errorf("output does not say it was interrupted and cleaned up:\n%s%s", out.String(), stderr.String())
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("relay pid %d still exists after the demo ended (kill 0: %v)", pid, err)
		}
	}
	checkNoNamespaces(t, cmd.Process.Pid)
}

// TestDemoNeedsRoot: run as an unprivileged user, the demo explains that
// it needs root and exits non-zero without making anything.
func TestDemoNeedsRoot(t *testing.T) {
	netlabtest.Require(t) // root, to switch to another user
	bin := harness.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Fatalf("exit: %v, want a non-zero status\n%s", err, out)
	}
	if !strings.Contains(string(out), "needs root") || !strings.Contains(string(out), "sudo") {
		t.Errorf("output does not explain the need for root:\n%s", out)
	}
	checkNoNamespaces(t, cmd.Process.Pid)
}

// checkNoNamespaces fails t if any namespace or /etc/netns folder of a
// lab made by process pid is left.
func checkNoNamespaces(t *testing.T, pid int) {
	t.Helper()
	prefix := netlab.Prefix + strconv.Itoa(pid) + "-"
	for _, dir := range []string{netlab.NetNSDir, netlab.EtcNetNSDir} {
		left, err := filepath.Glob(filepath.Join(dir, prefix+"*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			t.Errorf("left behind: %q", left)
		}
	}
}
