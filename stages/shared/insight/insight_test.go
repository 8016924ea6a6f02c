package insight

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/frame"
	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/pipeline"
)

// searches returns the three client searches of the EPICS vectors: pvget
// (EP:TEMP), pvxget (EP:TEMP, EP:COUNT) and caget (EP:TEMP), all from
// 10.77.0.11.
func searches(t testing.TB) [][]byte {
	t.Helper()
	v := frametest.Vector(t, "epics-search-segA-capture-and-mesh.pcap")
	return [][]byte{v[0], v[2], v[4]}
}

// batch returns a batch holding frames, decoded, as the filter stage keeps
// them.
func batch(t testing.TB, pool *pipeline.Pool, frames ...[]byte) *pipeline.Batch {
	t.Helper()
	b := pool.Get()
	for _, fr := range frames {
		p := b.Slot()
		if p == nil {
			t.Fatal("batch full")
		}
		p.Len = copy(p.Buf[p.Off:], fr)
		if err := p.Frame.DecodeIP(p.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestObserverIPv6: the searches of the EPICS vectors, sent over IPv6 to
// ff02::1 (--ipv6), give the same PV names, and their client is listed by
// its IPv6 address.
func TestObserverIPv6(t *testing.T) {
	var frames [][]byte
	for _, fr := range searches(t) {
		var f frame.Frame
		if err := f.Decode(fr); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frametest.UDP6{Src: netip.MustParseAddrPort("[fd00:77::11]:38726"),
			Dst: netip.AddrPortFrom(netip.MustParseAddr("ff02::1"), f.DstPort), Payload: f.Payload(fr)}.Frame())
	}
	in := New(Config{})
	out := in.Observer(Outbound, zerolog.Nop())
	out.Kept(batch(t, pipeline.NewPool(1600), frames...))
	s := in.Stats()
	if want := (Counters{PVASearches: 2, CASearches: 1, Names: 4}); s.Outbound != want {
		t.Errorf("outbound %+v, want %+v", s.Outbound, want)
	}
	if want := []Top{{"EP:TEMP", 3}, {"EP:COUNT", 1}}; !reflect.DeepEqual(s.TopNames, want) {
		t.Errorf("top names %+v, want %+v", s.TopNames, want)
	}
	if want := []Top{{"fd00:77::11", 4}}; !reflect.DeepEqual(s.TopClients, want) {
		t.Errorf("top clients %+v, want %+v", s.TopClients, want)
	}
	var kb [18]byte
	if got := addrName(string(addrKey(&kb, netip.MustParseAddrPort("[fd00::1]:5076"), true))); got != "[fd00::1]:5076" {
		t.Errorf("IPv6 server key renders as %q", got)
	}
}

func TestObserverCounts(t *testing.T) {
	in := New(Config{})
	pool := pipeline.NewPool(1600)
	out := in.Observer(Outbound, zerolog.Nop())
	out.Tracing()
	out.Kept(batch(t, pool, searches(t)...))
	inb := in.Observer(Inbound, zerolog.Nop())
	inb.Kept(batch(t, pool, searches(t)[2]))

	s := in.Stats()
	wantOut := Counters{PVASearches: 2, CASearches: 1, Names: 4}
	if s.Outbound != wantOut {
		t.Errorf("outbound %+v, want %+v", s.Outbound, wantOut)
	}
	if want := (Counters{CASearches: 1, Names: 1}); s.Inbound != want {
		t.Errorf("inbound %+v, want %+v", s.Inbound, want)
	}
	wantNames := []Top{{"EP:TEMP", 4}, {"EP:COUNT", 1}}
	if !reflect.DeepEqual(s.TopNames, wantNames) {
		t.Errorf("top names %+v, want %+v", s.TopNames, wantNames)
	}
	if want := []Top{{"10.77.0.11", 5}}; !reflect.DeepEqual(s.TopClients, want) {
		t.Errorf("top clients %+v, want %+v", s.TopClients, want)
	}
	if s.WindowSeconds != 60 || s.Tracked.Names != 2 || s.Tracked.Clients != 1 {
		t.Errorf("window %v, tracked %+v", s.WindowSeconds, s.Tracked)
	}
}

func TestObserverOther(t *testing.T) {
	in := New(Config{})
	pool := pipeline.NewPool(1600)
	o := in.Observer(Outbound, zerolog.Nop())
	text := frametest.Vector(t, "python-relay-segA-capture-and-mesh.pcap")[0] // 16 bytes of 0xab... not EPICS
	cut := bytes.Clone(searches(t)[0])
	cut[14+20+8+4] = 0xff // pvget's payload size now claims more than there is
	o.Kept(batch(t, pool, text, cut))
	s := in.Stats()
	if want := (Counters{Other: 1, Malformed: 1}); s.Outbound != want {
		t.Errorf("outbound %+v, want %+v", s.Outbound, want)
	}
	if len(s.TopNames) != 0 || len(s.TopClients) != 0 {
		t.Errorf("top lists %+v %+v, want empty", s.TopNames, s.TopClients)
	}
}

func TestObserverBeacons(t *testing.T) {
	in := New(Config{})
	pool := pipeline.NewPool(1600)
	// A Channel Access beacon announcing 0.0.0.0:5064 from 10.77.0.21:
	// the server is the frame's source.
	payload := []byte{0, 13, 0, 0, 0, 13, 0x13, 0xc8, 0, 0, 0, 1, 0, 0, 0, 0}
	fr := frametest.UDP{Src: netip.MustParseAddrPort("10.77.0.21:5065"),
		Dst: netip.MustParseAddrPort("10.77.0.255:5065"), Payload: payload}.Frame()
	o := in.Observer(Outbound, zerolog.Nop())
	o.Kept(batch(t, pool, fr, fr))
	s := in.Stats()
	if s.Outbound.CABeacons != 2 {
		t.Errorf("CA beacons %d, want 2", s.Outbound.CABeacons)
	}
	if want := []Top{{"10.77.0.21:5064", 2}}; !reflect.DeepEqual(s.TopServers, want) {
		t.Errorf("top servers %+v, want %+v", s.TopServers, want)
	}
}

func TestKeptAllocs(t *testing.T) {
	in := New(Config{})
	pool := pipeline.NewPool(1600)
	b := batch(t, pool, searches(t)...)
	for _, lvl := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		if lvl == zerolog.DebugLevel && raceEnabled {
			continue // zerolog's event pool allocates under -race
		}
		// At debug level, with a burst large enough to log every packet,
		// the log lines themselves must not allocate either.
		o := in.Observer(Outbound, zerolog.New(io.Discard).Level(lvl))
		o.relayed.limit, o.dropped.limit, o.search.limit = 1<<30, 1<<30, 1<<30
		o.Tracing()
		o.Kept(b) // the names enter the table: allocations allowed here
		for range 100 {
			o.Kept(b)
		}
		if n := testing.AllocsPerRun(1000, func() {
			o.Tracing()
			o.Kept(b)
			o.Dropped(&b.Pkts[0], pipeline.ReasonWrongPort)
		}); n != 0 {
			t.Errorf("level %v: %v allocations per batch in the steady state, want 0", lvl, n)
		}
	}
}

// logLines parses JSON log lines.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestDebugLogs(t *testing.T) {
	in := New(Config{LogBurst: 3})
	pool := pipeline.NewPool(1600)
	var buf bytes.Buffer
	o := in.Observer(Outbound, zerolog.New(&buf).Level(zerolog.DebugLevel).With().Str("stage", "filter").Logger())
	if !o.Tracing() {
		t.Fatal("Tracing() = false at debug level")
	}
	s := searches(t)
	o.Kept(batch(t, pool, s[1]))
	lines := logLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want a pv search and a relayed line: %v", len(lines), lines)
	}
	search := map[string]any{"level": "debug", "stage": "filter", "dir": "outbound", "proto": "pva",
		"client": "10.77.0.11:54620", "pvs": []any{"EP:TEMP", "EP:COUNT"}, "message": "pv search"}
	if !reflect.DeepEqual(lines[0], search) {
		t.Errorf("got  %v\nwant %v", lines[0], search)
	}
	relayed := map[string]any{"level": "debug", "stage": "filter", "dir": "outbound", "src": "10.77.0.11:54620",
		"dst": "10.77.0.255:5076", "size": float64(len(s[1])), "message": "relayed"}
	if !reflect.DeepEqual(lines[1], relayed) {
		t.Errorf("got  %v\nwant %v", lines[1], relayed)
	}

	// One batch is one instant: 20 packets give 3 lines of each kind
	// (the burst), whatever the clock says.
	buf.Reset()
	o.search = sampler{limit: 3}
	o.relayed = sampler{limit: 3}
	var frames [][]byte
	for range 20 {
		frames = append(frames, s[0])
	}
	o.Kept(batch(t, pool, frames...))
	kinds := map[string]int{}
	for _, l := range logLines(t, &buf) {
		kinds[l["message"].(string)]++
	}
	if want := map[string]int{"pv search": 3, "relayed": 3}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("lines by kind %v, want %v", kinds, want)
	}

	// Drops are logged with their reason.
	buf.Reset()
	b := batch(t, pool, s[2])
	o.Dropped(&b.Pkts[0], pipeline.ReasonWrongPort)
	l := logLines(t, &buf)
	if len(l) != 1 || l[0]["message"] != "dropped" || l[0]["reason"] != "wrong_port" || l[0]["src"] != "10.77.0.11:38495" {
		t.Errorf("drop lines %v", l)
	}

	// At info level nothing is logged and Tracing says so.
	buf.Reset()
	o = in.Observer(Outbound, zerolog.New(&buf).Level(zerolog.InfoLevel))
	if o.Tracing() {
		t.Error("Tracing() = true at info level")
	}
	o.Kept(batch(t, pool, s...))
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %s", buf.String())
	}
}

func TestSampler(t *testing.T) {
	s := sampler{limit: 2}
	sec := int64(time.Second)
	var got []string
	for _, now := range []int64{0, 1, 2, 3, sec, sec + 1, sec + 2, 5 * sec} {
		ok, sup := s.allow(now)
		got = append(got, fmt.Sprint(ok, sup))
	}
	want := []string{"true 0", "true 0", "false 0", "false 0", "true 2", "true 0", "false 0", "true 1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestTableWindow(t *testing.T) {
	tb := newTable(16)
	seed := maphash.MakeSeed()
	add := func(k string, now int64, n uint32) { tb.add(maphash.String(seed, k), []byte(k), now, n) }
	add("A", 0, 5)
	add("A", 3, 1)
	add("B", 5, 2)
	for _, tt := range []struct {
		now  int64
		want []Top
	}{
		{5, []Top{{"A", 6}, {"B", 2}}},
		{6, []Top{{"B", 2}, {"A", 1}}}, // slice 0 left the window
		{9, []Top{{"B", 2}}},           // slice 3 too
		{11, nil},
	} {
		if got := tb.top(tt.now, 10, func(s string) string { return s }); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("now %d: %v, want %v", tt.now, got, tt.want)
		}
	}
	add("A", 12, 1) // a long silence clears every slice
	if got := tb.top(12, 10, func(s string) string { return s }); !reflect.DeepEqual(got, []Top{{"A", 1}}) {
		t.Errorf("after silence: %v", got)
	}
}

// TestTableBounded floods a small table with distinct names while a few
// names recur: memory stays at the table's size and the recurring names
// stay on top with exact counts.
func TestTableBounded(t *testing.T) {
	tb := newTable(64)
	seed := maphash.MakeSeed()
	add := func(k string) { tb.add(maphash.String(seed, k), []byte(k), 0, 1) }
	for i := range 20000 {
		add(fmt.Sprintf("SCAN:%06d", i))
		if i%10 == 0 {
			add("HOT:1")
		}
		if i%20 == 0 {
			add("HOT:2")
		}
	}
	if len(tb.slots) != 64 || tb.len() > 64 {
		t.Fatalf("table grew to %d slots, %d keys", len(tb.slots), tb.len())
	}
	if tb.evicted == 0 {
		t.Error("no evictions counted")
	}
	top := tb.top(0, 2, func(s string) string { return s })
	if want := []Top{{"HOT:1", 2000}, {"HOT:2", 1000}}; !reflect.DeepEqual(top, want) {
		t.Errorf("top %v, want %v", top, want)
	}
}

func TestLongName(t *testing.T) {
	tb := newTable(8)
	long := bytes.Repeat([]byte("x"), 1000)
	for range 3 {
		tb.add(maphash.Bytes(maphash.MakeSeed(), long), long, 0, 1)
	}
	if got := tb.top(0, 1, func(s string) string { return s }); len(got) != 1 || len(got[0].Name) != maxKeyLen {
		t.Errorf("long names stored as %d entries", len(got))
	}
}

// BenchmarkKept measures the observer's cost per batch of 64 EPICS
// searches, as the filter stage pays it at info level.
func BenchmarkKept(b *testing.B) {
	in := New(Config{})
	pool := pipeline.NewPool(1600)
	s := searches(b)
	var frames [][]byte
	for i := range pipeline.MaxBatch {
		frames = append(frames, s[i%len(s)])
	}
	batch := batch(b, pool, frames...)
	o := in.Observer(Outbound, zerolog.Nop())
	b.ReportAllocs()
	for b.Loop() {
		o.Tracing()
		o.Kept(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pipeline.MaxBatch), "ns/packet")
}
