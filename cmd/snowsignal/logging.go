package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// levels maps the Python relay's level names to zerolog's. Python's
// CRITICAL sits above ERROR; zerolog's nearest is fatal.
var levels = map[string]zerolog.Level{
	"debug":    zerolog.DebugLevel,
	"info":     zerolog.InfoLevel,
	"warning":  zerolog.WarnLevel,
	"error":    zerolog.ErrorLevel,
	"critical": zerolog.FatalLevel,
}

// newLogger returns the process logger: JSON lines with the keys time,
// level and message (what Loki's json parser expects), or a human console
// format when asked or when w is a terminal.
func newLogger(w *os.File, level, format string) zerolog.Logger {
	// Sub-second timestamps: relay events happen microseconds apart. This is
	// zerolog's process-wide setting, set once here at start.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var out io.Writer = w
	if format == "console" || (format == "auto" && isTerminal(w)) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	lvl, ok := levels[level]
	if !ok {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
