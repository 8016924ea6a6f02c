//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/mmsg"
)

// Every benchmark datagram carries this header in its payload; the rest of
// the payload is filler.
//
//	0:4   magic "SSBM"
//	4:8   step number, big endian (late datagrams of an earlier step are told apart)
//	8:16  sequence number within the step, from 0
//	16:24 send time, nanoseconds on the process's monotonic clock (see clock)
const (
	payloadSize = 100
	benchMagic  = "SSBM"
	headerLen   = 24
)

// maxBurst is how many datagrams one sendmmsg(2) carries at most: when the
// pacing loop falls behind it catches up in bursts of up to this many.
const maxBurst = 64

// socketBuffer is the send and receive buffer of the benchmark's sockets
// (set with SO_*BUFFORCE, which root may do past rmem_max): the receiver
// must not be what drops datagrams.
const socketBuffer = 8 << 20

// A clock measures time on the monotonic clock from one origin, so that send
// and receive times taken in different goroutines (and network namespaces,
// which share the host's clocks) compare.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// setBuffers raises a socket's buffers to socketBuffer.
func setBuffers(rc syscall.RawConn) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		for _, o := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, socketBuffer); e != nil {
				err = os.NewSyscallError("setsockopt", e)
			}
		}
	})
	return errors.Join(cerr, err)
}

// A sender broadcasts paced benchmark datagrams from one UDP socket in
// batched sendmmsg(2) calls. The socket is created in the client's
// namespace; the sending thread may be any.
type sender struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	to   netip.AddrPort
	clk  clock
	mm   *mmsg.Batch
	bufs [][]byte

	// for the write callback
	off  int
	errs int
	wfn  func(fd uintptr) bool
}

func newSender(conn *net.UDPConn, to netip.AddrPort, clk clock) (*sender, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if err := setBuffers(rc); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	s := &sender{conn: conn, rc: rc, to: to, clk: clk, mm: mmsg.NewBatch(maxBurst)}
	for range maxBurst {
		b := make([]byte, payloadSize)
		copy(b, benchMagic)
		for i := headerLen; i < len(b); i++ {
			b[i] = byte(i)
		}
		s.bufs = append(s.bufs, b)
	}
	s.wfn = s.write
	return s, nil
}

// sendResult is what one paced run sent.
type sendResult struct {
	Sent    int           // datagrams the kernel took
	Errors  int           // datagrams the kernel refused
	Elapsed time.Duration // from the first send to the last
	Calls   int           // sendmmsg(2) calls
}

// Rate is the rate the sender achieved.
func (r sendResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent+r.Errors) / r.Elapsed.Seconds()
}

// run sends n datagrams of step at rate per second, paced by time: datagram
// i is due at i/rate after the start, and every wake-up sends all that are
// due (up to maxBurst per call). It gives up at limit, so a sender that
// cannot keep up still ends in bounded time.
//
// It runs on a thread of its own with a timer slack of 1 ns: Go's timers
// sleep at least about a millisecond here, and the default 50 µs slack of
// nanosleep(2) would bunch datagrams at 20k/s. The thread gets its slack
// back and is unlocked afterwards rather than ended: it may be the thread
// that started a relay, whose Pdeathsig would then kill the relay.
func (s *sender) run(step uint32, rate float64, n int, limit time.Duration) sendResult {
	done := make(chan sendResult, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // 0: the thread's default
		done <- s.loop(step, rate, n, limit)
	}()
	return <-done
}

func (s *sender) loop(step uint32, rate float64, n int, limit time.Duration) sendResult {
	var r sendResult
	for _, b := range s.bufs {
		binary.BigEndian.PutUint32(b[4:8], step)
	}
	start := time.Now()
	sent := 0
	for sent < n {
		el := time.Since(start)
		if el > limit {
			break
		}
		due := min(int(el.Seconds()*rate)+1, n) // datagram 0 is due at once
		k := due - sent
		if k <= 0 {
			next := time.Duration(float64(sent) / rate * 1e9)
			ts := unix.NsecToTimespec(int64(next - el))
			_ = unix.Nanosleep(&ts, nil)
			continue
		}
		k = min(k, maxBurst)
		ok, errs := s.send(sent, k)
		r.Sent += ok
		r.Errors += errs
		r.Calls++
		sent += k
	}
	r.Elapsed = time.Since(start)
	return r
}

// send stamps and sends datagrams seq...seq+k-1 and reports how many the
// kernel took and refused.
func (s *sender) send(seq, k int) (sent, refused int) {
	s.mm.Reset()
	now := s.clk.now()
	for i := range k {
		b := s.bufs[i]
		binary.BigEndian.PutUint64(b[8:16], uint64(seq+i))
		binary.BigEndian.PutUint64(b[16:24], uint64(now))
		s.mm.Add(b, s.to)
	}
	s.off, s.errs = 0, 0
	if err := s.rc.Write(s.wfn); err != nil {
		return 0, k
	}
	return k - s.errs, s.errs
}

func (s *sender) write(fd uintptr) bool {
	for s.off < s.mm.Len() {
		n, err := s.mm.Send(fd, s.off)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
		case err != nil:
			s.off++ // this datagram failed; go on with the rest
			s.errs++
		default:
			s.off += n
		}
	}
	return true
}

// A receiver counts the benchmark datagrams of one step arriving on a UDP
// socket, in batched recvmmsg(2) calls, and records their one-way latency.
type receiver struct {
	conn  *net.UDPConn
	rc    syscall.RawConn
	clk   clock
	rd    *mmsg.Reader
	bufs  [][]byte
	sizes []int

	// Step state, owned by the receiving goroutine between begin and end.
	step    uint32
	seen    []uint64 // bitmap of sequence numbers
	lat     []int64  // latencies, ns, up to cap
	dup     int
	stale   int
	foreign int
	got     atomic.Int64
	last    atomic.Int64 // clock time of the last arrival
	done    chan struct{}
}

func newReceiver(conn *net.UDPConn, clk clock) (*receiver, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	if err := setBuffers(rc); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &receiver{conn: conn, rc: rc, clk: clk, rd: mmsg.NewReader(maxBurst), sizes: make([]int, maxBurst)}
	for range maxBurst {
		r.bufs = append(r.bufs, make([]byte, 2048))
	}
	return r, nil
}

// begin starts receiving step, expecting at most n datagrams, keeping the
// latency of each if latency is set.
func (r *receiver) begin(step uint32, n int, latency bool) {
	r.step = step
	words := (n + 63) / 64
	if cap(r.seen) < words {
		r.seen = make([]uint64, words)
	}
	r.seen = r.seen[:words]
	clear(r.seen)
	r.lat = r.lat[:0]
	if latency && cap(r.lat) < n {
		r.lat = make([]int64, 0, n)
	}
	if !latency {
		r.lat = nil
	}
	r.dup, r.stale, r.foreign = 0, 0, 0
	r.got.Store(0)
	r.last.Store(r.clk.now())
	r.done = make(chan struct{})
	_ = r.conn.SetReadDeadline(time.Time{})
	go r.loop()
}

// recvResult is what a receiver saw of one step.
type recvResult struct {
	Got       int     // distinct datagrams of the step
	Dup       int     // datagrams of the step seen more than once
	Stale     int     // datagrams of earlier steps
	Foreign   int     // anything else
	Latencies []int64 // ns, when asked for
}

// end stops receiving and returns what arrived.
func (r *receiver) end() recvResult {
	_ = r.conn.SetReadDeadline(time.Now())
	<-r.done
	return recvResult{Got: int(r.got.Load()), Dup: r.dup, Stale: r.stale, Foreign: r.foreign, Latencies: r.lat}
}

// settle waits until want datagrams arrived or none came for quiet, at most
// limit in all: the tail of a step may still sit in a relay's queues.
func (r *receiver) settle(want int, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if int(r.got.Load()) >= want {
			return
		}
		if time.Duration(r.clk.now()-r.last.Load()) > quiet {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *receiver) loop() {
	defer close(r.done)
	for {
		n, _, err := r.rd.Read(r.rc, r.bufs, 0, r.sizes, nil, nil)
		if err != nil {
			return // the deadline end set, or the socket closed
		}
		now := r.clk.now()
		r.last.Store(now)
		for i := range n {
			r.account(r.bufs[i][:r.sizes[i]], now)
		}
	}
}

func (r *receiver) account(b []byte, now int64) {
	if len(b) != payloadSize || string(b[:4]) != benchMagic {
		r.foreign++
		return
	}
	if binary.BigEndian.Uint32(b[4:8]) != r.step {
		r.stale++
		return
	}
	seq := binary.BigEndian.Uint64(b[8:16])
	if seq >= uint64(len(r.seen))*64 {
		r.foreign++
		return
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	if r.seen[w]&bit != 0 {
		r.dup++
		return
	}
	r.seen[w] |= bit
	r.got.Add(1)
	if r.lat != nil && len(r.lat) < cap(r.lat) {
		r.lat = append(r.lat, now-int64(binary.BigEndian.Uint64(b[16:24])))
	}
}
