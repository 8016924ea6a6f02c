package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Where named namespaces live, as iproute2 keeps them: `ip netns exec NAME`
// opens NetNSDir/NAME and bind-mounts the files of EtcNetNSDir/NAME over /etc.
const (
	NetNSDir    = "/run/netns"
	EtcNetNSDir = "/etc/netns"
	// Prefix starts the name of every namespace a lab makes:
	// "sslab-<pid>-<4 hex digits>-<host>".
	Prefix = "sslab-"
)

// onThread runs fn on a fresh goroutine locked to its OS thread, after enter
// has moved that thread into a network namespace, then moves the thread back
// to the namespace it started in. If the move back fails, the goroutine ends
// still locked, so the Go runtime ends the thread rather than let another
// goroutine run in the wrong namespace. A panic in fn is carried over to the
// caller.
func onThread(enter func() error, fn func() error) error {
	type result struct {
		err      error
		panicked bool
		p        any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("lab: open own netns: %w", os.NewSyscallError("open", err))}
			return
		}
		defer unix.Close(orig)
		var r result
		if r.err = enter(); r.err == nil {
			func() {
				defer func() {
					if p := recover(); p != nil {
						r.panicked, r.p = true, p
					}
				}()
				r.err = fn()
			}()
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			r.err = errors.Join(r.err, fmt.Errorf("lab: restore thread netns: %w", os.NewSyscallError("setns", err)))
			done <- r
			return
		}
		runtime.UnlockOSThread()
		done <- r
	}()
	r := <-done
	if r.panicked {
		panic(r.p)
	}
	return r.err
}

// enterPath returns an enter function for onThread that switches to the
// namespace bind-mounted at path.
func enterPath(path string) func() error {
	return func() error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("lab: open netns %s: %w", path, os.NewSyscallError("open", err))
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("lab: enter netns %s: %w", path, os.NewSyscallError("setns", err))
		}
		return nil
	}
}

// inNS runs fn on a thread inside the namespace bind-mounted at path.
func inNS(path string, fn func() error) error { return onThread(enterPath(path), fn) }

// createNS makes a new network namespace, bind-mounts it at path (which must
// not exist) and runs setup inside it. On error nothing is left at path.
func createNS(path string, setup func() error) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("lab: new netns: %w", os.NewSyscallError("unshare", err))
		}
		return nil
	}, func() error {
		// The mount keeps the namespace alive after the thread leaves it.
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("lab: bind-mount netns at %s: %w", path, os.NewSyscallError("mount", err))
		}
		return setup()
	})
	if err != nil {
		err = errors.Join(err, removeNS(path))
	}
	return err
}

// removeNS unmounts and removes a namespace made by createNS. The kernel
// frees the namespace (and its interfaces) once no process, thread or socket
// uses it any more. A missing namespace is not an error.
func removeNS(path string) error {
	var errs []error
	// MNT_DETACH: a process still inside the namespace must not make the
	// unmount fail.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		errs = append(errs, fmt.Errorf("lab: unmount %s: %w", path, os.NewSyscallError("umount2", err)))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("lab: %w", err))
	}
	return errors.Join(errs...)
}

var netnsDirOnce struct {
	sync.Mutex
	done bool
}

// prepareNetNSDir makes NetNSDir a shared mount point, exactly as `ip netns
// add` does on first use: then unmounting a namespace also unmounts the
// copies that `ip netns exec` children hold in their own mount namespaces
// (they are slaves of ours), so a namespace never outlives its lab by being
// pinned in a child's mount table. Like iproute2 we leave this bind mount in
// place; it holds nothing by itself.
func prepareNetNSDir() error {
	netnsDirOnce.Lock()
	defer netnsDirOnce.Unlock()
	if netnsDirOnce.done {
		return nil
	}
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	err := unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == unix.EINVAL { // not a mount point yet
		if err = unix.Mount(NetNSDir, NetNSDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("lab: make %s a shared mount: %w", NetNSDir, os.NewSyscallError("mount", err))
	}
	netnsDirOnce.done = true
	return nil
}

// writeSysctl writes a value under /proc/sys. Entries under /proc/sys/net
// belong to the network namespace of the thread that opens them, so call it
// on a thread inside the namespace (onThread).
func writeSysctl(name, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("lab: sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// ownerPID returns the PID encoded in a namespace name made by a lab.
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// alive reports whether a process with this PID exists (in our PID
// namespace). EPERM means it exists but is not ours to signal.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// Sweep removes the namespaces (and /etc/netns folders) that labs of dead
// processes left behind, e.g. after a test binary was killed. It never
// touches those of a live process, this one included. NewSwarm and NewRouted
// call it first.
func Sweep() error {
	var errs []error
	for _, dir := range []string{NetNSDir, EtcNetNSDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("lab: sweep: %w", err))
			}
			continue
		}
		for _, e := range entries {
			pid, ok := ownerPID(e.Name())
			if !ok || pid == os.Getpid() || alive(pid) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if dir == NetNSDir {
				err = removeNS(p)
			} else {
				err = os.RemoveAll(p)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Available reports why this process cannot build labs, or nil if it can:
// it needs CAP_SYS_ADMIN (namespaces, mounts) and CAP_NET_ADMIN.
func Available() error {
	if _, err := os.Stat("/proc/thread-self/ns/net"); err != nil {
		return fmt.Errorf("no network namespaces: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if !has(unix.CAP_SYS_ADMIN) || !has(unix.CAP_NET_ADMIN) {
		return fmt.Errorf("needs CAP_SYS_ADMIN and CAP_NET_ADMIN (euid %d)", os.Geteuid())
	}
	return nil
}
