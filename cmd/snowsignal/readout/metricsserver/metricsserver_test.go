package metricsserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServeAndStop serves on a unix socket (no network traffic), answers a
// request, and on cancel returns context.Canceled with no goroutine left.
func TestServeAndStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	st := New(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics "+r.URL.Path) }), zerolog.Nop())
	if st.Addr() != path {
		t.Errorf("Addr() = %q, want %q", st.Addr(), path)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()

	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := c.Get("http://relay/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if string(b) != "metrics /metrics" {
		t.Errorf("body %q", b)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := st.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
}

// TestCloseUnserved closes a listener the stage never served.
func TestCloseUnserved(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "m.sock"))
	if err != nil {
		t.Fatal(err)
	}
	st := New(ln, http.NotFoundHandler(), zerolog.Nop())
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("listener still open")
	}
}
