//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
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

// receiveBuffer is the receiver's socket buffer (SO_RCVBUFFORCE, which root
// may set past rmem_max): the receiver must not be what drops datagrams.
// The senders' buffers are the kernel's default, as an EPICS client's are.
const receiveBuffer = 16 << 20

// A clock measures time on the monotonic clock from one origin, so that send
// and receive times taken in different goroutines (and network namespaces,
// which share the host's clocks) compare.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// A sender is a storm of EPICS clients: one plain UDP socket per client
// address, every datagram its own sendto(2) to the broadcast address,
// paced by the clock. The sockets take turns, so each client sends
// rate/len(fds).
type sender struct {
	fds []int
	to  unix.RawSockaddrInet4
	clk clock
	buf []byte
	// sizes is how many payload sizes the datagrams take, from payloadSize
	// up (1: all payloadSize), as searches for PV names of different
	// lengths do.
	sizes int
}

// newSender opens a broadcast socket in host for each of addrs, bound to
// it, for datagrams to to (the segment's broadcast address and port).
// Its datagrams take sizes payload sizes (see sender.sizes; at least 1).
func newSender(h *netlab.Host, addrs []netip.Addr, to netip.AddrPort, clk clock, sizes int) (*sender, error) {
	sizes = max(sizes, 1)
	s := &sender{clk: clk, buf: make([]byte, payloadSize+sizes-1), sizes: sizes}
	copy(s.buf, benchMagic)
	for i := headerLen; i < len(s.buf); i++ {
		s.buf[i] = byte(i)
	}
	s.to.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.to.Port))[:], to.Port())
	s.to.Addr = to.Addr().As4()
	err := h.Do(func() error {
		for _, a := range addrs {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			s.fds = append(s.fds, fd)
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
				return fmt.Errorf("setsockopt SO_BROADCAST: %w", err)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: a.As4()}); err != nil {
				return fmt.Errorf("bind %v: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("sender in %s: %w", h.Name, err)
	}
	return s, nil
}

func (s *sender) close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}

// sendResult is what one paced run sent.
type sendResult struct {
	Sent    int           // datagrams the kernel took
	Errors  int           // datagrams the kernel refused
	Elapsed time.Duration // from the first send to the last
	Wakeups int           // sleeps the pacing loop woke from
}

// Rate is the rate the sender achieved.
func (r sendResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent+r.Errors) / r.Elapsed.Seconds()
}

// run sends n datagrams of step at rate per second, paced by time: datagram
// i is due at i/rate after the start. The loop sleeps to the next due time
// and, on waking, sends every datagram that is due, each with its own
// sendto(2). It gives up at limit, so a sender that cannot keep up still
// ends in bounded time.
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
	binary.BigEndian.PutUint32(s.buf[4:8], step)
	start := time.Now()
	sent := 0
	for sent < n {
		el := time.Since(start)
		if el > limit {
			break
		}
		due := min(int(el.Seconds()*rate)+1, n) // datagram 0 is due at once
		if due <= sent {
			next := time.Duration(float64(sent) / rate * 1e9)
			ts := unix.NsecToTimespec(int64(next - el))
			_ = unix.Nanosleep(&ts, nil)
			r.Wakeups++
			continue
		}
		for ; sent < due; sent++ {
			if s.send(sent) {
				r.Sent++
			} else {
				r.Errors++
			}
		}
	}
	r.Elapsed = time.Since(start)
	return r
}

// send stamps datagram seq and sends it from client seq mod len(fds).
func (s *sender) send(seq int) bool {
	binary.BigEndian.PutUint64(s.buf[8:16], uint64(seq))
	binary.BigEndian.PutUint64(s.buf[16:24], uint64(s.clk.now()))
	fd := s.fds[seq%len(s.fds)]
	// Sizes in a scrambled order (37 is prime to any sizes that matter), so
	// no two datagrams in a row need have the same.
	n := payloadSize + (seq*37)%s.sizes
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&s.buf[0])), uintptr(n),
		0, uintptr(unsafe.Pointer(&s.to)), unix.SizeofSockaddrInet4)
	return e == 0
}

// A receiver is an EPICS server's search socket: one UDP socket bound to
// the port, a 16 MiB buffer, read by blocking recvmsg(2) calls of one
// datagram each on a thread of its own. It counts the benchmark datagrams
// of one step and records their one-way latency.
type receiver struct {
	fd  int
	clk clock
	buf []byte
	iov unix.Iovec
	msg unix.Msghdr
	ctl []byte // the control message of each read: the kernel's receive time

	stop atomic.Bool
	// Step state, owned by the receiving goroutine between begin and end.
	step    uint32
	seen    []uint64 // bitmap of sequence numbers
	lat     []int64  // latencies, ns, up to cap
	arr     []int64  // the same datagrams' latencies to the kernel's receipt in this socket
	dup     int
	stale   int
	foreign int
	got     atomic.Int64
	last    atomic.Int64 // clock time of the last arrival
	done    chan struct{}
}

// receiverPoll is how long a blocked recvmsg(2) waits before the receiver
// looks whether its step has ended (SO_RCVTIMEO).
const receiverPoll = 20 * time.Millisecond

// newReceiver opens the receiving socket on port in host.
func newReceiver(h *netlab.Host, port uint16, clk clock) (*receiver, error) {
	r := &receiver{clk: clk, buf: make([]byte, 2048), ctl: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))}
	err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		tv := unix.NsecToTimeval(int64(receiverPoll))
		for _, err := range []error{
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer),
			// The receive time splits a latency into the way here and the
			// wait in this socket for a thread that shares the CPUs.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
			unix.Bind(fd, &unix.SockaddrInet4{Port: int(port)}),
		} {
			if err != nil {
				unix.Close(fd)
				return fmt.Errorf("socket setup: %w", err)
			}
		}
		r.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receiver in %s: %w", h.Name, err)
	}
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	return r, nil
}

func (r *receiver) close() { unix.Close(r.fd) }

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
	r.lat, r.arr = r.lat[:0], r.arr[:0]
	if latency && cap(r.lat) < n {
		r.lat, r.arr = make([]int64, 0, n), make([]int64, 0, n)
	}
	if !latency {
		r.lat, r.arr = nil, nil
	}
	r.dup, r.stale, r.foreign = 0, 0, 0
	r.got.Store(0)
	r.last.Store(r.clk.now())
	r.stop.Store(false)
	r.done = make(chan struct{})
	go r.loop()
}

// recvResult is what a receiver saw of one step.
type recvResult struct {
	Got       int     // distinct datagrams of the step
	Dup       int     // datagrams of the step seen more than once
	Stale     int     // datagrams of earlier steps
	Foreign   int     // anything else
	Latencies []int64 // ns, when asked for
	// Arrivals are the same datagrams' latencies to the kernel's receipt in
	// the server's socket, before the server's thread read them.
	Arrivals []int64
}

// end stops receiving and returns what arrived.
func (r *receiver) end() recvResult {
	r.stop.Store(true)
	<-r.done
	return recvResult{Got: int(r.got.Load()), Dup: r.dup, Stale: r.stale, Foreign: r.foreign, Latencies: r.lat, Arrivals: r.arr}
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

// loop reads until end is called. The thread is unlocked, not ended,
// afterwards, for the reason sender.run gives.
func (r *receiver) loop() {
	defer close(r.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for !r.stop.Load() {
		r.msg.Control = &r.ctl[0]
		r.msg.SetControllen(len(r.ctl))
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.msg)), 0)
		if e != 0 {
			continue // EAGAIN after receiverPoll, or EINTR
		}
		now := r.clk.now()
		r.last.Store(now)
		r.account(r.buf[:n], now, r.waited())
	}
}

// waited is how long the datagram just read waited in the socket: now
// less the kernel's receive time, both on the wall clock (the step's
// clock is monotonic; only the difference of two close readings is used).
func (r *receiver) waited() int64 {
	if int(r.msg.Controllen) < unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&r.ctl[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_TIMESTAMPNS {
		return 0
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&r.ctl[unix.CmsgLen(0)]))
	return max(0, time.Now().UnixNano()-ts.Nano())
}

func (r *receiver) account(b []byte, now, waited int64) {
	if len(b) < payloadSize || string(b[:4]) != benchMagic {
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
		l := now - int64(binary.BigEndian.Uint64(b[16:24]))
		r.lat = append(r.lat, l)
		r.arr = append(r.arr, l-waited)
	}
}
