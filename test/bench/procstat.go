//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat. Per proc(5) it
// is sysconf(_SC_CLK_TCK), which Linux fixes at 100 on every architecture
// Go supports.
const userHZ = 100

// procSample is what /proc says about one process at one moment.
type procSample struct {
	// RunNS is the time the process's threads have spent on a CPU, in
	// nanoseconds: the sum of the first field of /proc/<pid>/task/*/schedstat.
	// It has nanosecond resolution, where utime+stime move in 10 ms ticks,
	// and it includes the softirq work the kernel does in the process's
	// context (this kernel has no CONFIG_IRQ_TIME_ACCOUNTING), exactly as
	// utime+stime do.
	RunNS uint64
	// WaitNS is the time the threads were ready to run but waited for a
	// CPU (the run queue), the second field of schedstat: a relay whose
	// queue grows while it waits here is late for want of a CPU, not for
	// its own cost.
	WaitNS uint64
	// Ticks is utime+stime from /proc/<pid>/stat, in 1/userHZ seconds.
	Ticks uint64
	// Switches counts the context switches of all threads, voluntary and
	// not (/proc/<pid>/task/*/status): a thread that sleeps and is woken for
	// every datagram costs two.
	Switches uint64
	// HWMKiB and RSSKiB are VmHWM (peak resident set) and VmRSS from
	// /proc/<pid>/status; AnonKiB and FileKiB split VmRSS into anonymous
	// memory (heap, stacks) and file pages (the mapped binary, which the
	// kernel shares and can drop).
	HWMKiB, RSSKiB, AnonKiB, FileKiB uint64
}

// readProc samples process pid.
func readProc(pid int) (procSample, error) {
	var s procSample
	dir := fmt.Sprintf("/proc/%d", pid)
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, fmt.Errorf("proc stat: %w", err)
	}
	if s.Ticks, err = statTicks(stat); err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}

	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return s, fmt.Errorf("proc tasks: %w", err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		if f := strings.Fields(string(b)); len(f) > 1 {
			n, _ := strconv.ParseUint(f[0], 10, 64)
			w, _ := strconv.ParseUint(f[1], 10, 64)
			s.RunNS += n
			s.WaitNS += w
		}
		if st, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "status")); err == nil {
			s.Switches += ctxtSwitches(st)
		}
	}

	status, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return s, fmt.Errorf("proc status: %w", err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM":
			s.HWMKiB = parseKiB(v)
		case "VmRSS":
			s.RSSKiB = parseKiB(v)
		case "RssAnon":
			s.AnonKiB = parseKiB(v)
		case "RssFile":
			s.FileKiB = parseKiB(v)
		}
	}
	return s, sc.Err()
}

// parseKiB parses a /proc/<pid>/status size such as "   10240 kB".
func parseKiB(v string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n
}

// cpuDelta is the CPU time two samples of one process are apart.
type cpuDelta struct {
	RunNS    uint64 // from schedstat, nanoseconds
	WaitNS   uint64 // waiting for a CPU, from schedstat
	Ticks    uint64 // utime+stime, 1/userHZ seconds
	Switches uint64 // context switches
}

func (a procSample) sub(b procSample) cpuDelta {
	return cpuDelta{RunNS: a.RunNS - b.RunNS, WaitNS: a.WaitNS - b.WaitNS, Ticks: a.Ticks - b.Ticks, Switches: a.Switches - b.Switches}
}

// add sums the CPU time of several processes.
func (d cpuDelta) add(e cpuDelta) cpuDelta {
	return cpuDelta{RunNS: d.RunNS + e.RunNS, WaitNS: d.WaitNS + e.WaitNS, Ticks: d.Ticks + e.Ticks, Switches: d.Switches + e.Switches}
}

// tickNS is one utime/stime tick in nanoseconds.
const tickNS = 1e9 / userHZ

// snmpUDP reads the Udp counters of /proc/thread-self/net/snmp. The caller
// must run it on a thread inside the namespace of interest (netlab.Host.Do):
// /proc/self/net would show the namespace of the process's main thread.
func snmpUDP() (map[string]uint64, error) {
	b, err := os.ReadFile("/proc/thread-self/net/snmp")
	if err != nil {
		return nil, fmt.Errorf("snmp: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		out := make(map[string]uint64, len(f))
		for i := range min(len(f), len(names)) {
			out[names[i]], _ = strconv.ParseUint(f[i], 10, 64)
		}
		return out, nil
	}
	return nil, fmt.Errorf("snmp: no Udp lines")
}

// softnetDrops sums the second column of /proc/net/softnet_stat: packets
// dropped because a CPU's input backlog (net.core.netdev_max_backlog) was
// full. Veth devices queue every received frame there, so this is where a
// lab overloaded in the kernel drops. The counters are host-wide.
func softnetDrops() (uint64, error) {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0, fmt.Errorf("softnet_stat: %w", err)
	}
	var total uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("softnet_stat: %w", err)
		}
		total += n
	}
	return total, nil
}

// udpSocketDrops returns the "drops" column of the UDP socket bound to
// local port port in host's namespace, from /proc/thread-self/net/udp.
func udpSocketDrops(h *netlab.Host, port uint16) (uint64, error) {
	var n uint64
	err := h.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/udp")
		if err != nil {
			return fmt.Errorf("proc net udp: %w", err)
		}
		n, err = udpDropsOf(string(b), port)
		return err
	})
	return n, err
}

// udpDropsOf finds the socket on local port port in the text of a
// /proc/net/udp file and returns its drops column.
func udpDropsOf(text string, port uint16) (uint64, error) {
	want := fmt.Sprintf(":%04X", port)
	lines := strings.Split(text, "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
		if len(f) < 13 || !strings.HasSuffix(f[1], want) {
			continue
		}
		return strconv.ParseUint(f[12], 10, 64)
	}
	return 0, fmt.Errorf("proc net udp: no socket on port %d", port)
}

// hostCPU is the host's CPU time from the "cpu" line of /proc/stat, in
// 1/userHZ seconds: Busy is everything but idle and iowait.
type hostCPU struct{ Busy, Total uint64 }

func readHostCPU() (hostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}, fmt.Errorf("host cpu: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return hostCPU{}, fmt.Errorf("host cpu: unexpected /proc/stat line %q", line)
	}
	var h hostCPU
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already counted in user time
			break
		}
		h.Total += n
		if i != 3 && i != 4 { // idle, iowait
			h.Busy += n
		}
	}
	return h, nil
}

// selfCPU is the CPU time of this process, exited threads included (the
// sender's thread ends with every run, and /proc/self/task forgets it).
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ownTicks is utime+stime of this process (sender and receivers).
func ownTicks() uint64 {
	s, err := readProc(os.Getpid())
	if err != nil {
		return 0
	}
	return s.Ticks
}

// readTask samples one thread, tid, of process pid: its run time
// (schedstat), utime+stime (stat) and context switches (status).
func readTask(pid, tid int) (procSample, error) {
	var s procSample
	dir := fmt.Sprintf("/proc/%d/task/%d", pid, tid)
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, fmt.Errorf("task stat: %w", err)
	}
	if s.Ticks, err = statTicks(stat); err != nil {
		return s, fmt.Errorf("task %d: %w", tid, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "schedstat"))
	if err != nil {
		return s, fmt.Errorf("task schedstat: %w", err)
	}
	if f := strings.Fields(string(b)); len(f) > 1 {
		s.RunNS, _ = strconv.ParseUint(f[0], 10, 64)
		s.WaitNS, _ = strconv.ParseUint(f[1], 10, 64)
	}
	st, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, fmt.Errorf("task status: %w", err)
	}
	s.Switches = ctxtSwitches(st)
	return s, nil
}

// statTicks returns utime+stime from the text of a /proc stat file. The
// command name in parentheses may hold spaces: fields start after the last
// ')'. utime and stime are fields 14 and 15 (1-based), the 12th and 13th
// after the name.
func statTicks(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return ut + st, nil
}

// ctxtSwitches sums the voluntary and involuntary context switches of a
// /proc status file.
func ctxtSwitches(status []byte) uint64 {
	var n uint64
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
			c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			n += c
		}
	}
	return n
}
