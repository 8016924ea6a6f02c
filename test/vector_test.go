package test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
	"github.com/snowsignal/snowsignal/netio/netlab"
)

// TestRelayReplaysPythonMeshDatagram: the mesh datagram the Python relay
// r1 sent for the client's first broadcast (python-relay-segA-capture-and-
// mesh.pcap, packet 2: "SS" + the client's frame, with its partial UDP
// checksum), sent to relay-b's mesh port from relay-a's address, comes out
// on segment b as the broadcast the Python relay r2 made of it
// (python-relay-segB-rebroadcast.pcap, packet 1): the same IPv4 header and
// UDP datagram byte for byte, with valid checksums, from relay-b's MAC to
// ff:ff:ff:ff:ff:ff; and the server's socket receives the client's payload
// from the client's address and port.
func TestRelayReplaysPythonMeshDatagram(t *testing.T) {
	segA := frametest.Vector(t, "python-relay-segA-capture-and-mesh.pcap")
	segBVec := frametest.Vector(t, "python-relay-segB-rebroadcast.pcap")
	clientFrame, meshFrame, wantFrame := netlab.Frame{Data: segA[0]}, netlab.Frame{Data: segA[1]}, segBVec[0]
	clientSrc, clientDst, clientPayload, ok := clientFrame.UDP()
	if !ok {
		t.Fatal("vector packet 1 is not a UDP frame")
	}
	meshSrc, meshDst, dgram, ok := meshFrame.UDP()
	if !ok || meshDst.Port() != meshPort || !bytes.Equal(dgram, append([]byte("SS"), segA[0]...)) {
		t.Fatalf("vector packet 2 is not the mesh datagram of packet 1 (%s -> %s)", meshSrc, meshDst)
	}

	s := startSwarm(t)
	if meshSrc.Addr() != s.relayA.IP || meshDst.Addr() != s.relayB.IP {
		t.Fatalf("vector mesh datagram %s -> %s does not match the lab (relay-a %s, relay-b %s)", meshSrc, meshDst, s.relayA.IP, s.relayB.IP)
	}
	srv := listen(t, s.server, fmt.Sprintf("0.0.0.0:%d", clientDst.Port()))
	segB := sniff(t, s.server)
	// relay-a owns 0.0.0.0:7124; relay-b admits by source address only.
	from := listen(t, s.relayA, netip.AddrPortFrom(s.relayA.IP, 0).String())
	send(t, from, dgram, meshDst)

	got, err := recvMatching(t, srv, clientPayload)
	if err != nil {
		t.Fatal(err)
	}
	if got.from != clientSrc {
		t.Errorf("server saw source %s, want the vector client's %s", got.from, clientSrc)
	}
	frames, err := segB.Collect(drainWait, fromMAC(s.relayB.MAC, clientDst.Port()))
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 1 {
		t.Fatalf("relay-b broadcast %d frames to port %d, want 1", len(frames), clientDst.Port())
	}
	out := frames[0].Data
	if !bytes.Equal(out[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) || !bytes.Equal(out[6:12], s.relayB.MAC) {
		t.Errorf("Ethernet %x -> %x, want %s -> ff:ff:ff:ff:ff:ff", out[6:12], out[0:6], s.relayB.MAC)
	}
	if err := checkChecksums(out); err != nil {
		t.Errorf("re-broadcast: %v", err)
	}
	if !bytes.Equal(out[14:], wantFrame[14:]) {
		t.Errorf("re-broadcast IPv4/UDP differs from the Python relay's:\n got %x\nwant %x", out[14:], wantFrame[14:])
	}
	if src, dst, pl, ok := frames[0].UDP(); !ok || src != clientSrc || dst != clientDst || !bytes.Equal(pl, clientPayload) {
		t.Errorf("re-broadcast %s -> %s (%d bytes), want %s -> %s (%d bytes)", src, dst, len(pl), clientSrc, clientDst, len(clientPayload))
	}
}
