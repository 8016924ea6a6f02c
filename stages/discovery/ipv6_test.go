package discovery

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestIPv6Peers: with IPv6, discovery asks for A and AAAA records and keeps
// global and unique-local IPv6 addresses and IPv6 --other-relays literals;
// this host's own IPv6 addresses, link-local, loopback and multicast ones
// are never peers. Without it the same configuration yields the IPv4 peers
// of before and asks for A records only.
func TestIPv6Peers(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("fd00:77::1")}
	cfg := Config{
		Static:     []string{"fd00:77::9", "10.0.1.9"},
		Discover:   []string{"tasks.snowsignal"},
		Interval:   time.Second,
		LocalAddrs: func() ([]netip.Addr, error) { return local, nil },
	}
	answers := []string{"10.0.1.1", "10.0.1.2", "fd00:77::1", "fd00:77::2", "2001:db8::2", "fe80::2", "::1", "ff02::1", "::"}

	r := newRig(cfg)
	r.dns.set("tasks.snowsignal", answers...)
	r.resolve()
	want(t, r.peers(), "10.0.1.2=tasks.snowsignal", "10.0.1.9=static")
	if !slices.Equal(r.dns.networks, []string{"ip4"}) {
		t.Errorf("without IPv6 looked up %q, want ip4 only", r.dns.networks)
	}

	cfg.IPv6 = true
	r = newRig(cfg)
	r.dns.set("tasks.snowsignal", answers...)
	r.resolve()
	want(t, r.peers(), "10.0.1.2=tasks.snowsignal", "10.0.1.9=static",
		"2001:db8::2=tasks.snowsignal", "fd00:77::2=tasks.snowsignal", "fd00:77::9=static")
	if !slices.Equal(r.dns.networks, []string{"ip"}) {
		t.Errorf("with IPv6 looked up %q, want ip (A and AAAA)", r.dns.networks)
	}
	for _, p := range r.table.Load().Peers {
		if p.Addr.Port() != meshPort {
			t.Errorf("peer %s: port %d, want the mesh port", p.Addr, p.Addr.Port())
		}
	}
}

// TestAAAAFromDNSServer: the system resolver (Go's, pointed at a DNS
// server on loopback) turns a name with A and AAAA records into both
// families of peers; the server saw both questions.
func TestAAAAFromDNSServer(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	var mu sync.Mutex
	var types []uint16
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		for _, q := range req.Question {
			mu.Lock()
			types = append(types, q.Qtype)
			mu.Unlock()
			hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET}
			switch {
			case q.Name != "relays.example.":
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP("10.0.1.2")})
			case q.Qtype == dns.TypeAAAA:
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("fd00:77::2")})
			}
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: conn, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	<-started
	addr := conn.LocalAddr().String()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	r := newRig(Config{Discover: []string{"relays.example"}, Interval: time.Second, IPv6: true, Resolver: res})
	r.resolve()
	want(t, r.peers(), "10.0.1.2=relays.example", "fd00:77::2=relays.example")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(types, dns.TypeA) || !slices.Contains(types, dns.TypeAAAA) {
		t.Errorf("server was asked %v, want A and AAAA", types)
	}
}
