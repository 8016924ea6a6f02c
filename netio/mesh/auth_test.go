package mesh

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/snowsignal/snowsignal/netio/frame/frametest"
)

var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = bytes.Repeat([]byte{0x22}, 32)
)

// testFrame is client packet 1 of python-relay-segA-capture-and-mesh.pcap.
var testFrame = []byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x6a, 0x2f, 0xcd, 0x12, 0x6b, 0xbb, 0x08, 0x00, // Ethernet
	0x45, 0x00, 0x00, 0x2c, 0x2d, 0xa7, 0x40, 0x00, 0x40, 0x11, 0xf7, 0x76, // IPv4 ...
	0x0a, 0x4d, 0x00, 0x0b, 0x0a, 0x4d, 0x00, 0xff, // ... 10.77.0.11 > 10.77.0.255
	0x97, 0x46, 0x13, 0xd4, 0x00, 0x18, 0x15, 0xcd, // UDP 38726 > 5076, length 24
	'h', 'e', 'l', 'l', 'o', '-', 's', 'n', 'o', 'w', 's', 'i', 'g', 'n', 'a', 'l', // payload
}

// seal returns a datagram sealing fr with s.
func seal(s *Sealer, fr []byte) []byte {
	buf := inBuffer(fr)
	return buf[s.Seal(buf, headroom, len(fr)):]
}

func TestSealLayout(t *testing.T) {
	s := NewSealer(key1, 0x01020304)
	d := seal(s, testFrame)
	wantHeader := []byte{
		'S', 'N', // magic
		0x01,        // version
		KeyID(key1), // key id
		1, 2, 3, 4,  // sender id 0x01020304
		0, 0, 0, 0, 0, 0, 0, 1, // sequence number 1
	}
	if !bytes.Equal(d[:16], wantHeader) {
		t.Errorf("header % x\n  want % x", d[:16], wantHeader)
	}
	// The tag, computed independently of Sealer.
	m := hmac.New(sha256.New, key1)
	m.Write(wantHeader)
	m.Write(testFrame)
	if tag := m.Sum(nil); !bytes.Equal(d[16:48], tag) {
		t.Errorf("tag % x\n want % x", d[16:48], tag)
	}
	if !bytes.Equal(d[48:], testFrame) || len(d) != AuthHeaderLen+len(testFrame) {
		t.Error("frame changed")
	}
	if sum := sha256.Sum256(key1); KeyID(key1) != sum[0] {
		t.Error("KeyID is not the first byte of SHA-256")
	}
	if d2 := seal(s, testFrame); binary.BigEndian.Uint64(d2[8:]) != 2 {
		t.Errorf("second sequence number %d, want 2", binary.BigEndian.Uint64(d2[8:]))
	}
}

func TestAuthRoundTrip(t *testing.T) {
	s := NewSealer(key1, 42)
	o := NewOpener(key1)
	for i, fr := range frametest.Vector(t, "python-relay-segA-capture-and-mesh.pcap") {
		d := seal(s, fr)
		got, sender, seq, err := o.Open(d)
		if err != nil {
			t.Fatalf("packet %d: %v", i+1, err)
		}
		if !bytes.Equal(got, fr) || sender != 42 || seq != uint64(i+1) {
			t.Fatalf("packet %d: frame equal %v, sender %d, seq %d", i+1, bytes.Equal(got, fr), sender, seq)
		}
		if &got[0] != &d[AuthHeaderLen] {
			t.Fatal("Open copied the frame")
		}
	}
	// An empty frame is sealed and opened too; frame.Decode judges it.
	if got, _, _, err := o.Open(seal(s, nil)); err != nil || len(got) != 0 {
		t.Errorf("empty frame: %q, %v", got, err)
	}
}

func TestOpenRejects(t *testing.T) {
	d := seal(NewSealer(key1, 7), testFrame)
	legacy := append([]byte("SS"), testFrame...)
	badVersion := bytes.Clone(d)
	badVersion[2] = 2
	tests := []struct {
		name string
		o    *Opener
		d    []byte
		err  error
	}{
		{"empty", NewOpener(key1), nil, ErrShort},
		{"magic only", NewOpener(key1), []byte("SN"), ErrShort},
		{"header cut", NewOpener(key1), d[:AuthHeaderLen-1], ErrShort},
		{"Python legacy datagram", NewOpener(key1), legacy, ErrBadMagic},
		{"version 2", NewOpener(key1), badVersion, ErrBadVersion},
		{"other key", NewOpener(key2), d, ErrUnknownKey},
		{"other key, same key id", NewOpener(sameIDKey(t, key1)), d, ErrBadTag},
		{"frame cut", NewOpener(key1), d[:len(d)-1], ErrBadTag},
		{"byte appended", NewOpener(key1), append(bytes.Clone(d), 0), ErrBadTag},
	}
	for _, tt := range tests {
		if _, _, _, err := tt.o.Open(tt.d); err != tt.err {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
	}
}

// sameIDKey returns a key other than k with the same KeyID.
func sameIDKey(t *testing.T, k []byte) []byte {
	for i := range 1 << 16 {
		c := bytes.Clone(k)
		binary.BigEndian.PutUint32(c, uint32(i)+1)
		if KeyID(c) == KeyID(k) && !bytes.Equal(c, k) {
			return c
		}
	}
	t.Fatal("no key with the same id")
	return nil
}

// TestOpenFlippedBit flips every bit of a sealed datagram in turn: each
// flip must be rejected, for the reason its position implies.
func TestOpenFlippedBit(t *testing.T) {
	d := seal(NewSealer(key1, 7), testFrame)
	o := NewOpener(key1)
	for i := range len(d) * 8 {
		c := bytes.Clone(d)
		c[i/8] ^= 1 << (i % 8)
		want := ErrBadTag // sender, sequence number, tag, frame
		switch {
		case i/8 < 2:
			want = ErrBadMagic
		case i/8 == authOffVersion:
			want = ErrBadVersion
		case i/8 == authOffKeyID:
			want = ErrUnknownKey // the id no longer matches our only key
		}
		if _, _, _, err := o.Open(c); err != want {
			t.Fatalf("bit %d (byte %d): err = %v, want %v", i, i/8, err, want)
		}
	}
	// Nothing forged moved the window: the original still opens, once.
	if _, _, _, err := o.Open(d); err != nil {
		t.Fatalf("original: %v", err)
	}
	if _, _, _, err := o.Open(d); err != ErrReplay {
		t.Fatalf("original again: %v, want %v", err, ErrReplay)
	}
}

func TestOpenReplay(t *testing.T) {
	s := NewSealer(key1, 9)
	o := NewOpener(key1)
	var ds [][]byte
	for range 100 {
		ds = append(ds, seal(s, testFrame))
	}
	// In reverse: every one is new, within the window.
	for i := len(ds) - 1; i >= 0; i-- {
		if _, _, _, err := o.Open(ds[i]); err != nil {
			t.Fatalf("datagram %d out of order: %v", i+1, err)
		}
	}
	for i, d := range ds {
		if _, _, _, err := o.Open(d); err != ErrReplay {
			t.Fatalf("datagram %d again: %v, want %v", i+1, err, ErrReplay)
		}
	}
}

func TestOpenTooOld(t *testing.T) {
	s := NewSealer(key1, 9)
	o := NewOpener(key1)
	var ds [][]byte
	for range ReplayWindow + 2 {
		ds = append(ds, seal(s, testFrame))
	}
	last := len(ds) - 1 // sequence number ReplayWindow+2
	if _, _, _, err := o.Open(ds[last]); err != nil {
		t.Fatal(err)
	}
	// Sequence 2 is exactly ReplayWindow behind: still accepted; 1 is not.
	if _, _, _, err := o.Open(ds[1]); err != nil {
		t.Errorf("sequence 2, at the window's edge: %v", err)
	}
	if _, _, _, err := o.Open(ds[0]); err != ErrReplay {
		t.Errorf("sequence 1, behind the window: %v, want %v", err, ErrReplay)
	}
}

func TestOpenSendersIndependent(t *testing.T) {
	a, b := NewSealer(key1, 1), NewSealer(key1, 2)
	o := NewOpener(key1)
	for range 3 {
		// Both senders use sequence numbers 1, 2, 3: no clash.
		for _, s := range []*Sealer{a, b} {
			if _, _, _, err := o.Open(seal(s, testFrame)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOpenRotation(t *testing.T) {
	old, next := NewSealer(key1, 1), NewSealer(key2, 2)
	both := NewOpener(key1, key2)
	for _, s := range []*Sealer{old, next, old, next} {
		if _, _, _, err := both.Open(seal(s, testFrame)); err != nil {
			t.Fatalf("opener with both keys: %v", err)
		}
	}
	if _, _, _, err := NewOpener(key1).Open(seal(next, testFrame)); err != ErrUnknownKey {
		t.Errorf("old key only, new sender: %v, want %v", err, ErrUnknownKey)
	}
	// Two keys with the same id: both are tried.
	twin := sameIDKey(t, key1)
	o := NewOpener(twin, key1)
	if _, _, _, err := o.Open(seal(old, testFrame)); err != nil {
		t.Errorf("second of two keys sharing an id: %v", err)
	}
}

func TestSealConcurrent(t *testing.T) {
	s := NewSealer(key1, 5)
	const workers, each = 8, 200
	out := make(chan []byte, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				out <- seal(s, testFrame)
			}
		})
	}
	wg.Wait()
	close(out)
	o := NewOpener(key1)
	seen := map[uint64]bool{}
	for d := range out {
		_, _, seq, err := o.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		seen[seq] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct sequence numbers, want %d", len(seen), workers*each)
	}
}

func TestConstructorsPanic(t *testing.T) {
	for name, fn := range map[string]func(){
		"short sealer key": func() { NewSealer(key1[:MinKeyLen-1], 1) },
		"short opener key": func() { NewOpener(key1[:MinKeyLen-1]) },
		"no keys":          func() { NewOpener() },
		"three keys":       func() { NewOpener(key1, key2, key1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestRandomSenderID(t *testing.T) {
	a, b := RandomSenderID(), RandomSenderID()
	if a == 0 || a == b {
		t.Errorf("RandomSenderID: %d, %d", a, b)
	}
}

func TestDecodeErrorString(t *testing.T) {
	want := map[DecodeError]string{ErrShort: "short", ErrBadMagic: "bad_magic", ErrBadVersion: "bad_version",
		ErrUnknownKey: "unknown_key", ErrBadTag: "bad_tag", ErrReplay: "replay", 99: "unknown"}
	for e, s := range want {
		if e.Error() != s {
			t.Errorf("%d: %q, want %q", uint8(e), e.Error(), s)
		}
	}
}
