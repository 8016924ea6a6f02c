//go:build linux

package statsserver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs a stage answering "snapshot" with {"n": 42} on a socket in a
// new directory and returns the socket's path; the stage stops when the
// test ends, and the test checks that it stopped cleanly.
func serve(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "relay.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	st := New(ln, func(verb string) (any, error) {
		if verb == "snapshot" {
			return map[string]int{"n": 42}, nil
		}
		return nil, errors.New("unknown verb " + verb)
	}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		ln.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind after Close: %v", err)
		}
	})
	return path
}

func TestFetch(t *testing.T) {
	path := serve(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != Mode || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want a socket with %o", fi.Mode(), Mode)
	}
	ctx := context.Background()
	raw, err := Fetch(ctx, path, "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := json.Unmarshal(raw, &got); err != nil || got["n"] != 42 {
		t.Errorf("answer %s (%v), want {\"n\":42}", raw, err)
	}
	if _, err := Fetch(ctx, path, "nonsense"); err == nil || !strings.Contains(err.Error(), "unknown verb nonsense") {
		t.Errorf("unknown verb: error %v", err)
	}
}

// exchange sends a raw request and returns the raw answer.
func exchange(t *testing.T, path, req string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	n, _ := c.Read(b)
	return string(b[:n])
}

func TestProtocol(t *testing.T) {
	path := serve(t)
	for _, tt := range []struct{ req, want string }{
		{"SNOWSIGNAL-STATS 1 snapshot\n", `{"n":42}` + "\n"},
		{"SNOWSIGNAL-STATS 2 snapshot\n", `{"error":"version mismatch: this snowsignal speaks stats protocol 1, the relay 2 (use the snowsignal binary the relay runs)","protocol":1}` + "\n"},
		{"GET / HTTP/1.0\n", `{"error":"bad request \"GET / HTTP/1.0\" (want \"SNOWSIGNAL-STATS 1 snapshot\")","protocol":1}` + "\n"},
		{strings.Repeat("x", 1000), ""}, // no newline within the limit: closed unanswered
	} {
		if got := exchange(t, path, tt.req); got != tt.want {
			t.Errorf("%.30q:\n got %q\nwant %q", tt.req, got, tt.want)
		}
	}
}

// TestVersionMismatch serves a future protocol version by hand: the client
// says which versions do not match.
func TestVersionMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "future.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Read(make([]byte, 256))
		c.Write([]byte(`{"error":"version mismatch","protocol":2}` + "\n"))
	}()
	_, err = Fetch(context.Background(), path, "snapshot")
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Ours != 1 || ve.Theirs != 2 {
		t.Errorf("error %v, want a VersionError 1 vs 2", err)
	}
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := serve(t)
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "another snowsignal is running") {
		t.Fatalf("second Listen: %v, want a refusal", err)
	}
	// The first relay still answers.
	if _, err := Fetch(context.Background(), path, "snapshot"); err != nil {
		t.Errorf("after refused Listen: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	// A socket file nobody listens on, as a killed relay leaves it.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)

	_, err = Fetch(context.Background(), path, "snapshot")
	if want := "is snowsignal running? socket " + path + ": connection refused"; err == nil || err.Error() != want {
		t.Errorf("Fetch on stale socket: %v, want %q", err, want)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestListenRefusesOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("the file was touched")
	}
}

func TestDialErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	_, err := Fetch(context.Background(), missing, "snapshot")
	if want := "is snowsignal running? socket " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing socket: %v, want %q", err, want)
	}
	// Root passes permission checks, so build the error the kernel gives
	// anyone else.
	denied := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	want := "socket /run/x.sock: permission denied (it is mode 0660: run as root or as a member of its group)"
	if got := dialError("/run/x.sock", denied); got.Error() != want {
		t.Errorf("permission: %q, want %q", got, want)
	}
}
