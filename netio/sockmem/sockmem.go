//go:build linux

// Package sockmem reads a socket's memory accounting with
// getsockopt(SO_MEMINFO): how much of its receive buffer its queue holds and
// how many packets the kernel dropped for it. A reader calls it rarely (a
// full link, a stats request), so it is one system call, without allocation.
package sockmem

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Info is a socket's receive-side accounting.
type Info struct {
	// Queued is the memory the receive queue holds (sk_rmem_alloc), in
	// bytes of the kernel's buffers: a small datagram takes far more than
	// its length.
	Queued uint32
	// Buffer is the receive buffer (sk_rcvbuf): per socket(7) twice what
	// SO_RCVBUF asked for. The kernel drops what arrives while Queued is
	// at or above it.
	Buffer uint32
	// Drops counts the packets the kernel dropped for the socket since it
	// was opened (sk_drops), widened to 64 bits (see Reader).
	Drops uint64
}

// Backlogged reports whether the receive queue holds more than a quarter of
// the buffer: the reader has fallen behind by more than a passing stall, and
// the rest of the buffer is the headroom it has left before the kernel
// drops what arrives.
func (i Info) Backlogged() bool { return uint64(i.Queued)*4 > uint64(i.Buffer) }

// A Reader reads one socket's accounting into buffers of its own. The
// kernel's drop counter is 32 bits wide and wraps; a Reader keeps counting
// past 2^32, provided it reads at least once every 2^32 drops. The zero
// value is ready; any goroutine may call Read.
type Reader struct {
	mu    sync.Mutex
	fn    func(fd uintptr) // r.read, bound once
	v     [unix.SK_MEMINFO_VARS]uint32
	vlen  uint32
	errno syscall.Errno
	last  uint32 // sk_drops when last read
	drops uint64
}

// read is raw, like netio/mmsg's calls: getsockopt never blocks, and the
// runtime's syscall bookkeeping would wake its sysmon thread.
func (r *Reader) read(fd uintptr) {
	r.vlen = uint32(unsafe.Sizeof(r.v))
	_, _, r.errno = unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&r.v)), uintptr(unsafe.Pointer(&r.vlen)), 0)
}

// Read returns the accounting of the socket behind rc. With an error (the
// socket is closed), Drops is the count last read.
func (r *Reader) Read(rc syscall.RawConn) (Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fn == nil {
		r.fn = r.read
	}
	if err := rc.Control(r.fn); err != nil {
		return Info{Drops: r.drops}, err
	}
	if r.errno != 0 {
		return Info{Drops: r.drops}, os.NewSyscallError("getsockopt SO_MEMINFO", r.errno)
	}
	if r.vlen <= unix.SK_MEMINFO_DROPS*4 {
		// The kernel copies out min(optlen, its array), and its array has
		// had the drops since SO_MEMINFO exists: never read what it did
		// not write.
		return Info{Drops: r.drops}, fmt.Errorf("getsockopt SO_MEMINFO: %d bytes, no drops counter", r.vlen)
	}
	d := r.v[unix.SK_MEMINFO_DROPS]
	r.drops += uint64(d - r.last) // modulo 2^32: counts on across a wrap
	r.last = d
	return Info{Queued: r.v[unix.SK_MEMINFO_RMEM_ALLOC], Buffer: r.v[unix.SK_MEMINFO_RCVBUF], Drops: r.drops}, nil
}
