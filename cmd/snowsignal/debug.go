package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// serveDebug serves Go's profiling endpoints (net/http/pprof) on addr until
// ctx is done, for `go tool pprof http://ADDR/debug/pprof/profile`. The
// handlers live on a mux of their own: importing net/http/pprof also
// registers them on http.DefaultServeMux, which nothing here serves.
func serveDebug(ctx context.Context, addr string, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-address: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) // returns once Close has run
	context.AfterFunc(ctx, func() { srv.Close() })
	// Profiles expose the command line and cost CPU while taken: say so.
	log.Warn().Str("address", ln.Addr().String()).Msg("serving profiles (--debug-address); for debugging only")
	return nil
}
