package mesh

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"sync/atomic"
)

// Offsets in the authenticated header.
const (
	authOffVersion = 2  // 1 byte: AuthVersion
	authOffKeyID   = 3  // 1 byte: KeyID of the sealing key
	authOffSender  = 4  // 4 bytes: sender id, big-endian
	authOffSeq     = 8  // 8 bytes: sequence number, big-endian
	authOffTag     = 16 // 32 bytes: HMAC-SHA256 tag
	authTagLen     = sha256.Size
)

// MinKeyLen is the shortest key accepted: 128 bits.
const MinKeyLen = 16

// KeyID returns the key id sent with datagrams sealed with key: the first
// byte of its SHA-256. It lets a receiver holding two keys during a rotation
// pick the right one without trying both, and tell "peer has another key"
// (ErrUnknownKey) from "datagram corrupted or forged" (ErrBadTag). It reveals
// 8 bits of a hash of the key, nothing usable against a 128-bit key.
func KeyID(key []byte) byte {
	sum := sha256.Sum256(key)
	return sum[0]
}

// RandomSenderID returns a random non-zero sender id for NewSealer. Choose
// one per process start: a restarted relay counts its sequence numbers from 1
// again, and a fresh id keeps receivers from taking them for replays. With
// 32 random bits, two of n relays share an id with probability about
// n²/2³³ (one in 10^7 for 10 relays); they would then reject part of each
// other's traffic as replays until one restarts.
func RandomSenderID() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		if id := binary.BigEndian.Uint32(b[:]); id != 0 {
			return id
		}
	}
}

// A Sealer writes authenticated headers. Its methods are safe for concurrent
// use: the sequence number is atomic, and a mutex guards the HMAC state,
// which is kept and reused so sealing allocates nothing.
//
// The authenticated header, 48 bytes in front of the frame:
//
//	offset  size  field
//	0       2     magic "SN" (AuthMagic)
//	2       1     version, 1 (AuthVersion)
//	3       1     key id: first byte of SHA-256(key) (KeyID)
//	4       4     sender id, big-endian, random per process (RandomSenderID)
//	8       8     sequence number, big-endian, 1, 2, 3, ... per sender
//	16      32    tag: HMAC-SHA256(key, bytes 0..15 || frame)
//	48      ...   the Ethernet frame
type Sealer struct {
	seq    atomic.Uint64
	keyID  byte
	sender uint32

	mu      sync.Mutex
	mac     hash.Hash // HMAC-SHA256 keyed once; Reset between datagrams
	scratch [authTagLen]byte
}

// NewSealer returns a Sealer for key, sending as senderID. It panics if key
// is shorter than MinKeyLen (LoadKeyFile never returns such a key).
func NewSealer(key []byte, senderID uint32) *Sealer {
	if len(key) < MinKeyLen {
		panic("mesh: key shorter than MinKeyLen")
	}
	return &Sealer{keyID: KeyID(key), sender: senderID, mac: hmac.New(sha256.New, key)}
}

// SenderID returns the sender id the Sealer writes.
func (s *Sealer) SenderID() uint32 { return s.sender }

// Seal writes the authenticated header into buf[frameOff-AuthHeaderLen:
// frameOff], in front of the frame buf[frameOff:frameOff+frameLen], with
// the next sequence number, and returns the offset where the datagram
// starts. The datagram is buf[start:frameOff+frameLen]. It panics if
// frameOff < AuthHeaderLen.
//
// Seal the frame once and send the same datagram to every peer: replay
// windows are per receiver, so peers sharing a sequence number is fine.
func (s *Sealer) Seal(buf []byte, frameOff, frameLen int) (start int) {
	start = frameOff - AuthHeaderLen
	h := buf[start:frameOff]
	h[0], h[1] = AuthMagic[0], AuthMagic[1]
	h[authOffVersion] = AuthVersion
	h[authOffKeyID] = s.keyID
	binary.BigEndian.PutUint32(h[authOffSender:], s.sender)
	binary.BigEndian.PutUint64(h[authOffSeq:], s.seq.Add(1))

	s.mu.Lock()
	s.mac.Reset()
	s.mac.Write(h[:authOffTag])
	s.mac.Write(buf[frameOff : frameOff+frameLen])
	copy(h[authOffTag:], s.mac.Sum(s.scratch[:0]))
	s.mu.Unlock()
	return start
}

// An Opener verifies authenticated datagrams and rejects replays. It is NOT
// safe for concurrent use: one goroutine (the mesh listener) owns it, which
// is what lets the replay windows go without locks.
type Opener struct {
	keys    []openerKey
	replay  replayTable
	scratch [authTagLen]byte
}

type openerKey struct {
	id  byte
	mac hash.Hash
}

// NewOpener returns an Opener that accepts datagrams sealed with any of
// keys: one key, or two while a key is being rotated (give the new key to
// every receiver first, then to the senders, then drop the old one). It
// panics if given no keys, more than two, or a key shorter than MinKeyLen.
func NewOpener(keys ...[]byte) *Opener {
	if len(keys) == 0 || len(keys) > 2 {
		panic("mesh: NewOpener needs one or two keys")
	}
	o := &Opener{replay: newReplayTable()}
	for _, k := range keys {
		if len(k) < MinKeyLen {
			panic("mesh: key shorter than MinKeyLen")
		}
		o.keys = append(o.keys, openerKey{id: KeyID(k), mac: hmac.New(sha256.New, k)})
	}
	return o
}

// Open checks the authenticated datagram d and returns the frame it carries
// (a subslice of d), the sender id and the sequence number. It checks, in
// order: magic, length, version, key id, tag (in constant time), and last
// the sender's replay window, so that only authentic datagrams move it.
// Errors are DecodeError values.
func (o *Opener) Open(d []byte) (frame []byte, sender uint32, seq uint64, err error) {
	if len(d) < len(AuthMagic) {
		return nil, 0, 0, ErrShort
	}
	if d[0] != AuthMagic[0] || d[1] != AuthMagic[1] {
		return nil, 0, 0, ErrBadMagic
	}
	if len(d) < AuthHeaderLen {
		return nil, 0, 0, ErrShort
	}
	if d[authOffVersion] != AuthVersion {
		return nil, 0, 0, ErrBadVersion
	}
	err = ErrUnknownKey
	for i := range o.keys {
		k := &o.keys[i]
		if k.id != d[authOffKeyID] {
			continue // not this key: the tag cannot verify, save the work
		}
		k.mac.Reset()
		k.mac.Write(d[:authOffTag])
		k.mac.Write(d[AuthHeaderLen:])
		if hmac.Equal(k.mac.Sum(o.scratch[:0]), d[authOffTag:AuthHeaderLen]) {
			err = nil
			break
		}
		err = ErrBadTag // and try the other key, should both share an id
	}
	if err != nil {
		return nil, 0, 0, err
	}
	sender = binary.BigEndian.Uint32(d[authOffSender:])
	seq = binary.BigEndian.Uint64(d[authOffSeq:])
	if !o.replay.accept(sender, seq) {
		return nil, 0, 0, ErrReplay
	}
	return d[AuthHeaderLen:], sender, seq, nil
}
