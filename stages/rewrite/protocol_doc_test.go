//go:build linux

package rewrite

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite the examples in docs/MESH-PROTOCOL.md from the code")

const protocolDoc = "../../docs/MESH-PROTOCOL.md"

// The worked example of docs/MESH-PROTOCOL.md: client packet 1 of the
// Python relay's vectors, relayed from relay-a to relay-b.
var (
	docKeyFile = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	docSender  = uint32(0x01020304)
	docFrame   = []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, 0x08, 0x00, // Ethernet
		0x45, 0x00, 0x00, 0x2c, 0x2d, 0xa7, 0x40, 0x00, 0x40, 0x11, 0xf7, 0x76, // IPv4 ...
		0x0a, 0x4d, 0x00, 0x0b, 0x0a, 0x4d, 0x00, 0xff, // ... 10.77.0.11 > 10.77.0.255
		0x97, 0x46, 0x13, 0xd4, 0x00, 0x18, 0x15, 0xcd, // UDP 38726 > 5076, length 24
		'h', 'e', 'l', 'l', 'o', '-', 's', 'n', 'o', 'w', 's', 'i', 'g', 'n', 'a', 'l',
	}
)

// hexDump formats b as the doc shows bytes: 16 per line behind a 4-digit
// hex offset.
func hexDump(b []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&sb, "%04x ", off)
		for _, c := range line {
			fmt.Fprintf(&sb, " %02x", c)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// docExamples computes every example block of the doc, by name, with the
// relay's own code.
func docExamples(t *testing.T) map[string]string {
	key, err := hex.DecodeString(docKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	legacyDgram := legacy(docFrame)
	authDgram := sealed(mesh.NewSealer(key, docSender), docFrame)
	hello := segment.PutHello(make([]byte, segment.HelloLen), 0x0a0b0c0d, ourMAC)
	sealer := mesh.NewSealer(key, docSender)
	sealed(sealer, docFrame) // sequence number 1 went to the frame above
	authHello := sealed(sealer, hello)

	// What relay-b injects: the same frame for either datagram; with a key
	// it refuses the legacy one.
	keyed := newRig(t)
	keyed.opener = mesh.NewOpener(key)
	outAuth := keyed.run([]dgram{{peerA, authDgram}, {peerA, legacyDgram}})
	keyed.wantDrops(map[pipeline.Reason]uint64{pipeline.ReasonBadAuth: 1})
	outLegacy := newRig(t).run([]dgram{{peerA, legacyDgram}})
	if len(outAuth) != 1 || len(outLegacy) != 1 || !bytes.Equal(outAuth[0], outLegacy[0]) {
		t.Fatalf("relay-b injects %d frames with a key and %d without, want one and the same", len(outAuth), len(outLegacy))
	}

	return map[string]string{
		"frame":       hexDump(docFrame),
		"legacy":      hexDump(legacyDgram),
		"auth":        hexDump(authDgram),
		"hello":       hexDump(hello),
		"auth-hello":  hexDump(authHello),
		"rebroadcast": hexDump(outAuth[0]),
		"key-id":      fmt.Sprintf("%02x\n", mesh.KeyID(key)),
		"tag":         hex.EncodeToString(authDgram[16:48]) + "\n",
	}
}

// TestProtocolDocExamples checks that the worked examples in
// docs/MESH-PROTOCOL.md are what the code produces and accepts. Each is the
// fenced block after a line "<!-- example: NAME -->". Run with -update-doc
// to rewrite them.
func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := docExamples(t)
	lines := strings.SplitAfter(string(doc), "\n")
	var out strings.Builder
	seen := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		out.WriteString(lines[i])
		name, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "<!-- example: ")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, " -->")
		body, ok := want[name]
		if !ok {
			t.Errorf("doc names example %q, which the test does not make", name)
			continue
		}
		seen[name] = true
		// The fence, the block, the closing fence.
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Errorf("example %q: no fenced block after the marker", name)
			continue
		}
		out.WriteString(lines[i+1])
		j := i + 2
		var got strings.Builder
		for ; j < len(lines) && !strings.HasPrefix(lines[j], "```"); j++ {
			got.WriteString(lines[j])
		}
		if j == len(lines) {
			t.Fatalf("example %q: the block is not closed", name)
		}
		if got.String() != body {
			if !*updateDoc {
				t.Errorf("example %q in %s differs from the code; the code makes:\n%s", name, protocolDoc, body)
			}
		}
		out.WriteString(body)
		out.WriteString(lines[j])
		i = j
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("example %q is missing from %s", name, protocolDoc)
		}
	}
	if *updateDoc && out.String() != string(doc) {
		if err := os.WriteFile(protocolDoc, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the examples in %s", protocolDoc)
	}
}
