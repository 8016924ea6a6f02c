//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// refChildArg, as this program's first argument, makes it a reference
// relay in a process of its own (refChild) instead of the benchmark.
const refChildArg = "-reference-relay-process"

// A refProc is a reference relay running as a process of its own in a lab
// host: the benchmark's own binary started with refChildArg. Its CPU is
// read from /proc for the whole process, as a SnowSignal relay's is: a
// relay pays for switching to its own address space when a datagram wakes
// it, which threads inside the benchmark's process (the sender's, the
// receiver's) do not.
type refProc struct {
	name  string
	host  *netlab.Host
	pid   int
	stdin io.WriteCloser
	done  chan error
}

// startRefProc starts the reference relay name in host, its mesh peer at
// peer, waiting for datagrams as mode says (refRaw or refNetpoll), and
// returns once its sockets are open.
func startRefProc(name string, host *netlab.Host, peer netip.Addr, port uint16, mode refMode) (*refProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := host.Command(context.Background(), exe, refChildArg, name, strconv.Itoa(host.Ifindex),
		host.IP.String(), host.MAC.String(), peer.String(), strconv.Itoa(int(port)), strconv.Itoa(int(mode)))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	cmd.Env = os.Environ()
	if mode == refRaw {
		cmd.Env = append(cmd.Env, "GODEBUG=asyncpreemptoff=1") // see refChild
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &refProc{name: name, host: host, pid: cmd.Process.Pid, stdin: stdin, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
		io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("not ready after 10s")
	}
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

func (p *refProc) label() string   { return p.name }
func (p *refProc) inProcess() bool { return false }

func (p *refProc) check() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited during the run: %v", p.name, err)
	default:
		return nil
	}
}

// sample reads the whole process's CPU time (every thread, the Go
// runtime's included) and memory, as for a SnowSignal relay.
func (p *refProc) sample() (procSample, error) {
	s, err := readProc(p.pid)
	if err != nil {
		return s, fmt.Errorf("%s: %w", p.name, err)
	}
	return s, nil
}

// stop closes the child's stdin, which ends it (within refPoll), and
// waits for it; it is killed after a few seconds.
func (p *refProc) stop() {
	p.stdin.Close()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(5 * time.Second):
		if pr, err := os.FindProcess(p.pid); err == nil {
			pr.Kill()
		}
		<-p.done
	}
}

// refChild is the reference relay's process: args are its name, the
// interface's index, its address and MAC, the peer's address, the port
// and the refMode. It runs until its stdin closes.
//
// In refRaw mode its two threads block in raw system calls and keep their
// Ps (newRefRelay), so the Go runtime does no work for a datagram: with
// ordinary ones, a thread that blocks with every other P idle wakes
// sysmon, and this process cost 3 times as much per datagram at 1k/s. It
// has a P for each thread and two to spare, and allocates nothing while it
// relays, so no garbage collection waits for a blocked thread;
// startRefProc turns asynchronous preemption off, or sysmon would signal
// each "long-running" thread every 10 ms. No relay that shares its
// process with anything else can wait so: a collection would wait for the
// next datagram.
//
// In refNetpoll mode it runs on one P, as SnowSignal does, with the
// runtime's defaults.
func refChild(args []string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "reference relay: %v\n", err)
		return 1
	}
	if len(args) != 7 {
		return fail(fmt.Errorf("want 7 arguments, got %q", args))
	}
	ifindex, err1 := strconv.Atoi(args[1])
	self, err2 := netip.ParseAddr(args[2])
	mac, err3 := net.ParseMAC(args[3])
	peer, err4 := netip.ParseAddr(args[4])
	port, err5 := strconv.ParseUint(args[5], 10, 16)
	mode, err6 := strconv.Atoi(args[6])
	for _, err := range []error{err1, err2, err3, err4, err5, err6} {
		if err != nil {
			return fail(err)
		}
	}
	switch refMode(mode) {
	case refRaw:
		runtime.GOMAXPROCS(4)
	case refNetpoll:
		runtime.GOMAXPROCS(1)
	default:
		return fail(fmt.Errorf("mode %d: want %d (raw) or %d (netpoll)", mode, refRaw, refNetpoll))
	}
	r, err := newRefRelay(args[0], ifindex, self, mac, peer, uint16(port), refMode(mode))
	if err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	r.close()
	return 0
}
