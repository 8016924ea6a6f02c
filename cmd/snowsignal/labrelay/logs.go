package labrelay

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ErrExited is returned by WaitLog when the relay has exited and no line it
// wrote matches.
var ErrExited = errors.New("labrelay: relay exited")

// maxLine bounds one log line. zerolog lines are short; this only guards
// against a runaway writer.
const maxLine = 1 << 20

// logBuffer holds the lines a process wrote, in order. Its methods are
// safe for concurrent use.
type logBuffer struct {
	mu      sync.Mutex
	raw     []string
	entries []map[string]any
	changed chan struct{} // closed and replaced on every new line and at EOF
	eof     bool
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

// readFrom appends the lines of r until EOF (or a read error), calling
// echo, if set, with each line.
func (b *logBuffer) readFrom(r io.Reader, echo func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Text()
		if echo != nil {
			echo(line)
		}
		b.add(line)
	}
	b.mu.Lock()
	b.eof = true
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *logBuffer) add(line string) {
	e := parseLine(line)
	b.mu.Lock()
	b.raw = append(b.raw, line)
	b.entries = append(b.entries, e)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// parseLine decodes a zerolog JSON line, or wraps any other line as
// {"raw": line}.
func parseLine(line string) map[string]any {
	var e map[string]any
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &e) == nil {
		return e
	}
	return map[string]any{"raw": line}
}

// entries returns a copy of the parsed lines.
func (b *logBuffer) all() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]map[string]any, len(b.entries))
	copy(out, b.entries)
	return out
}

// text returns every line, each ending in a newline.
func (b *logBuffer) text() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, l := range b.raw {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// wait returns the first line (counting from the first ever written) that
// match accepts. It gives up after timeout, or with ErrExited once the
// writer has closed its end and no line matched.
func (b *logBuffer) wait(match func(map[string]any) bool, timeout time.Duration) (map[string]any, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0
	for {
		b.mu.Lock()
		entries, eof, changed := b.entries[next:], b.eof, b.changed
		next = len(b.entries)
		b.mu.Unlock()
		for _, e := range entries {
			if match(e) {
				return e, nil
			}
		}
		if eof {
			return nil, ErrExited
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("labrelay: no matching log line within %s", timeout)
		}
	}
}

// Msg returns a matcher for WaitLog: a JSON log line with this message
// and, for each key/value pair in kv, a string field key equal to value.
//
//	r.WaitLog(harness.Msg("capturing", "stage", "capture"), time.Second)
func Msg(message string, kv ...string) func(map[string]any) bool {
	if len(kv)%2 != 0 {
		panic("labrelay.Msg: odd number of key/value strings")
	}
	return func(e map[string]any) bool {
		if e["message"] != message {
			return false
		}
		for i := 0; i < len(kv); i += 2 {
			if s, ok := e[kv[i]].(string); !ok || s != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// Level returns a matcher for WaitLog: a JSON log line at one of the
// levels (zerolog names: "debug", "info", "warn", "error", "fatal").
func Level(levels ...string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		s, _ := e["level"].(string)
		for _, l := range levels {
			if s == l {
				return true
			}
		}
		return false
	}
}
