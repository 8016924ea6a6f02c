package labrelay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
)

// Time limits. A relay must stop within a second of SIGTERM (issue 2);
// StopTimeout leaves room for a loaded CI machine before it kills.
const (
	// DefaultReadyTimeout bounds Start's wait for the relay to be ready.
	DefaultReadyTimeout = 10 * time.Second
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 5 * time.Second
	// outputGrace bounds the wait for the last output lines after exit.
	outputGrace = time.Second
)

// Options tune Start. The zero value is what the package-level Start uses.
type Options struct {
	// Env is added to the relay's environment (KEY=value), after this
	// process's own, so it wins: e.g. "OTHER_RELAYS=10.77.0.2".
	Env []string
	// Echo, if set, receives every output line as the relay writes it (for
	// a verbose demo, or t.Log in a test chasing a hang).
	Echo func(line string)
	// ReadyTimeout bounds the wait for readiness; 0 means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// NoReadyWait makes Start return as soon as the process has started,
	// for a relay that is expected not to get ready (e.g. one started with
	// --wait-for-interface before the interface exists).
	NoReadyWait bool
}

// Relay is one snowsignal process running in a lab host's namespace. Its
// methods are safe for concurrent use.
type Relay struct {
	// Host is where the relay runs.
	Host *netlab.Host
	// Args is the full command line after the binary, as run.
	Args []string
	// StatsSocket is the relay's --stats-socket path, or empty if the
	// binary has no such flag.
	StatsSocket string

	cmd     *exec.Cmd
	logs    *logBuffer
	tmpDir  string        // holds the stats socket; removed after exit
	done    chan struct{} // closed once the process has exited and its output is read
	waitErr error         // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs `bin run args...` in host's namespace and returns once the
// relay is ready (see the package documentation). Cancelling ctx stops the
// relay with SIGTERM (SIGKILL after StopTimeout). On error nothing is left
// running.
func Start(ctx context.Context, bin string, host *netlab.Host, args ...string) (*Relay, error) {
	return Options{}.Start(ctx, bin, host, args...)
}

// Start is the package-level Start with these options.
func (o Options) Start(ctx context.Context, bin string, host *netlab.Host, args ...string) (*Relay, error) {
	r := &Relay{Host: host, logs: newLogBuffer(), done: make(chan struct{})}
	full := []string{"run", "--log-format=json"}
	if sock, ok := flagValue(args, "--stats-socket"); ok {
		r.StatsSocket = sock
	} else if hasStatsSocketFlag(ctx, bin, host) {
		dir, err := os.MkdirTemp("", "snowsignal-relay-")
		if err != nil {
			return nil, fmt.Errorf("labrelay: %w", err)
		}
		r.tmpDir = dir
		r.StatsSocket = filepath.Join(dir, "stats.sock")
		full = append(full, "--stats-socket="+r.StatsSocket)
	}
	r.Args = append(full, args...)

	pr, pw, err := os.Pipe()
	if err != nil {
		r.removeTmp()
		return nil, fmt.Errorf("labrelay: pipe: %w", err)
	}
	cmd := host.Command(ctx, bin, r.Args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopTimeout
	err = cmd.Start()
	pw.Close() // the child holds its own copy
	if err != nil {
		pr.Close()
		r.removeTmp()
		return nil, fmt.Errorf("labrelay: start relay in %s: %w", host.Name, err)
	}
	r.cmd = cmd
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer pr.Close()
		r.logs.readFrom(pr, o.Echo)
	}()
	go func() {
		err := cmd.Wait()
		select {
		case <-read:
		case <-time.After(outputGrace):
			pr.Close() // a grandchild holds the pipe: stop reading
			<-read
		}
		r.waitErr = err
		r.removeTmp()
		close(r.done)
	}()
	if o.NoReadyWait {
		return r, nil
	}
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	if err := r.waitReady(timeout); err != nil {
		r.Kill()
		return nil, fmt.Errorf("labrelay: relay in %s (%s): %w\n--- relay output ---\n%s", host.Name, strings.Join(r.Args, " "), err, r.Output())
	}
	return r, nil
}

// waitReady waits for the "capturing" and "injecting" log lines.
func (r *Relay) waitReady(timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for _, m := range [][2]string{{"capturing", "capture"}, {"injecting", "inject"}} {
		if _, err := r.WaitLog(Msg(m[0], "stage", m[1]), time.Until(end)); err != nil {
			if errors.Is(err, ErrExited) {
				<-r.done
				return fmt.Errorf("exited before it was ready: %w", r.waitErr)
			}
			return fmt.Errorf("not ready within %s (no %q log line from stage %s; readiness needs --log-level info or debug): %w", timeout, m[0], m[1], err)
		}
	}
	return nil
}

// flagValue returns the value of a long flag given as "--name value" or
// "--name=value".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// hasStatsSocketFlag reports whether bin's run command knows
// --stats-socket, by reading its help. The help runs in host's namespace,
// so even a binary that misbehaves on --help cannot touch the host's own
// network.
func hasStatsSocketFlag(ctx context.Context, bin string, host *netlab.Host) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := host.Command(ctx, bin, "run", "--help").Output()
	return strings.Contains(string(out), "--stats-socket")
}

func (r *Relay) removeTmp() {
	if r.tmpDir != "" {
		os.RemoveAll(r.tmpDir)
	}
}

// Pid is the relay's process ID.
func (r *Relay) Pid() int { return r.cmd.Process.Pid }

// Logs returns every line the relay has written so far, parsed (see the
// package documentation).
func (r *Relay) Logs() []map[string]any { return r.logs.all() }

// Output returns every line the relay has written so far, as written.
func (r *Relay) Output() string { return r.logs.text() }

// WaitLog returns the first line the relay wrote, since it started, that
// match accepts, waiting at most timeout for it. It returns an error
// wrapping ErrExited if the relay exits without writing one. See Msg and
// Level for matchers.
func (r *Relay) WaitLog(match func(map[string]any) bool, timeout time.Duration) (map[string]any, error) {
	return r.logs.wait(match, timeout)
}

// Done is closed once the relay has exited and its output is read.
func (r *Relay) Done() <-chan struct{} { return r.done }

// ExitErr returns how the relay exited: nil for exit status 0, an
// *exec.ExitError otherwise. Call it after Done is closed.
func (r *Relay) ExitErr() error {
	select {
	case <-r.done:
		return r.waitErr
	default:
		return errors.New("labrelay: relay still running")
	}
}

// Stop sends SIGTERM, waits for the relay to exit (SIGKILL after
// StopTimeout) and returns its exit error: nil if it exited with status 0.
// Later calls return the same result.
func (r *Relay) Stop() error {
	r.stopOnce.Do(func() {
		r.cmd.Process.Signal(syscall.SIGTERM) // an exited process is fine
		select {
		case <-r.done:
			r.stopErr = r.waitErr
		case <-time.After(StopTimeout):
			r.cmd.Process.Kill()
			<-r.done
			r.stopErr = fmt.Errorf("labrelay: relay in %s did not exit within %s of SIGTERM; killed", r.Host.Name, StopTimeout)
		}
	})
	return r.stopErr
}

// Kill ends the relay with SIGKILL and waits for it, for tests that crash
// a relay on purpose and for clean-up after a failure. It returns the exit
// error, which for a killed relay is "signal: killed".
func (r *Relay) Kill() error {
	r.stopOnce.Do(func() {
		r.cmd.Process.Kill()
		<-r.done
		r.stopErr = r.waitErr
	})
	return r.stopErr
}

// BinaryPath returns the path of the running program, for a snowsignal
// command (the demo) that starts relays by running itself.
func BinaryPath() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("labrelay: path of this program: %w", err)
	}
	return p, nil
}
