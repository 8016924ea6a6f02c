//go:build linux

package statsserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Fetch asks the relay at the socket path for verb and returns its JSON
// answer. Errors say what to do: no relay listening, no permission, another
// protocol version, or the relay's own error.
func Fetch(ctx context.Context, path, verb string) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(path, err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, Request(verb)); err != nil {
		return nil, fmt.Errorf("socket %s: send request: %w", path, err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxAnswer)).ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil, fmt.Errorf("socket %s: the relay closed the connection without answering", path)
		}
		return nil, fmt.Errorf("socket %s: read answer: %w", path, err)
	}
	var e errorAnswer
	if err := json.Unmarshal(line, &e); err != nil {
		return nil, fmt.Errorf("socket %s: answer is not JSON: %w", path, err)
	}
	if e.Error != "" {
		if e.Version != Version {
			return nil, &VersionError{Ours: Version, Theirs: e.Version}
		}
		return nil, fmt.Errorf("relay at %s: %s", path, e.Error)
	}
	return json.RawMessage(line), nil
}

// dialError explains a failed connection.
func dialError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("is snowsignal running? socket %s: %w", path, errno(err))
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("socket %s: %w (it is mode 0660: run as root or as a member of its group)", path, errno(err))
	}
	return fmt.Errorf("socket %s: %w", path, err)
}

// errno returns the system error inside err, whose text ("connection
// refused") reads better than the whole dial error.
func errno(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}
