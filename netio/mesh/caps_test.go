package mesh

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestPutCapsLayout(t *testing.T) {
	b := make([]byte, CapsLen+4)
	for i := range b {
		b[i] = 0xee // PutCaps must clear what it owns and nothing more
	}
	got := PutCaps(b, Announce{ID: 0x0a0b0c0d, Caps: CapIPv6, WantReply: true})
	want := []byte{
		0x53, 0x43, // magic "SC"
		0x01,                   // version 1
		0x01,                   // capabilities: IPv6
		0x0a, 0x0b, 0x0c, 0x0d, // relay id
		0x01,                // flags: reply wanted
		0, 0, 0, 0, 0, 0, 0, // zero
	}
	if !bytes.Equal(got, want) {
		t.Errorf("PutCaps = % x\nwant     % x", got, want)
	}
	if !bytes.Equal(b[CapsLen:], []byte{0xee, 0xee, 0xee, 0xee}) {
		t.Error("PutCaps wrote past CapsLen")
	}
}

func TestParseCaps(t *testing.T) {
	body := func(mod func(b []byte)) []byte {
		b := PutCaps(make([]byte, CapsLen), Announce{ID: 7, Caps: CapIPv6})
		if mod != nil {
			mod(b)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want Announce
		err  error
	}{
		{"IPv6, no reply wanted", body(nil), Announce{ID: 7, Caps: CapIPv6}, nil},
		{"reply wanted", body(func(b []byte) { b[8] = 1 }), Announce{ID: 7, Caps: CapIPv6, WantReply: true}, nil},
		{"no capabilities", body(func(b []byte) { b[3] = 0 }), Announce{ID: 7}, nil},
		{"unknown capability bits are kept", body(func(b []byte) { b[3] = 0x81 }), Announce{ID: 7, Caps: 0x81}, nil},
		{"unknown flags and reserved bytes are ignored", body(func(b []byte) { b[8] = 0xfe; b[15] = 9 }), Announce{ID: 7, Caps: CapIPv6}, nil},
		{"trailing bytes are ignored", append(body(nil), 1, 2, 3), Announce{ID: 7, Caps: CapIPv6}, nil},
		{"empty", nil, Announce{}, ErrShort},
		{"one byte", []byte("S"), Announce{}, ErrShort},
		{"cut", body(nil)[:15], Announce{}, ErrShort},
		{"a hello", []byte("SH\x01\x00\x00\x00\x00\x07\x02\x00\x00\x00\x00\x01\x00\x00"), Announce{}, ErrBadMagic},
		{"a legacy frame", append([]byte("SS"), make([]byte, 20)...), Announce{}, ErrBadMagic},
		{"version 2", body(func(b []byte) { b[2] = 2 }), Announce{}, ErrBadVersion},
	}
	for _, tt := range tests {
		got, err := ParseCaps(tt.b)
		if err != tt.err || got != tt.want {
			t.Errorf("%s: ParseCaps = %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestCapsString(t *testing.T) {
	for c, want := range map[Caps]string{0: "none", CapIPv6: "ipv6", 0x81: "ipv6+0x80", 0x10: "0x10"} {
		if c.String() != want {
			t.Errorf("Caps(%#x) = %q, want %q", uint8(c), c.String(), want)
		}
	}
	if !CapIPv6.Has(CapIPv6) || Caps(0).Has(CapIPv6) || !Caps(0x81).Has(CapIPv6) {
		t.Error("Has")
	}
}

// docHello is the hello body of docs/MESH-PROTOCOL.md (relay id 0x0a0b0c0d,
// MAC 02:00:0a:4d:00:02), as relays without capabilities send it.
var docHello = []byte{
	0x53, 0x48, // magic "SH"
	0x01,                   // version 1
	0x00,                   // flags: 0
	0x0a, 0x0b, 0x0c, 0x0d, // relay id
	0x02, 0x00, 0x0a, 0x4d, 0x00, 0x02, // MAC
	0x00, 0x00, // zero
}

// TestHelloCaps: the capabilities go in the flags byte and nowhere else, so
// what an older relay reads of the hello (magic, version, id, MAC; it does
// not look at the flags) is unchanged.
func TestHelloCaps(t *testing.T) {
	b := bytes.Clone(docHello)
	if HelloCaps(b) != 0 {
		t.Errorf("HelloCaps of an old hello = %v, want none", HelloCaps(b))
	}
	SetHelloCaps(b, CapIPv6)
	want := bytes.Clone(docHello)
	want[3] = 0x01
	if !bytes.Equal(b, want) || HelloCaps(b) != CapIPv6 {
		t.Errorf("hello with IPv6: % x, caps %v", b, HelloCaps(b))
	}
	if HelloCaps(b[:3]) != 0 {
		t.Error("HelloCaps of 3 bytes")
	}
}

func TestCapsAllocs(t *testing.T) {
	b := make([]byte, CapsLen)
	var sink Announce
	for name, fn := range map[string]func(){
		"PutCaps":   func() { PutCaps(b, Announce{ID: 1, Caps: CapIPv6}) },
		"ParseCaps": func() { sink, _ = ParseCaps(b) },
		"HelloCaps": func() { sink.Caps = HelloCaps(docHello) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
	_ = sink
}

// FuzzCaps: ParseCaps never panics, returns only DecodeError values, and
// what it accepts PutCaps writes back to the same first 9 bytes, with known
// flags only.
func FuzzCaps(f *testing.F) {
	f.Add(PutCaps(make([]byte, CapsLen), Announce{ID: 0x0a0b0c0d, Caps: CapIPv6, WantReply: true}))
	f.Add(PutCaps(make([]byte, CapsLen), Announce{}))
	f.Add([]byte("SC"))                                                             // magic only
	f.Add([]byte("SC\x02"))                                                         // another version, cut
	f.Add(bytes.Clone(docHello))                                                    // a hello
	f.Add([]byte("SC\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")) // every bit set
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseCaps(b)
		if err != nil {
			if _, ok := err.(DecodeError); !ok {
				t.Fatalf("error %T", err)
			}
			return
		}
		out := PutCaps(make([]byte, CapsLen), a)
		want := bytes.Clone(b[:9])
		want[8] &= CapsReplyWanted
		if !bytes.Equal(out[:9], want) {
			t.Fatalf("round trip % x, want % x", out[:9], want)
		}
	})
}

// hexdump formats b as the examples in docs/MESH-PROTOCOL.md are.
func hexdump(b []byte) string {
	var s strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&s, "%04x  %s\n", off, strings.TrimSpace(strings.Join(strings.Fields(fmt.Sprintf("% x", line)), " ")))
	}
	return s.String()
}

// docKey is the example key of docs/MESH-PROTOCOL.md.
var docKey, _ = hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")

// TestProtocolDocCaps checks the capability examples of
// docs/MESH-PROTOCOL.md, each the fenced block after a line
// "<!-- netio example: NAME -->" (the stages' doc test owns the plain
// "example" markers).
func TestProtocolDocCaps(t *testing.T) {
	hello := bytes.Clone(docHello)
	SetHelloCaps(hello, CapIPv6)
	caps := PutCaps(make([]byte, CapsLen), Announce{ID: 0x0a0b0c0d, Caps: CapIPv6, WantReply: true})
	s := NewSealer(docKey, 0x01020304)
	buf := make([]byte, AuthHeaderLen+CapsLen)
	copy(buf[AuthHeaderLen:], caps)
	s.seq.Store(2) // the doc's hello example used 2: this is the next datagram
	start := s.Seal(buf, AuthHeaderLen, CapsLen)
	examples := map[string]string{
		"hello-ipv6": hexdump(hello),
		"caps":       hexdump(caps),
		"auth-caps":  hexdump(buf[start:]),
	}
	doc, err := os.ReadFile("../../docs/MESH-PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	seen := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		name, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "<!-- netio example: ")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, " -->")
		want, ok := examples[name]
		if !ok {
			t.Errorf("doc names example %q, which the test does not make", name)
			continue
		}
		seen[name] = true
		if i+1 >= len(lines) || lines[i+1] != "```" {
			t.Errorf("example %q: no fenced block after the marker", name)
			continue
		}
		var body strings.Builder
		for j := i + 2; j < len(lines) && lines[j] != "```"; j++ {
			body.WriteString(lines[j] + "\n")
		}
		if body.String() != want {
			t.Errorf("example %q differs from the code; the code makes:\n%s", name, want)
		}
	}
	for name, want := range examples {
		if !seen[name] {
			t.Errorf("example %q is missing from the doc; it is:\n%s", name, want)
		}
	}
}
