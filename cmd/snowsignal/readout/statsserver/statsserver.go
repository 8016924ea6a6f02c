//go:build linux

// Package statsserver serves a relay's statistics on a unix socket, for
// `snowsignal stats` and `snowsignal health`, and is the client they use.
//
// The protocol is one request, one answer: the client connects, sends one
// line, "SNOWSIGNAL-STATS <version> <verb>\n" (version is Version, verb is
// e.g. "snapshot"), and the server answers with one JSON document and a
// newline, then closes the connection. A request it cannot serve gets
// {"error": "...", "protocol": Version}. Nothing else is ever sent, so any
// language can speak it: `echo 'SNOWSIGNAL-STATS 1 snapshot' | socat - UNIX:PATH`.
package statsserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Version is the protocol version this package speaks.
const Version = 1

// magic starts every request line.
const magic = "SNOWSIGNAL-STATS"

// Limits that keep a misbehaving client from holding the server.
const (
	maxRequest  = 256             // bytes in a request line
	maxAnswer   = 64 << 20        // bytes a client accepts in an answer
	ioTimeout   = 2 * time.Second // to read a request or write an answer
	maxInFlight = 8               // connections served at once; more are refused
)

// Mode is the stats socket's permission bits: the owner (root, normally) and
// its group may query it.
const Mode = 0o660

// A Handler answers verb with a value to encode as JSON, or an error.
type Handler func(verb string) (any, error)

// Listen creates the unix socket at path, with mode Mode, creating its
// directory if needed. A socket left behind by a process that died is
// replaced; a socket another process still answers on is not (two relays
// cannot share one path), nor is a file that is not a socket.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create its directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; not replacing it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another snowsignal is running and answers on %s", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("check existing socket: %w", err)
		}
		// Nobody listens: a crashed run left it.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Close unlinks the path (the net package does for listeners it
	// created), so a clean exit leaves nothing behind.
	if err := os.Chmod(path, Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod: %w", err)
	}
	return ln, nil
}

// A Stage serves requests on a listener until its context is done. It does
// not close the listener: the relay does, once, at the very end, so a
// restarted stage serves on the same socket.
type Stage struct {
	ln  *net.UnixListener
	h   Handler
	log zerolog.Logger
}

// New returns a stage serving h on ln.
func New(ln *net.UnixListener, h Handler, log zerolog.Logger) *Stage {
	return &Stage{ln: ln, h: h, log: log.With().Str("stage", "stats").Str("socket", ln.Addr().String()).Logger()}
}

// Run accepts and answers connections until ctx is done.
func (s *Stage) Run(ctx context.Context) error {
	// Unblock Accept with a deadline, not Close: the listener outlives
	// this run of the stage.
	if err := s.ln.SetDeadline(time.Time{}); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxInFlight)
	s.log.Debug().Msg("serving stats")
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("stats socket: accept: %w", err)
		}
		select {
		case sem <- struct{}{}:
		default:
			s.answer(c, nil, errors.New("busy: too many requests at once"))
			c.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s.serve(c)
		})
	}
}

// serve answers one connection.
func (s *Stage) serve(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReaderSize(&limitReader{c, maxRequest}, maxRequest).ReadString('\n')
	if err != nil {
		s.log.Debug().Err(err).Msg("stats request not read")
		return
	}
	verb, err := parseRequest(line)
	if err != nil {
		s.answer(c, nil, err)
		return
	}
	v, err := s.h(verb)
	s.answer(c, v, err)
}

// answer writes v, or err as {"error": ...}, as one JSON line.
func (s *Stage) answer(c net.Conn, v any, err error) {
	if err != nil {
		v = errorAnswer{Error: err.Error(), Version: Version}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(errorAnswer{Error: "encode answer: " + err.Error(), Version: Version})
	}
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(append(b, '\n')); err != nil {
		s.log.Debug().Err(err).Msg("stats answer not sent")
	}
}

// errorAnswer is what the server sends instead of an answer.
type errorAnswer struct {
	Error   string `json:"error"`
	Version int    `json:"protocol"`
}

// VersionError is a request or an answer in another protocol version.
type VersionError struct {
	Ours, Theirs int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("version mismatch: this snowsignal speaks stats protocol %d, the relay %d (use the snowsignal binary the relay runs)", e.Ours, e.Theirs)
}

// parseRequest returns the verb of a request line.
func parseRequest(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != magic {
		return "", fmt.Errorf("bad request %q (want %q)", strings.TrimSpace(line), magic+" "+strconv.Itoa(Version)+" snapshot")
	}
	v, err := strconv.Atoi(f[1])
	if err != nil || v != Version {
		return "", &VersionError{Ours: Version, Theirs: v}
	}
	return f[2], nil
}

// Request returns the request line for verb.
func Request(verb string) string { return magic + " " + strconv.Itoa(Version) + " " + verb + "\n" }

// limitReader reads at most n bytes.
type limitReader struct {
	c net.Conn
	n int
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request line too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}
