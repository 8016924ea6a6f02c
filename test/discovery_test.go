package test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// The discovery tests run real relays that find each other through a real
// DNS server: an authoritative server for lab.test, run by the test process
// in a lab host's namespace, whose records the test changes while the
// relays run. The relays resolve through the normal resolver path: the
// /etc/resolv.conf that `ip netns exec` mounts from /etc/netns/<ns>/.

// discInterval is the relays' --discovery-interval; discMargin is the time
// we allow on top of it for the lookup and the set swap (both take well
// under a millisecond here) and for a loaded CI machine.
const (
	discInterval = time.Second
	discMargin   = 400 * time.Millisecond
	discEvery    = 20 * time.Millisecond // gap between probe broadcasts
)

var discDNSAddr = netip.MustParseAddr("10.77.0.53")

// labDNS is an authoritative DNS server for lab.test. Answers have TTL 0,
// so nothing caches them.
type labDNS struct {
	srv *dns.Server

	mu      sync.Mutex
	records map[string][]netip.Addr // FQDN -> A records
	queries int
}

// startLabDNS serves DNS on h's port 53 until the test ends, and points the
// resolver of every host in clients at it.
func startLabDNS(t *testing.T, h *netlab.Host, clients ...*netlab.Host) *labDNS {
	t.Helper()
	conn, err := h.ListenUDP("0.0.0.0:53")
	if err != nil {
		t.Fatal(err)
	}
	d := &labDNS{records: map[string][]netip.Addr{}}
	started := make(chan struct{})
	d.srv = &dns.Server{PacketConn: conn, Handler: d, NotifyStartedFunc: func() { close(started) }}
	served := make(chan error, 1)
	go func() { served <- d.srv.ActivateAndServe() }()
	t.Cleanup(func() {
		d.srv.Shutdown()
		<-served
	})
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("DNS server: %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("DNS server did not start")
	}
	// One try, one second: a lost answer shows as a failed round, never
	// as a stall longer than the discovery interval.
	conf := fmt.Sprintf("nameserver %s\noptions timeout:1 attempts:1\n", h.IP)
	for _, c := range clients {
		if err := c.WriteEtc("resolv.conf", []byte(conf)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// set replaces the A records of name.
func (d *labDNS) set(name string, hosts ...*netlab.Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var addrs []netip.Addr
	for _, h := range hosts {
		addrs = append(addrs, h.IP)
	}
	d.records[dns.Fqdn(name)] = addrs
}

// ServeDNS answers A queries from the records: NXDOMAIN for unknown names,
// no answer (NODATA) for other types.
func (d *labDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true // else Go's resolver takes an empty answer for a lame referral
	d.mu.Lock()
	d.queries++
	for _, q := range req.Question {
		addrs, ok := d.records[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype != dns.TypeA {
			continue
		}
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   a.AsSlice(),
			})
		}
	}
	d.mu.Unlock()
	w.WriteMsg(m)
}

func (d *labDNS) queryCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// probeWatch receives probe broadcasts on one host and remembers which
// arrived. A probe is a sender tag byte and a sequence number.
type probeWatch struct {
	host *netlab.Host
	conn *net.UDPConn

	mu  sync.Mutex
	got map[probeID]bool
}

type probeID struct {
	tag byte
	seq uint64
}

const probeMagic = "ssdisc"

func encodeProbe(id probeID) []byte {
	b := make([]byte, len(probeMagic)+9)
	copy(b, probeMagic)
	b[len(probeMagic)] = id.tag
	binary.BigEndian.PutUint64(b[len(probeMagic)+1:], id.seq)
	return b
}

// watchProbes listens on h's port 5076 until the test ends.
func watchProbes(t *testing.T, h *netlab.Host) *probeWatch {
	t.Helper()
	conn, err := h.ListenUDP("0.0.0.0:5076")
	if err != nil {
		t.Fatal(err)
	}
	w := &probeWatch{host: h, conn: conn, got: map[probeID]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed at the end of the test
			}
			b := buf[:n]
			if n != len(probeMagic)+9 || string(b[:len(probeMagic)]) != probeMagic {
				continue
			}
			id := probeID{tag: b[len(probeMagic)], seq: binary.BigEndian.Uint64(b[len(probeMagic)+1:])}
			w.mu.Lock()
			w.got[id] = true
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return w
}

func (w *probeWatch) has(id probeID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got[id]
}

// prober sends probe broadcasts from one host.
type prober struct {
	tag  byte
	conn *net.UDPConn
	dst  netip.AddrPort
	seq  uint64
	sent []time.Time // sent[i] is when probe i went out
}

func newProber(t *testing.T, h *netlab.Host, tag byte) *prober {
	t.Helper()
	conn, err := h.BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &prober{tag: tag, conn: conn, dst: netip.MustParseAddrPort("10.77.0.255:5076")}
}

// send broadcasts the next probe and returns its id.
func (p *prober) send(t *testing.T) probeID {
	t.Helper()
	id := probeID{tag: p.tag, seq: p.seq}
	if _, err := p.conn.WriteToUDPAddrPort(encodeProbe(id), p.dst); err != nil {
		t.Fatalf("send probe: %v", err)
	}
	p.seq++
	p.sent = append(p.sent, time.Now())
	return id
}

// sendUntil broadcasts a probe every discEvery until the deadline.
func (p *prober) sendUntil(t *testing.T, deadline time.Time) {
	t.Helper()
	for n := 0; time.Now().Before(deadline) && n < 10_000; n++ {
		p.send(t)
		time.Sleep(discEvery)
	}
}

// reaches sends a probe every discEvery until every watcher has received
// one, for at most timeout, and returns how long that took.
func (p *prober) reaches(t *testing.T, timeout time.Duration, ws ...*probeWatch) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	var ids []probeID
	for time.Since(start) < timeout {
		ids = append(ids, p.send(t))
		time.Sleep(discEvery)
		if !slices.ContainsFunc(ws, func(w *probeWatch) bool { return !slices.ContainsFunc(ids, w.has) }) {
			return time.Since(start), nil
		}
	}
	var missing []string
	for _, w := range ws {
		if !slices.ContainsFunc(ids, w.has) {
			missing = append(missing, w.host.Name)
		}
	}
	return 0, fmt.Errorf("%d probes in %v reached none of %v", len(ids), timeout, missing)
}

// received splits probes [from, to) of p by whether w got them.
func (p *prober) received(w *probeWatch, from, to uint64) (got, lost []uint64) {
	for s := from; s < to; s++ {
		if w.has(probeID{tag: p.tag, seq: s}) {
			got = append(got, s)
		} else {
			lost = append(lost, s)
		}
	}
	return got, lost
}

// firstSentAfter returns the sequence number of p's first probe sent at or
// after at.
func (p *prober) firstSentAfter(at time.Time) uint64 {
	i, _ := slices.BinarySearchFunc(p.sent, at, time.Time.Compare)
	return uint64(i)
}

// threeSegmentDNSSwarm is one subnet over three segments with a relay on
// each, a client on a, a server on b and c, and the DNS server on a.
func threeSegmentDNSSwarm() netlab.Spec {
	ip := netip.MustParseAddr
	return netlab.Spec{
		Subnet: netip.MustParsePrefix("10.77.0.0/24"),
		Segments: []netlab.SegmentSpec{
			{Name: "a", Hosts: []netlab.HostSpec{
				{Name: "client", Addr: ip("10.77.0.11")},
				{Name: "relay-a", Addr: ip("10.77.0.1")},
				{Name: "dns", Addr: discDNSAddr},
			}},
			{Name: "b", Hosts: []netlab.HostSpec{
				{Name: "server-b", Addr: ip("10.77.0.21")},
				{Name: "relay-b", Addr: ip("10.77.0.2")},
			}},
			{Name: "c", Hosts: []netlab.HostSpec{
				{Name: "server-c", Addr: ip("10.77.0.31")},
				{Name: "relay-c", Addr: ip("10.77.0.3")},
			}},
		},
	}
}

// TestDiscoveryByDNS: three relays started with --discover find each other
// by name; a relay removed from DNS stops receiving within one interval
// while the others never miss a broadcast; a new relay added to DNS
// receives within one interval.
func TestDiscoveryByDNS(t *testing.T) {
	bin := harness.Binary(t)
	l := netlabtest.NewSwarmT(t, threeSegmentDNSSwarm())
	ra, rb, rc := l.Host("relay-a"), l.Host("relay-b"), l.Host("relay-c")
	d := startLabDNS(t, l.Host("dns"), ra, rb, rc)
	const name = "relays.lab.test"
	d.set(name, ra, rb, rc)
	args := []string{"--discover", name, "--discovery-interval", discInterval.String()}
	relays := map[string]*labrelay.Relay{}
	for _, h := range []*netlab.Host{ra, rb, rc} {
		relays[h.Name] = harness.StartT(t, bin, h, args...)
	}
	for _, r := range relays {
		e, err := r.WaitLog(labrelay.Msg("peer set changed"), 2*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", r.Host.Name, err)
		}
		// Every relay resolves all three addresses; its own is never a peer.
		if want := otherMeshAddrs(r.Host, ra, rb, rc); !sameStrings(e["joined"], want) {
			t.Fatalf("%s: joined %v, want %v", r.Host.Name, e["joined"], want)
		}
	}

	watch := map[string]*probeWatch{}
	for _, n := range []string{"client", "server-b", "server-c"} {
		watch[n] = watchProbes(t, l.Host(n))
	}
	client := newProber(t, l.Host("client"), 'a')

	// Step 1: every relay has the other two. A broadcast from each segment
	// reaches the other two segments.
	for i, step := range []struct {
		from string
		to   []string
	}{
		{"client", []string{"server-b", "server-c"}},
		{"server-b", []string{"client", "server-c"}},
		{"server-c", []string{"client", "server-b"}},
	} {
		p := client
		if i > 0 {
			p = newProber(t, l.Host(step.from), byte('a'+i))
		}
		var to []*probeWatch
		for _, n := range step.to {
			to = append(to, watch[n])
		}
		if _, err := p.reaches(t, 2*time.Second, to...); err != nil {
			t.Fatalf("from %s: %v", step.from, err)
		}
	}
	if d.queryCount() == 0 {
		t.Fatal("the relays found each other without asking the DNS server")
	}

	// Step 2: relay-c leaves DNS. Broadcasts from the client keep going.
	removed := time.Now()
	d.set(name, ra, rb)
	first := client.firstSentAfter(removed)
	client.sendUntil(t, removed.Add(discInterval+discMargin+600*time.Millisecond))
	end := client.seq
	time.Sleep(50 * time.Millisecond) // the last probe crosses the lab
	if _, lost := client.received(watch["server-b"], first, end); len(lost) > 0 {
		t.Errorf("server-b missed %d of %d broadcasts while relay-c left the set: %v", len(lost), end-first, lost)
	}
	cutoff := client.firstSentAfter(removed.Add(discInterval + discMargin))
	if got, _ := client.received(watch["server-c"], cutoff, end); len(got) > 0 {
		t.Errorf("server-c still received %d of the %d broadcasts sent more than %v after relay-c left DNS", len(got), end-cutoff, discInterval+discMargin)
	}
	if !hasLeft(relays["relay-a"], meshAddr(rc)) {
		t.Errorf("relay-a logged no peer set change with relay-c leaving")
	}

	// Step 3: a new relay starts on segment c and is added to DNS.
	if err := relays["relay-c"].Stop(); err != nil {
		t.Fatalf("stop relay-c: %v", err)
	}
	relays["relay-c"] = harness.StartT(t, bin, rc, args...)
	added := time.Now()
	d.set(name, ra, rb, rc)
	first = client.firstSentAfter(added)
	client.sendUntil(t, added.Add(discInterval+discMargin+600*time.Millisecond))
	end = client.seq
	time.Sleep(50 * time.Millisecond)
	if _, lost := client.received(watch["server-b"], first, end); len(lost) > 0 {
		t.Errorf("server-b missed %d of %d broadcasts while relay-c joined the set: %v", len(lost), end-first, lost)
	}
	cutoff = client.firstSentAfter(added.Add(discInterval + discMargin))
	if _, lost := client.received(watch["server-c"], cutoff, end); len(lost) > 0 || cutoff == end {
		t.Errorf("server-c missed %d of the %d broadcasts sent more than %v after relay-c joined DNS: %v", len(lost), end-cutoff, discInterval+discMargin, lost)
	}
}

// TestDiscoverySwarmServiceName: SERVICENAME alone (the Swarm deployment:
// no arguments) discovers tasks.<SERVICENAME>. A relay that joins later is
// picked up by the others well before their next interval, because hearing
// from a relay outside the set triggers an early resolution.
func TestDiscoverySwarmServiceName(t *testing.T) {
	bin := harness.Binary(t)
	spec := netlab.TwoSegmentSwarm()
	spec.Segments[0].Hosts = append(spec.Segments[0].Hosts, netlab.HostSpec{Name: "dns", Addr: discDNSAddr})
	l := netlabtest.NewSwarmT(t, spec)
	ra, rb := l.Host("relay-a"), l.Host("relay-b")
	d := startLabDNS(t, l.Host("dns"), ra, rb)
	const interval = 30 * time.Second // long: only an early resolution can be fast enough
	opts := labrelay.Options{Env: []string{"SERVICENAME=snowsignal", "DISCOVERY_INTERVAL=" + interval.String()}}

	// relay-a is alone in the service.
	d.set("tasks.snowsignal", ra)
	a := startOpts(t, opts, bin, ra)
	if _, err := a.WaitLog(labrelay.Msg("discovering peers by DNS, re-resolved every interval"), time.Second); err != nil {
		t.Fatal(err)
	}
	if e, _ := a.WaitLog(labrelay.Msg("peer set changed"), 300*time.Millisecond); e != nil {
		t.Fatalf("relay-a alone in tasks.snowsignal changed its peer set: %v (its own address is never a peer)", e)
	}
	for _, e := range a.Logs() {
		if s, _ := e["message"].(string); strings.Contains(s, "self mode") {
			t.Fatalf("SERVICENAME set but relay-a logged self mode: %v", e)
		}
	}

	// relay-b joins the service: its own first lookup finds relay-a.
	d.set("tasks.snowsignal", ra, rb)
	b := startOpts(t, opts, bin, rb)
	if e, err := b.WaitLog(labrelay.Msg("peer set changed"), 2*time.Second); err != nil || !sameStrings(e["joined"], []string{meshAddr(ra)}) {
		t.Fatalf("relay-b: %v %v, want relay-a joined", e, err)
	}

	// A broadcast on segment b reaches relay-a, which does not know relay-b
	// yet and drops it, but resolves early and admits the ones that follow.
	watchA := watchProbes(t, l.Host("client"))
	watchB := watchProbes(t, l.Host("server"))
	took, err := newProber(t, l.Host("server"), 'b').reaches(t, 3*time.Second, watchA)
	if err != nil {
		t.Fatalf("server to client: %v (relay-a did not pick up relay-b before its %v interval)", err, interval)
	}
	t.Logf("relay-a admitted the new relay after %v (interval %v)", took, interval)
	if _, err := newProber(t, l.Host("client"), 'a').reaches(t, time.Second, watchB); err != nil {
		t.Fatalf("client to server: %v", err)
	}
	e, err := a.WaitLog(labrelay.Msg("peer set changed"), 0)
	if err != nil || !sameStrings(e["joined"], []string{meshAddr(rb)}) {
		t.Fatalf("relay-a: %v %v, want relay-b joined", e, err)
	}
}

// startOpts is harness.StartT with options.
func startOpts(t *testing.T, o labrelay.Options, bin string, h *netlab.Host, args ...string) *labrelay.Relay {
	t.Helper()
	r, err := o.Start(t.Context(), bin, h, args...)
	if err != nil {
		t.Fatal(err)
	}
	harness.StopOnCleanup(t, r)
	return r
}

func meshAddr(h *netlab.Host) string { return netip.AddrPortFrom(h.IP, 7124).String() }

// otherMeshAddrs returns the mesh addresses of hosts other than self.
func otherMeshAddrs(self *netlab.Host, hosts ...*netlab.Host) []string {
	var out []string
	for _, h := range hosts {
		if h != self {
			out = append(out, meshAddr(h))
		}
	}
	return out
}

// sameStrings reports whether the JSON list v holds exactly want, in any order.
func sameStrings(v any, want []string) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	var got []string
	for _, x := range list {
		s, _ := x.(string)
		got = append(got, s)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	return slices.Equal(got, want)
}

// hasLeft reports whether r logged a peer set change with addr leaving.
func hasLeft(r *labrelay.Relay, addr string) bool {
	for _, e := range r.Logs() {
		if e["message"] != "peer set changed" {
			continue
		}
		if list, ok := e["left"].([]any); ok && slices.Contains(list, any(addr)) {
			return true
		}
	}
	return false
}
