// Package metricsserver serves a relay's HTTP endpoints (/metrics for
// Prometheus, /healthz for probes) as a supervised stage.
package metricsserver

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// shutdownTimeout bounds how long a stopping server waits for scrapes in
// progress; a SIGTERM must end the relay within a second.
const shutdownTimeout = 300 * time.Millisecond

// A Stage serves an http.Handler until its context is done.
type Stage struct {
	addr string
	h    http.Handler
	log  zerolog.Logger

	mu sync.Mutex
	ln net.Listener // opened at start and not yet served; nil once taken
}

// Listen opens the TCP listener for addr (HOST:PORT), so that an address in
// use is an error at start rather than a failing stage.
func Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

// New returns a stage serving h on ln; after a failure it listens on ln's
// address again.
func New(ln net.Listener, h http.Handler, log zerolog.Logger) *Stage {
	return &Stage{addr: ln.Addr().String(), h: h, ln: ln,
		log: log.With().Str("stage", "metrics").Str("address", ln.Addr().String()).Logger()}
}

// Addr is the address the stage serves on.
func (s *Stage) Addr() string { return s.addr }

// Close closes the listener opened at start if the stage never served it.
func (s *Stage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	s.ln = nil
	return err
}

// Run serves until ctx is done, then shuts the server down, waiting briefly
// for requests in progress.
func (s *Stage) Run(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.mu.Unlock()
	if ln == nil {
		var err error
		if ln, err = Listen(s.addr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           s.h,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          log.New(s.log, "", 0),
	}
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	})
	s.log.Info().Msg("serving metrics")
	err := srv.Serve(ln) // closes ln
	if !stop() {
		<-stopped // shutting down: wait until it is done
		return ctx.Err()
	}
	srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return ctx.Err()
	}
	return fmt.Errorf("metrics: %w", err)
}
