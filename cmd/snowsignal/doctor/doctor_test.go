package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/snowsignal/snowsignal/netio/mesh"
)

var testCfg = Config{Interface: "eth0", BroadcastPorts: []uint16{5076}, MeshPort: 7124, Peers: []string{"10.0.0.2"},
	LocalDelivery: true, StatsSocket: "/run/test.sock", ProbeTimeout: 50 * time.Millisecond, Version: "test"}

// responder answers probes the way a relay does, with mtu and key.
func responder(mtu int, key []byte, known bool) func(ctx context.Context, peer netip.AddrPort, req []byte, timeout time.Duration, match func([]byte) bool) ([]byte, time.Duration, error) {
	return func(_ context.Context, _ netip.AddrPort, req []byte, _ time.Duration, match func([]byte) bool) ([]byte, time.Duration, error) {
		body, sealed := req, false
		if key != nil {
			if b, _, _, err := mesh.NewOpener(key).Open(req); err == nil {
				body, sealed = b, true
			} else if mesh.Kind(req) == mesh.Auth {
				return nil, 0, errors.New("i/o timeout") // bad_auth: no answer
			}
		} else if mesh.Kind(req) == mesh.Auth {
			return nil, 0, errors.New("i/o timeout")
		}
		nonce, ok := mesh.ParseProbe(body)
		if !ok {
			return nil, 0, errors.New("i/o timeout")
		}
		rep := mesh.ProbeReply{Nonce: nonce, MTU: mtu, Format: mesh.Legacy, Version: "1.0"}
		if known {
			rep.Flags |= mesh.ProbeKnownPeer
		}
		var out []byte
		if key != nil {
			rep.Format, rep.KeyID = mesh.Auth, mesh.KeyID(key)
			if !sealed {
				rep.Flags |= mesh.ProbeAuthRequired
			}
		}
		buf := make([]byte, mesh.AuthHeaderLen+mesh.ProbeLen)
		b := mesh.PutProbeReply(buf[mesh.AuthHeaderLen:], rep)
		out = b
		if sealed {
			out = buf[mesh.NewSealer(key, 9).Seal(buf, mesh.AuthHeaderLen, len(b)):]
		}
		if !match(out) {
			return nil, 0, errors.New("reply does not match")
		}
		return out, 300 * time.Microsecond, nil
	}
}

// healthy returns the facts of a host where every check passes.
func healthy() Facts {
	return Facts{
		Capabilities: func() (uint64, error) { return 1 << capNetRaw, nil },
		Interface: func(name string) (*Iface, error) {
			return &Iface{Name: name, Up: true, MTU: 1500, Addrs: []IfaceAddr{{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParseAddr("10.0.0.255")}}}, nil
		},
		InterfaceNames: func() []string { return []string{"lo", "eth0"} },
		Sysctl:         func(string) (string, error) { return "0", nil },
		BindUDP:        func(netip.AddrPort) error { return nil },
		BoundUDP:       func([]uint16) ([]netip.AddrPort, error) { return nil, nil },
		LocalAddrs:     func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil },
		LookupHost: func(_ context.Context, name string) ([]netip.Addr, error) {
			return nil, fmt.Errorf("lookup %s: no such host", name)
		},
		Probe:          responder(1500, nil, true),
		Firewall:       func() ([]Chain, error) { return nil, nil },
		LegacyIPTables: func() ([]string, error) { return nil, nil },
		Stats:          func(context.Context, string) ([]byte, error) { return nil, errors.New("no such file or directory") },
	}
}

// lines runs the doctor and returns its report's lines, failing the test
// unless exactly the lines in wantFail are FAIL.
func lines(t *testing.T, cfg Config, f Facts, wantFail ...string) []string {
	t.Helper()
	rep := Run(context.Background(), cfg, f)
	var out, fails []string
	for _, r := range rep.Results {
		out = append(out, r.Line())
		if r.Status == Fail {
			fails = append(fails, r.Line())
		}
	}
	if strings.Join(fails, "\n") != strings.Join(wantFail, "\n") || rep.Failed != (len(wantFail) > 0) {
		t.Errorf("FAIL lines:\n%s\nwant:\n%s\nall:\n%s", strings.Join(fails, "\n"), strings.Join(wantFail, "\n"), strings.Join(out, "\n"))
	}
	return out
}

func TestHealthyHostPasses(t *testing.T) {
	out := lines(t, testCfg, healthy())
	want := "ok   peer 10.0.0.2:7124: answers in 300µs: snowsignal 1.0, legacy mesh, MTU 1500"
	if !strings.Contains(strings.Join(out, "\n"), want) {
		t.Errorf("no line %q in\n%s", want, strings.Join(out, "\n"))
	}
}

func TestMissingCapability(t *testing.T) {
	f := healthy()
	f.Capabilities = func() (uint64, error) { return 1 << 12, nil }
	lines(t, testCfg, f, "FAIL capability: CAP_NET_RAW is missing (effective set 0x1000): the relay cannot open its AF_PACKET sockets to capture and re-broadcast"+
		" — fix: run as root, or `setcap cap_net_raw+ep $(command -v snowsignal)`, or in a container `cap_add: [NET_RAW]` (compose) / `securityContext.capabilities.add: [NET_RAW]` (Kubernetes)")
}

func TestParseCapEff(t *testing.T) {
	v, err := parseCapEff("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n")
	if err != nil || v != 0x1ffffffffff {
		t.Errorf("parseCapEff = %#x, %v", v, err)
	}
	if _, err := parseCapEff("Name:\tx\n"); err == nil {
		t.Error("no CapEff line parsed")
	}
}

func TestInterfaceFaults(t *testing.T) {
	f := healthy()
	f.Interface = func(string) (*Iface, error) { return nil, errors.New("Link not found") }
	lines(t, testCfg, f, "FAIL interface eth0: does not exist (Link not found); interfaces here: lo, eth0 — fix: --target-interface (env TARGET_INTERFACE) with one of: lo, eth0")

	f = healthy()
	f.Interface = func(name string) (*Iface, error) {
		return &Iface{Name: name, MTU: 1500, Addrs: []IfaceAddr{
			{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParseAddr("10.0.0.255")},
			{netip.MustParsePrefix("192.168.5.1/16"), netip.Addr{}}}}, nil
	}
	out := lines(t, testCfg, f, "FAIL interface eth0: is down: nothing is captured or re-broadcast on it — fix: ip link set eth0 up")
	want := "ok   interface eth0: 2 IPv4 addresses: 10.0.0.1/24 (broadcast 10.0.0.255), 192.168.5.1/16 (no broadcast); each relayed broadcast goes to its client's subnet (else 10.0.0.0/24's)"
	if !strings.Contains(strings.Join(out, "\n"), want) {
		t.Errorf("no line %q in\n%s", want, strings.Join(out, "\n"))
	}
}

func TestStrictRPFilter(t *testing.T) {
	f := healthy()
	f.Sysctl = func(name string) (string, error) {
		if name == "net.ipv4.conf.lo.rp_filter" {
			return "1", nil
		}
		return "0", nil
	}
	lines(t, testCfg, f, "FAIL rp_filter lo: strict (1) with local delivery on: servers on this host never receive relayed broadcasts (their sources are on other segments)"+
		" — fix: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.lo.rp_filter=2 (loose; or 0), or --no-local-delivery")
	cfg := testCfg
	cfg.LocalDelivery = false
	lines(t, cfg, f) // lo does not matter without local delivery
}

func TestMeshPortInUse(t *testing.T) {
	f := healthy()
	f.BindUDP = func(netip.AddrPort) error {
		return fmt.Errorf("listen udp4 0.0.0.0:7124: bind: %w", syscall.EADDRINUSE)
	}
	lines(t, testCfg, f, "FAIL mesh port 7124: held by another process, not a relay answering on /run/test.sock: the relay cannot bind it"+
		" — fix: stop it (find it: ss -ulpn 'sport = :7124'), or choose another --mesh-port on every relay")
	f.Stats = func(context.Context, string) ([]byte, error) {
		return []byte(`{"format":1,"version":"1.0","config":{"interface":"eth0","mesh_port":7124},"capture_up":true}`), nil
	}
	out := lines(t, testCfg, f)
	if !strings.Contains(strings.Join(out, "\n"), "ok   mesh port 7124: held by the running relay") {
		t.Errorf("running relay's port not recognised:\n%s", strings.Join(out, "\n"))
	}
}

func TestBroadcastPortListener(t *testing.T) {
	f := healthy()
	f.BoundUDP = func([]uint16) ([]netip.AddrPort, error) {
		return []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:5076")}, nil
	}
	cfg := testCfg
	cfg.LocalDelivery = false
	out := strings.Join(lines(t, cfg, f), "\n")
	if !strings.Contains(out, "warn broadcast port 5076: a local server listens (0.0.0.0:5076) but local delivery is off") {
		t.Errorf("listener without local delivery not reported:\n%s", out)
	}
}

func TestPeerFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		probe func(ctx context.Context, peer netip.AddrPort, req []byte, timeout time.Duration, match func([]byte) bool) ([]byte, time.Duration, error)
		keys  [][]byte
		want  string
	}{
		{"no relay", func(context.Context, netip.AddrPort, []byte, time.Duration, func([]byte) bool) ([]byte, time.Duration, error) {
			return nil, 0, fmt.Errorf("read udp: %w", syscall.ECONNREFUSED)
		}, nil, "FAIL peer 10.0.0.2:7124: port unreachable: nothing listens on UDP 7124 there, no relay runs on that host" +
			" — fix: start snowsignal there, or use the same --mesh-port (env MESH_PORT) on every relay"},
		{"no answer", func(context.Context, netip.AddrPort, []byte, time.Duration, func([]byte) bool) ([]byte, time.Duration, error) {
			return nil, 0, errors.New("i/o timeout")
		}, nil, "FAIL peer 10.0.0.2:7124: no answer to a probe within 50ms: no relay runs there, a firewall drops UDP 7124, or it is a Python relay (which does not answer probes)" +
			" — fix: run `snowsignal doctor` there; allow UDP 7124 between the relays (nft list ruleset, security groups)"},
		{"not a peer there", responder(1500, nil, false), nil,
			"FAIL peer 10.0.0.2:7124: answers in 300µs: snowsignal 1.0, legacy mesh, MTU 1500; but this host is not in its peer set: it drops our datagrams (unknown_peer)" +
				" — fix: add this host to the peer's --other-relays (or its discovery name), or give it --accept-any-peer"},
		{"peer keyed, we not", responder(1500, bytes.Repeat([]byte{1}, 32), true), nil,
			fmt.Sprintf("FAIL peer 10.0.0.2:7124: the peer uses the authenticated mesh (key id %#02x) and this relay has no key: each drops the other's datagrams (bad_auth)", mesh.KeyID(bytes.Repeat([]byte{1}, 32))) +
				" — fix: give this relay the same --mesh-key-file (env MESH_KEY_FILE) as its peers, or remove it from the peer"},
		{"other key", responder(1500, bytes.Repeat([]byte{1}, 32), true), [][]byte{bytes.Repeat([]byte{2}, 32)},
			fmt.Sprintf("FAIL peer 10.0.0.2:7124: the peer uses another mesh key (its key id %#02x, ours %#02x): each drops the other's datagrams (bad_auth)", mesh.KeyID(bytes.Repeat([]byte{1}, 32)), mesh.KeyID(bytes.Repeat([]byte{2}, 32))) +
				" — fix: give every relay the same --mesh-key-file (env MESH_KEY_FILE)"},
		{"we keyed, peer not", responder(1500, nil, true), [][]byte{bytes.Repeat([]byte{2}, 32)},
			"FAIL peer 10.0.0.2:7124: the peer uses the legacy mesh (no key) and this relay the authenticated one: each drops the other's datagrams (bad_auth)" +
				" — fix: give the peer the same --mesh-key-file (env MESH_KEY_FILE), or remove it here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			f.Probe = tc.probe
			cfg := testCfg
			cfg.MeshKeys = tc.keys
			lines(t, cfg, f, tc.want)
		})
	}
}

func TestPeerSealedAndSmallerMTU(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	f := healthy()
	f.Probe = responder(1400, key, true)
	cfg := testCfg
	cfg.MeshKeys = [][]byte{key}
	out := strings.Join(lines(t, cfg, f), "\n")
	want := fmt.Sprintf("warn peer 10.0.0.2:7124: answers in 300µs: snowsignal 1.0, auth mesh (key id %#02x), MTU 1400, smaller than ours (1500): frames over 1400 bytes relayed from here cannot be re-broadcast there (too_big)"+
		" — fix: use the same MTU on both segments (ip link set DEV mtu 1500), or keep broadcasts under 1400 bytes", mesh.KeyID(key))
	if !strings.Contains(out, want) {
		t.Errorf("no line\n%s\nin\n%s", want, out)
	}
}

func TestPeerNames(t *testing.T) {
	f := healthy()
	f.LookupHost = func(_ context.Context, name string) ([]netip.Addr, error) {
		switch name {
		case "relay-b":
			return []netip.Addr{netip.MustParseAddr("10.0.0.2")}, nil
		case "tasks.snow":
			return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}, nil
		}
		return nil, fmt.Errorf("lookup %s: no such host", name)
	}
	cfg := testCfg
	cfg.Peers, cfg.Discover = []string{"relay-b", "relay-x"}, []string{"tasks.snow"}
	out := strings.Join(lines(t, cfg, f, "FAIL peer relay-x: does not resolve: lookup relay-x: no such host"+
		" — fix: check the name in --other-relays (env OTHER_RELAYS) and this host's DNS (/etc/resolv.conf, /etc/hosts)"), "\n")
	for _, want := range []string{
		"ok   peer relay-b: resolves to 10.0.0.2",
		"ok   discover tasks.snow: 2 addresses now: 10.0.0.1, 10.0.0.2 (10.0.0.1 is this host)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	if n := strings.Count(out, "peer 10.0.0.2:7124: answers"); n != 1 {
		t.Errorf("10.0.0.2 probed %d times; want once", n)
	}
}

func TestFirewall(t *testing.T) {
	udp := func(h uint64, verdict string, other bool, ports ...PortRange) Rule {
		return Rule{Handle: h, Verdict: verdict, Proto: 17, DPorts: ports, Other: other}
	}
	for _, tc := range []struct {
		name  string
		chain Chain
		want  string
	}{
		{"drop rule", Chain{"inet", "filter", "input", "input", "accept", []Rule{udp(5, "drop", false, PortRange{7124, 7124})}},
			"FAIL firewall 7124: rule 5 of chain inet filter input (hook input) drops all UDP to the mesh port 7124 — fix: nft delete rule inet filter input handle 5"},
		{"reject range", Chain{"ip", "fw", "in", "input", "accept", []Rule{udp(3, "reject", false, PortRange{5000, 5100})}},
			"FAIL firewall 5076: rule 3 of chain ip fw in (hook input) rejects all UDP to a broadcast port 5076 — fix: nft delete rule ip fw in handle 3"},
		{"accepted before", Chain{"inet", "filter", "input", "input", "accept", []Rule{udp(1, "accept", false, PortRange{7124, 7124}), udp(2, "drop", false)}},
			"FAIL firewall 5076: rule 2 of chain inet filter input (hook input) drops all UDP to a broadcast port 5076 — fix: nft delete rule inet filter input handle 2"},
		{"policy drop", Chain{"inet", "filter", "input", "input", "drop", []Rule{udp(1, "accept", false, PortRange{7124, 7124}, PortRange{5076, 5076})}}, ""},
		{"policy drop, no accept", Chain{"inet", "filter", "output", "output", "drop", nil},
			"FAIL firewall 7124: chain inet filter output (hook output) has policy drop and no rule accepts UDP to the mesh port 7124 — fix: nft add rule inet filter output udp dport 7124 accept"},
		{"tcp only", Chain{"inet", "filter", "input", "input", "accept", []Rule{{Handle: 1, Verdict: "drop", Proto: 6}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			f := healthy()
			f.Firewall = func() ([]Chain, error) { return []Chain{tc.chain}, nil }
			lines(t, testCfg, f, want...)
		})
	}
	f := healthy()
	f.Firewall = func() ([]Chain, error) {
		return []Chain{{"inet", "filter", "mesh", "", "", []Rule{udp(9, "drop", false, PortRange{7124, 7124})}}}, nil
	}
	if out := strings.Join(lines(t, testCfg, f), "\n"); !strings.Contains(out, "warn firewall 7124: rule 9 of chain inet filter mesh (regular chain, if jumped to) drops all UDP") {
		t.Errorf("a drop in a regular chain is not a warning:\n%s", out)
	}
	f = healthy()
	f.LegacyIPTables = func() ([]string, error) { return []string{"filter"}, nil }
	out := strings.Join(lines(t, testCfg, f), "\n")
	if !strings.Contains(out, "warn firewall: legacy iptables tables are loaded (filter): their rules cannot be read over netlink") {
		t.Errorf("legacy iptables not reported:\n%s", out)
	}
}

// TestReduceRule: the expressions nft(8) generates for common rules reduce
// to protocol, ports and verdict.
func TestReduceRule(t *testing.T) {
	dport := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}},
		&expr.Payload{Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2, DestRegister: 1},
	}
	r := reduceRule(&nftables.Rule{Handle: 4, Exprs: append(dport, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1b, 0xd4}},
		&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})}, nil)
	if want := (Rule{Handle: 4, Verdict: "drop", Proto: 17, DPorts: []PortRange{{7124, 7124}}}); fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("udp dport 7124 drop: %+v; want %+v", r, want)
	}
	r = reduceRule(&nftables.Rule{Handle: 5, Exprs: append([]expr.Any{
		&expr.Payload{Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4, DestRegister: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 0, 0, 9}}}, append(dport,
		&expr.Lookup{SourceRegister: 1, SetName: "__set0"}, &expr.Reject{})...)}, func(string, uint32) []PortRange {
		return []PortRange{{5064, 5065}, {5076, 5076}}
	})
	if want := (Rule{Handle: 5, Verdict: "reject", Proto: 17, DPorts: []PortRange{{5064, 5065}, {5076, 5076}}, Other: true}); fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("ip saddr 10.0.0.9 udp dport {5064-5065, 5076} reject: %+v; want %+v", r, want)
	}
}

func TestRunningRelay(t *testing.T) {
	snaps := []string{
		`{"format":1,"version":"1.0","time":"2026-01-01T00:00:00Z","config":{"interface":"eth0","mesh_port":7124},"capture_up":true,
		  "stages":[{"name":"capture","state":"running"}],"drops":{"unknown_peer":10,"duplicate":5,"bad_auth":0},
		  "unknown_sources":[{"addr":"10.77.0.11","datagrams":10}],"peers":[{"addr":"10.0.0.2:7124","last_heard":null}],"neighbours":[]}`,
		`{"format":1,"version":"1.0","time":"2026-01-01T00:00:02Z","config":{"interface":"eth0","mesh_port":7124,"mesh_offload":true},"capture_up":true,
		  "stages":[{"name":"capture","state":"running"}],"drops":{"unknown_peer":5210,"duplicate":9,"bad_auth":0},
		  "unknown_sources":[{"addr":"10.77.0.11","datagrams":5210}],"peers":[{"addr":"10.0.0.2:7124","last_heard":null}],"neighbours":["10.0.0.3"],
		  "mesh_kernel_drops":3,"mesh_offload":{"sending":false}}`,
	}
	f := healthy()
	n := 0
	f.Stats = func(context.Context, string) ([]byte, error) { n++; return []byte(snaps[min(n, 2)-1]), nil }
	f.BindUDP = func(netip.AddrPort) error { return syscall.EADDRINUSE }
	cfg := testCfg
	cfg.Sample = time.Millisecond
	out := strings.Join(lines(t, cfg, f, "FAIL drops: unknown_peer 5200 from 10.77.0.11 in 2s: mesh datagrams from a host not in the peer set"+
		" — fix: add it to --other-relays, or check SERVICENAME / --discover (or --accept-any-peer)"), "\n")
	for _, want := range []string{
		"ok   drops: duplicate 4 in 2s: datagrams seen twice",
		"warn kernel drops: 3 mesh datagrams dropped by the kernel in 2s",
		"warn mesh offload: the kernel refused to segment mesh datagrams (EIO)",
		"ok   neighbours: relays heard on this segment: 10.0.0.3",
		"ok   peer 10.0.0.2:7124: not heard from since it joined the peer set",
		"ok   mesh port 7124: held by the running relay",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line starting %q in\n%s", want, out)
		}
	}
}

// TestJSON: the report's JSON has the documented fields.
func TestJSON(t *testing.T) {
	f := healthy()
	f.Capabilities = func() (uint64, error) { return 0, nil }
	rep := Run(context.Background(), testCfg, f)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version string `json:"version"`
		Failed  bool   `json:"failed"`
		Results []struct {
			Check, Status, Message, Fix string
		} `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Failed || v.Version != "test" || len(v.Results) != len(rep.Results) {
		t.Fatalf("JSON %s", buf.Bytes())
	}
	for _, r := range v.Results {
		if r.Check == "capability" && (r.Status != "fail" || r.Fix == "") {
			t.Errorf("capability result %+v; want status fail with a fix", r)
		}
		if r.Status != "ok" && r.Status != "warn" && r.Status != "fail" {
			t.Errorf("status %q", r.Status)
		}
	}
}

// TestRunningRecentDrops: a relay's own minute window reports drops that
// moved before doctor's two reads, over its span, with the relay's list of
// unknown sources.
func TestRunningRecentDrops(t *testing.T) {
	var a, b snapshot
	now := time.Now()
	a.Time, b.Time = now, now.Add(2*time.Second)
	a.CaptureUp, b.CaptureUp = true, true
	a.Drops = map[string]uint64{"unknown_peer": 40, "stale": 3}
	b.Drops = map[string]uint64{"unknown_peer": 40, "stale": 3}
	b.UnknownSources = append(b.UnknownSources, struct {
		Addr      string `json:"addr"`
		Datagrams uint64 `json:"datagrams"`
	}{"10.77.0.11", 40})
	b.RecentDrops = &struct {
		Seconds float64           `json:"seconds"`
		Drops   map[string]uint64 `json:"drops"`
	}{Seconds: 58.4, Drops: map[string]uint64{"unknown_peer": 40}}
	var got []string
	for _, r := range checkRunning(&a, &b) {
		if r.Check == "drops" {
			got = append(got, r.Message)
		}
	}
	want := "unknown_peer 40 from 10.77.0.11 in 58s: "
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("drops lines %q, want one starting %q", got, want)
	}
}
