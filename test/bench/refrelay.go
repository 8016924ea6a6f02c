//go:build linux

package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// The reference relay is the physical limit the benchmark compares
// SnowSignal with: what a relay written in Go costs on this machine when it
// does nothing but move frames. It is not shipped and uses nothing of the
// project but the lab. Per relay, one goroutine per direction on a locked
// OS thread, blocking system calls, batches of up to refBatch, no
// counters, no dedup, no checks beyond the frame's shape:
//
//	outbound: AF_PACKET capture (BPF: broadcast, IPv4, UDP, the port, not our
//	          mark) -> recvmmsg -> "SS"+frame -> sendmmsg to the peer's mesh port
//	inbound:  mesh UDP socket -> recvmmsg -> strip "SS", Ethernet source :=
//	          our MAC, UDP checksum computed -> sendmmsg on an AF_PACKET
//	          socket marked with refMark
//
// It speaks the legacy mesh format, so the frames it sends are what a
// SnowSignal relay would send, and the IP source stays the client's.
//
// How it waits for datagrams is its refMode: the in-process pair blocks in
// ordinary system calls, the own-process pair in raw ones, and the
// netpoller pair (also a process of its own) waits as every Go network
// program does, SnowSignal included: non-blocking sockets, parked
// goroutines, the runtime's poller.
type refRelay struct {
	name   string
	host   *netlab.Host
	capFD  int // AF_PACKET, filtered, bound to the interface: receives
	injFD  int // AF_PACKET, protocol 0 (receives nothing), SO_MARK: sends
	meshFD int // UDP, bound to our mesh address, connected to the peer's
	mac    [6]byte
	stop   atomic.Bool
	wg     sync.WaitGroup
	tids   [2]atomic.Int32 // outbound, inbound threads
	// capDrops sums the capture socket's drops read so far.
	capDrops uint64
	mode     refMode
	// files hold the sockets in refNetpoll mode, registered with the
	// runtime's poller; closing them wakes the goroutines.
	files   []*os.File
	started sync.WaitGroup
}

// refMode is how a reference relay waits for datagrams.
type refMode int

const (
	// refBlocking: blocking recvmmsg(2) through the runtime (entersyscall),
	// on a locked thread. The pair of threads inside the benchmark.
	refBlocking refMode = iota
	// refRaw: blocking recvmmsg(2) as raw system calls, on a locked thread
	// that keeps its P (see refChild). The own-process pair.
	refRaw
	// refNetpoll: non-blocking sockets; a goroutine per direction reads
	// with recvmmsg(2) through syscall.RawConn.Read, which parks it in the
	// runtime's poller (epoll) when the socket is empty, on one P
	// (GOMAXPROCS=1). Sends are raw non-blocking sendmmsg(2). This is how
	// SnowSignal's readers wait, and how any Go relay that the garbage
	// collector and the other goroutines can share a process with must.
	refNetpoll
)

const (
	// refBatch is how many datagrams one recvmmsg/sendmmsg of the
	// reference relay carries at most, as SnowSignal's batches.
	refBatch = 64
	// refMark tags the frames the reference relay injects, so its own
	// capture filter drops them when they come back as outgoing frames.
	refMark = 0x5353
	// refPoll is how long a blocked receive waits before the thread looks
	// whether it should stop (SO_RCVTIMEO): one wake-up per refPoll while
	// idle.
	refPoll = time.Second
	// refSocketBuffer is the receive buffer of its capture and mesh sockets.
	refSocketBuffer = 4 << 20
	// refFrame is the buffer per datagram: "SS" and an MTU-sized frame.
	refFrame = 2 + 1514
)

// Offsets of the classic BPF ancillary data (linux/filter.h).
const (
	skfAdOff  = 0xfffff000 // -0x1000 as the 32-bit K of a load
	skfAdMark = 20
)

// refFilter accepts Ethernet broadcasts of IPv4 UDP datagrams to port that
// are not fragments after the first and do not carry refMark.
func refFilter(port uint16) []unix.SockFilter {
	const (
		ldH   = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		ldB   = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		ldHX  = unix.BPF_LD | unix.BPF_H | unix.BPF_IND
		ldxIP = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	// Jump offsets count the instructions after the jump; drop is the last.
	p := []unix.SockFilter{
		{Code: ldW, K: 0},                              // 0: destination MAC, first 4 bytes
		{Code: jeq, K: 0xffffffff, Jt: 0, Jf: 14},      // 1
		{Code: ldH, K: 4},                              // 2: and the last 2
		{Code: jeq, K: 0xffff, Jt: 0, Jf: 12},          // 3
		{Code: ldH, K: 12},                             // 4: EtherType
		{Code: jeq, K: unix.ETH_P_IP, Jt: 0, Jf: 10},   // 5
		{Code: ldB, K: 23},                             // 6: IP protocol
		{Code: jeq, K: unix.IPPROTO_UDP, Jt: 0, Jf: 8}, // 7
		{Code: ldH, K: 20},                             // 8: flags and fragment offset
		{Code: jset, K: 0x1fff, Jt: 6, Jf: 0},          // 9: a later fragment has no UDP header
		{Code: ldxIP, K: 14},                           // 10: X = IP header length
		{Code: ldHX, K: 16},                            // 11: UDP destination port
		{Code: jeq, K: uint32(port), Jt: 0, Jf: 3},     // 12
		{Code: ldW, K: skfAdOff + skfAdMark},           // 13: the skb's mark
		{Code: jeq, K: refMark, Jt: 1, Jf: 0},          // 14: our own injected frame
		{Code: ret, K: 0xffff},                         // 15: accept
		{Code: ret, K: 0},                              // 16: drop
	}
	return p
}

// startRefRelay opens the reference relay's sockets in host (mesh address
// host:meshPort, peer peer:meshPort) and starts its two threads in this
// process.
func startRefRelay(name string, host *netlab.Host, peer netip.Addr, port uint16) (*refRelay, error) {
	var r *refRelay
	err := host.Do(func() error {
		var err error
		r, err = newRefRelay(name, host.Ifindex, host.IP, host.MAC, peer, port, refBlocking)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.host = host
	return r, nil
}

// newRefRelay opens the reference relay's sockets in the current network
// namespace and starts its two threads (goroutines in refNetpoll mode),
// which wait for datagrams as mode says.
func newRefRelay(name string, ifindex int, self netip.Addr, mac net.HardwareAddr, peer netip.Addr, port uint16, mode refMode) (*refRelay, error) {
	r := &refRelay{name: name, capFD: -1, injFD: -1, meshFD: -1, mode: mode}
	copy(r.mac[:], mac)
	var err error
	if r.capFD, err = openCapture(ifindex, port); err == nil {
		if r.injFD, err = openInject(ifindex); err == nil {
			r.meshFD, err = openMesh(self, peer)
		}
	}
	if err == nil && mode == refNetpoll {
		err = r.registerFDs()
	}
	if err != nil {
		r.closeFDs()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.started.Add(2)
	r.wg.Add(2)
	go r.thread(0, r.outbound)
	go r.thread(1, r.inbound)
	r.started.Wait()
	return r, nil
}

func openCapture(ifindex int, port uint16) (int, error) {
	// Protocol 0 first, then the filter, then bind with the protocol: no
	// unfiltered frame slips in before the filter (as mdlayher/packet does).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket AF_PACKET", err)
	}
	prog := refFilter(port)
	tv := unix.NsecToTimeval(int64(refPoll))
	for _, err := range []error{
		unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}),
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, refSocketBuffer),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
		unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}),
	} {
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("capture socket: %w", err)
		}
	}
	return fd, nil
}

func openInject(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket AF_PACKET", err)
	}
	for _, err := range []error{
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, refMark),
		unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: ifindex}),
	} {
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("inject socket: %w", err)
		}
	}
	return fd, nil
}

func openMesh(self, peer netip.Addr) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	tv := unix.NsecToTimeval(int64(refPoll))
	for _, err := range []error{
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, refSocketBuffer),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
		unix.Bind(fd, &unix.SockaddrInet4{Addr: self.As4(), Port: meshPort}),
		unix.Connect(fd, &unix.SockaddrInet4{Addr: peer.As4(), Port: meshPort}),
	} {
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("mesh socket: %w", err)
		}
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// registerFDs makes the three sockets non-blocking and hands them to the
// runtime's poller (os.NewFile registers a non-blocking descriptor), for
// refNetpoll.
func (r *refRelay) registerFDs() error {
	for _, fd := range []int{r.capFD, r.injFD, r.meshFD} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return fmt.Errorf("non-blocking: %w", err)
		}
	}
	r.files = []*os.File{os.NewFile(uintptr(r.capFD), "capture"), os.NewFile(uintptr(r.injFD), "inject"),
		os.NewFile(uintptr(r.meshFD), "mesh")}
	return nil
}

// thread runs fn on a locked OS thread (on a goroutine of its own in
// refNetpoll mode) and records the thread's id for CPU accounting. The
// thread is unlocked, not ended, afterwards: it may be one that started a
// SnowSignal relay, whose Pdeathsig would fire.
func (r *refRelay) thread(i int, fn func()) {
	defer r.wg.Done()
	if r.mode != refNetpoll {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	r.tids[i].Store(int32(unix.Gettid()))
	r.started.Done()
	fn()
}

// mmsghdr is struct mmsghdr of sendmmsg(2) on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// refBatchBufs is one direction's buffers and the kernel's descriptions of
// them, built once.
type refBatchBufs struct {
	bufs [refBatch][refFrame]byte
	iovs [refBatch]unix.Iovec
	msgs [refBatch]mmsghdr
}

// point describes buffer i from offset off, for len bytes.
func (b *refBatchBufs) point(i, off, n int) {
	b.iovs[i].Base = &b.bufs[i][off]
	b.iovs[i].SetLen(n)
	b.msgs[i].hdr.Iov = &b.iovs[i]
	b.msgs[i].hdr.SetIovlen(1)
}

// receiver returns the function one direction calls to wait for and read
// a batch from fd into m: recvBatch, or in refNetpoll mode a recvmmsg(2)
// through the poller (built once: a closure made per call would be
// garbage per datagram). It returns 0 when nothing was read (a timeout, a
// closed socket, an error); the caller then looks at r.stop.
func (r *refRelay) receiver(file int, fd int, m *[refBatch]mmsghdr) func() int {
	if r.mode != refNetpoll {
		raw := r.mode == refRaw
		return func() int { return recvBatch(fd, m, raw) }
	}
	rc, err := r.files[file].SyscallConn()
	if err != nil {
		panic(err) // an *os.File always has one
	}
	var n int
	read := func(fd uintptr) bool {
		k, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m[0])), refBatch,
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			n = int(k)
		case unix.EAGAIN:
			return false // park until the poller says the socket is readable
		default:
			n = 0
		}
		return true
	}
	return func() int {
		n = 0
		if rc.Read(read) != nil {
			return 0 // closed by close
		}
		return n
	}
}

// sender returns the function one direction sends a batch on fd with:
// sendBatch, or in refNetpoll mode raw non-blocking sendmmsg(2) calls
// (they do not block: the sockets are non-blocking), as SnowSignal sends.
func (r *refRelay) sender(fd int) func([]mmsghdr) {
	if r.mode != refNetpoll {
		return func(m []mmsghdr) { sendBatch(fd, m) }
	}
	return func(m []mmsghdr) {
		for len(m) > 0 {
			n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), 0, 0, 0)
			switch {
			case e == unix.EINTR:
			case e != 0:
				m = m[1:] // EAGAIN too: the reference does not wait to send
			default:
				m = m[n:]
			}
		}
	}
}

// recvBatch is a blocking recvmmsg(2) that returns once at least one
// datagram is there (MSG_WAITFORONE), or after refPoll with none.
func recvBatch(fd int, m *[refBatch]mmsghdr, raw bool) int {
	call := unix.Syscall6
	if raw {
		call = unix.RawSyscall6
	}
	n, _, e := call(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m[0])), refBatch,
		unix.MSG_WAITFORONE, 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}

// sendBatch sends m[:n] with as many sendmmsg(2) calls as it takes; a
// datagram the kernel refuses is skipped.
func sendBatch(fd int, m []mmsghdr) {
	for len(m) > 0 {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
		case e != 0:
			m = m[1:]
		default:
			m = m[n:]
		}
	}
}

// outbound: captured frame -> "SS"+frame to the peer.
func (r *refRelay) outbound() {
	var in refBatchBufs
	for i := range refBatch {
		in.point(i, 2, refFrame-2)
		in.bufs[i][0], in.bufs[i][1] = 'S', 'S'
	}
	recv, send := r.receiver(0, r.capFD, &in.msgs), r.sender(r.meshFD)
	for !r.stop.Load() {
		n := recv()
		for i := range n {
			// The frame landed after "SS": send from the start.
			in.iovs[i].Base = &in.bufs[i][0]
			in.iovs[i].SetLen(2 + int(in.msgs[i].len))
		}
		if n > 0 {
			send(in.msgs[:n])
		}
		for i := range n {
			in.point(i, 2, refFrame-2)
		}
	}
}

// inbound: "SS"+frame from the peer -> frame, source MAC ours, injected.
func (r *refRelay) inbound() {
	var in refBatchBufs
	var out [refBatch]mmsghdr
	var outIov [refBatch]unix.Iovec
	for i := range refBatch {
		in.point(i, 0, refFrame)
		out[i].hdr.Iov = &outIov[i]
		out[i].hdr.SetIovlen(1)
	}
	recv, send := r.receiver(2, r.meshFD, &in.msgs), r.sender(r.injFD)
	for !r.stop.Load() {
		n := recv()
		k := 0
		for i := range n {
			b := in.bufs[i][:in.msgs[i].len]
			if len(b) < 2+14 || b[0] != 'S' || b[1] != 'S' {
				continue
			}
			copy(b[2+6:2+12], r.mac[:])
			setUDPChecksum(b[2:])
			outIov[k].Base = &b[2]
			outIov[k].SetLen(len(b) - 2)
			k++
		}
		if k > 0 {
			send(out[:k])
		}
	}
}

// setUDPChecksum computes the UDP checksum of an Ethernet frame holding an
// IPv4 UDP datagram (RFC 768, the one's complement sum of RFC 1071 over
// the pseudo-header and the datagram). Frames a client's stack sends on a
// veth carry only the pseudo-header's sum (CHECKSUM_PARTIAL, completed by
// the "hardware"), and the capture socket sees them so: re-injected as they
// are, the server drops them (InCsumErrors). SnowSignal completes such
// checksums too; computing every one costs about as much as checking for
// TP_STATUS_CSUMNOTREADY and is simpler. Frames of another shape are left
// alone.
func setUDPChecksum(f []byte) {
	if len(f) < 14+20+8 || f[12] != 0x08 || f[13] != 0x00 {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl+8 || ip[9] != unix.IPPROTO_UDP {
		return
	}
	udp := ip[ihl:]
	n := int(udp[4])<<8 | int(udp[5])
	if n < 8 || n > len(udp) {
		return
	}
	udp = udp[:n]
	udp[6], udp[7] = 0, 0
	// Pseudo-header: source and destination address, protocol, UDP length.
	sum := uint32(unix.IPPROTO_UDP) + uint32(n)
	for i := 12; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for i := 0; i+1 < n; i += 2 {
		sum += uint32(udp[i])<<8 | uint32(udp[i+1])
	}
	if n%2 == 1 {
		sum += uint32(udp[n-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff // zero means "no checksum" in IPv4 UDP
	}
	udp[6], udp[7] = byte(c>>8), byte(c)
}

// close stops both threads (within refPoll; at once in refNetpoll mode,
// where closing the sockets wakes them) and closes the sockets.
func (r *refRelay) close() {
	r.stop.Store(true)
	if r.mode == refNetpoll {
		r.closeFDs()
		r.wg.Wait()
		return
	}
	r.wg.Wait()
	r.closeFDs()
}

func (r *refRelay) closeFDs() {
	if r.files != nil {
		for _, f := range r.files {
			f.Close()
		}
		return
	}
	for _, fd := range []int{r.capFD, r.injFD, r.meshFD} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (r *refRelay) label() string   { return r.name }
func (r *refRelay) inProcess() bool { return true }
func (r *refRelay) check() error    { return nil }

// sample is the CPU time of the relay's two threads, from
// /proc/self/task/TID/stat (utime+stime) and schedstat (run time, ns), and
// their context switches. Memory is the benchmark's own and left zero.
func (r *refRelay) sample() (procSample, error) {
	var s procSample
	for i := range r.tids {
		t, err := readTask(os.Getpid(), int(r.tids[i].Load()))
		if err != nil {
			return s, fmt.Errorf("%s: %w", r.name, err)
		}
		s.RunNS += t.RunNS
		s.WaitNS += t.WaitNS
		s.Ticks += t.Ticks
		s.Switches += t.Switches
	}
	return s, nil
}

// captureDrops returns and resets the capture socket's count of frames
// the kernel dropped for want of buffer space (PACKET_STATISTICS).
func (r *refRelay) captureDrops() (uint64, error) {
	st, err := unix.GetsockoptTpacketStats(r.capFD, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, fmt.Errorf("%s: PACKET_STATISTICS: %w", r.name, err)
	}
	return uint64(st.Drops), nil
}

// refPair is the two reference relays of the lab.
type refPair struct {
	relays []relay
	close  func()
}

// startRefPair starts a reference relay in relay-a and in relay-b: with
// refBlocking as threads of this process, otherwise each as a process of
// its own.
func startRefPair(l *netlab.Lab, port uint16, mode refMode) (*refPair, error) {
	a, b := l.Host("relay-a"), l.Host("relay-b")
	if mode != refBlocking {
		pa, err := startRefProc("ref-a", a, b.IP, port, mode)
		if err != nil {
			return nil, err
		}
		pb, err := startRefProc("ref-b", b, a.IP, port, mode)
		if err != nil {
			pa.stop()
			return nil, err
		}
		return &refPair{relays: []relay{pa, pb}, close: func() { pa.stop(); pb.stop() }}, nil
	}
	ra, err := startRefRelay("ref-a", a, b.IP, port)
	if err != nil {
		return nil, err
	}
	rb, err := startRefRelay("ref-b", b, a.IP, port)
	if err != nil {
		ra.close()
		return nil, err
	}
	// Stop both at once (each thread notices within refPoll), then close.
	return &refPair{relays: []relay{ra, rb}, close: func() {
		ra.stop.Store(true)
		rb.stop.Store(true)
		ra.close()
		rb.close()
	}}, nil
}

// refMemoryKiB is what the reference relay's buffers take, per relay: it
// runs inside the benchmark, so it has no RSS of its own.
const refMemoryKiB = 2 * int(unsafe.Sizeof(refBatchBufs{})) / 1024
