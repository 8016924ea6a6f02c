package test

// Doctor tests (issue 13): `snowsignal doctor` on a host of a lab with
// running relays, faced with one real fault at a time. Each case asserts the
// exact FAIL line (or warn, for a smaller peer MTU) and that every other
// check still passes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// doctorLab: relay-a and relay-b as in TwoSegmentSwarm, peers of each
// other, and relay-c alone on a third segment with MTU 1400, a peer of
// relay-a (which does not list it).
type doctorLab struct {
	bin                    string
	lab                    *netlab.Lab
	a, b, c                *labrelay.Relay
	relayA, relayB, relayC *netlab.Host
	client, server         *netlab.Host
}

func startDoctorLab(t *testing.T) *doctorLab {
	t.Helper()
	spec := netlab.TwoSegmentSwarm()
	spec.Segments = append(spec.Segments, netlab.SegmentSpec{Name: "c", Hosts: []netlab.HostSpec{{Name: "relay-c", Addr: netip.MustParseAddr("10.77.0.3")}}})
	l := netlabtest.NewSwarmT(t, spec)
	d := &doctorLab{bin: harness.Binary(t), lab: l, relayA: l.Host("relay-a"), relayB: l.Host("relay-b"), relayC: l.Host("relay-c"),
		client: l.Host("client"), server: l.Host("server")}
	if err := d.relayC.Do(func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(link, 1400)
	}); err != nil {
		t.Fatal(err)
	}
	d.a = harness.StartT(t, d.bin, d.relayA, "--other-relays", d.relayB.IP.String())
	d.b = harness.StartT(t, d.bin, d.relayB, "--other-relays", d.relayA.IP.String())
	d.c = harness.StartT(t, d.bin, d.relayC, "--other-relays", d.relayA.IP.String())
	for _, r := range []*labrelay.Relay{d.a, d.b, d.c} {
		if _, err := r.WaitLog(labrelay.Msg("peer set changed", "stage", "discovery"), deliveryTimeout); err != nil {
			t.Fatalf("%s: %v", r.Host.Name, err)
		}
	}
	return d
}

// doctorArgs are relay-a's flags, as its relay runs, for doctor.
func (d *doctorLab) doctorArgs(extra ...string) []string {
	return append([]string{"doctor", "--other-relays", d.relayB.IP.String(), "--stats-socket", d.a.StatsSocket,
		"--sample", "0", "--probe-timeout", "500ms"}, extra...)
}

// runDoctor runs cmd (a doctor invocation in a namespace) and returns its
// lines and exit status.
func runDoctor(t *testing.T, cmd *exec.Cmd) (lines []string, code int) {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("doctor: %v: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("doctor wrote to stderr: %s", stderr.String())
	}
	return strings.Split(strings.TrimRight(out.String(), "\n"), "\n"), code
}

// wantOnly checks that the lines with status are exactly the patterns (each
// a regular expression matched against the whole line), and the exit code.
func wantOnly(t *testing.T, lines []string, code int, status string, patterns ...string) {
	t.Helper()
	var got []string
	for _, l := range lines {
		if strings.HasPrefix(l, status+" ") {
			got = append(got, l)
		}
	}
	ok := len(got) == len(patterns)
	for i := 0; ok && i < len(got); i++ {
		ok = regexp.MustCompile("^" + patterns[i] + "$").MatchString(got[i])
	}
	wantCode := 0
	if status == "FAIL" && len(patterns) > 0 || status != "FAIL" && anyFail(lines) {
		wantCode = 1
	}
	if !ok || code != wantCode {
		t.Errorf("%s lines:\n%s\nwant (patterns):\n%s\nexit %d, want %d; all output:\n%s",
			status, strings.Join(got, "\n"), strings.Join(patterns, "\n"), code, wantCode, strings.Join(lines, "\n"))
	}
}

func anyFail(lines []string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, "FAIL ") {
			return true
		}
	}
	return false
}

func TestDoctor(t *testing.T) {
	d := startDoctorLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := d.relayA, d.relayB
	peerB := regexp.QuoteMeta(b.IP.String() + ":7124")

	t.Run("healthy", func(t *testing.T) {
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs()...))
		t.Logf("snowsignal doctor on relay-a:\n%s", strings.Join(lines, "\n"))
		wantOnly(t, lines, code, "FAIL")
		for _, want := range []string{
			"ok   capability: CAP_NET_RAW is effective",
			"ok   interface eth0: exists and is up, MTU 1500",
			"ok   interface eth0: IPv4 address 10.77.0.1/24 (broadcast 10.77.0.255)",
			"ok   mesh port 7124: held by the running relay",
			"ok   relay: snowsignal ",
		} {
			if !strings.Contains(strings.Join(lines, "\n"), want) {
				t.Errorf("no line %q in\n%s", want, strings.Join(lines, "\n"))
			}
		}
		// relay-b counted the answer, and no drop.
		out, err := exec.Command(d.bin, "stats", "--socket", d.b.StatsSocket, "--json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var snap struct {
			Probes struct{ Answered, Refused uint64 }
			Drops  map[string]uint64
		}
		if err := json.Unmarshal(out, &snap); err != nil {
			t.Fatal(err)
		}
		if snap.Probes.Answered != 1 || snap.Probes.Refused != 0 {
			t.Errorf("relay-b's probes %+v; want 1 answered", snap.Probes)
		}
		for r, n := range snap.Drops {
			if n != 0 {
				t.Errorf("relay-b dropped %d as %s", n, r)
			}
		}
		if !regexp.MustCompile(`(?m)^ok   peer ` + peerB + `: answers in [0-9.]+[µm]?s: snowsignal dev, legacy mesh, MTU 1500$`).MatchString(strings.Join(lines, "\n")) {
			t.Errorf("relay-b's answer not reported:\n%s", strings.Join(lines, "\n"))
		}
	})

	t.Run("missing capability", func(t *testing.T) {
		if _, err := exec.LookPath("capsh"); err != nil {
			t.Skip("needs capsh (Debian package libcap2-bin; .ci/run installs it)")
		}
		// capsh drops it from the bounding set; the shell's exec of the
		// binary then leaves it out of the effective set, even as root.
		lines, code := runDoctor(t, a.Command(ctx, "capsh", append([]string{"--drop=cap_net_raw", "--", "-c", `exec "$0" "$@"`, d.bin}, d.doctorArgs()...)...))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta("FAIL capability: CAP_NET_RAW is missing (effective set ")+"0x[0-9a-f]+"+
			regexp.QuoteMeta("): the relay cannot open its AF_PACKET sockets to capture and re-broadcast — fix: run as root, or `setcap cap_net_raw+ep $(command -v snowsignal)`, or in a container `cap_add: [NET_RAW]` (compose) / `securityContext.capabilities.add: [NET_RAW]` (Kubernetes)"))
	})

	t.Run("interface down", func(t *testing.T) {
		// A second interface, down, as the target: the peers stay
		// reachable through eth0.
		if err := a.Do(func() error {
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dn0"}, PeerName: "dn1"}); err != nil {
				return err
			}
			link, err := netlink.LinkByName("dn0")
			if err != nil {
				return err
			}
			addr, err := netlink.ParseAddr("192.168.99.1/24")
			if err != nil {
				return err
			}
			addr.Broadcast = net.IPv4(192, 168, 99, 255)
			return netlink.AddrAdd(link, addr)
		}); err != nil {
			t.Fatal(err)
		}
		defer a.Do(func() error {
			link, err := netlink.LinkByName("dn0")
			if err != nil {
				return err
			}
			return netlink.LinkDel(link)
		})
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs("--target-interface", "dn0")...))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta("FAIL interface dn0: is down: nothing is captured or re-broadcast on it — fix: ip link set dn0 up"))
	})

	t.Run("strict rp_filter", func(t *testing.T) {
		setRP := func(v string) error {
			return a.Do(func() error {
				return writeProcSys("net/ipv4/conf/lo/rp_filter", v)
			})
		}
		if err := setRP("1"); err != nil {
			t.Fatal(err)
		}
		defer setRP("0")
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs()...))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta("FAIL rp_filter lo: strict (1) with local delivery on: servers on this host never receive relayed broadcasts (their sources are on other segments)"+
			" — fix: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.lo.rp_filter=2 (loose; or 0), or --no-local-delivery"))
	})

	t.Run("peer runs no relay", func(t *testing.T) {
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs("--other-relays", d.server.IP.String())...))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta("FAIL peer 10.77.0.21:7124: port unreachable: nothing listens on UDP 7124 there, no relay runs on that host"+
			" — fix: start snowsignal there, or use the same --mesh-port (env MESH_PORT) on every relay"))
	})

	t.Run("peer behind a firewall", func(t *testing.T) {
		var handle uint64
		if err := b.Do(func() (err error) { handle, err = nftDropUDP(7124); return err }); err != nil {
			t.Fatalf("nftables rule: %v", err)
		}
		defer b.Do(nftRemove)
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs()...))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta("FAIL peer "+b.IP.String()+":7124: no answer to a probe within 500ms: no relay runs there, a firewall drops UDP 7124, or it is a Python relay (which does not answer probes)"+
			" — fix: run `snowsignal doctor` there; allow UDP 7124 between the relays (nft list ruleset, security groups)"))
		// On the peer itself, the rule is named.
		lines, code = runDoctor(t, b.Command(ctx, d.bin, "doctor", "--other-relays", a.IP.String(), "--stats-socket", d.b.StatsSocket, "--sample", "0", "--probe-timeout", "500ms"))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta(fmt.Sprintf("FAIL firewall 7124: rule %d of chain inet snowsignal_doctor_test input (hook input) drops all UDP to the mesh port 7124 — fix: nft delete rule inet snowsignal_doctor_test input handle %d", handle, handle)))
	})

	t.Run("mesh key here, none there", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "doctor-key") // t.TempDir's name has a comma, which separates key files
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		key := filepath.Join(dir, "mesh.key")
		if err := os.WriteFile(key, []byte("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs("--mesh-key-file", key)...))
		wantOnly(t, lines, code, "FAIL", regexp.QuoteMeta("FAIL peer "+b.IP.String()+":7124: the peer uses the legacy mesh (no key) and this relay the authenticated one: each drops the other's datagrams (bad_auth)"+
			" — fix: give the peer the same --mesh-key-file (env MESH_KEY_FILE), or remove it here"))
	})

	t.Run("peer with a smaller MTU", func(t *testing.T) {
		lines, code := runDoctor(t, a.Command(ctx, d.bin, d.doctorArgs("--other-relays", d.relayC.IP.String())...))
		wantOnly(t, lines, code, "FAIL")
		wantOnly(t, lines, code, "warn", `warn peer 10\.77\.0\.3:7124: answers in [0-9.]+[µm]?s: snowsignal dev, legacy mesh, MTU 1400, smaller than ours \(1500\): frames over 1400 bytes relayed from here cannot be re-broadcast there \(too_big\)`+
			regexp.QuoteMeta(" — fix: use the same MTU on both segments (ip link set DEV mtu 1500), or keep broadcasts under 1400 bytes"))
	})

	t.Run("datagrams from a non-peer", func(t *testing.T) {
		args := d.doctorArgs()
		for i, v := range args {
			if v == "--sample" {
				args[i+1] = "3s"
			}
		}
		cmd := a.Command(ctx, d.bin, args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // inside the sample, well after its first read
		c := listen(t, d.client, "0.0.0.0:0")
		for i := range 50 {
			send(t, c, []byte(fmt.Sprintf("SS not a peer %d", i)), netip.AddrPortFrom(a.IP, 7124))
		}
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		wantOnly(t, lines, code, "FAIL", `FAIL drops: unknown_peer 50 from 10\.77\.0\.11 in [0-9.]+s: mesh datagrams from a host not in the peer set`+
			regexp.QuoteMeta(" — fix: add it to --other-relays, or check SERVICENAME / --discover (or --accept-any-peer)"))
	})
}

// writeProcSys writes a sysctl of the calling thread's network namespace.
func writeProcSys(name, value string) error {
	return os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
}

const nftTestTable = "snowsignal_doctor_test"

// nftDropUDP adds `table inet T { chain input { type filter hook input
// priority 0; udp dport PORT drop } }` and returns the rule's handle.
func nftDropUDP(port uint16) (uint64, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, err
	}
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: nftTestTable})
	pol := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &pol})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return 0, err
	}
	rules, err := c.GetRules(tb, ch)
	if err != nil || len(rules) != 1 {
		return 0, fmt.Errorf("read back the rule: %v (%d rules)", err, len(rules))
	}
	return rules[0].Handle, nil
}

// nftRemove deletes the test's table.
func nftRemove() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: nftTestTable})
	return c.Flush()
}
