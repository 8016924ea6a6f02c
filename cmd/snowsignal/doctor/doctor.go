// Package doctor checks what a relay needs from its host and its peers, and
// says, for each check, ok, warn or FAIL, with the cause in words and the
// fix: `snowsignal doctor`. Each check is a small function of system facts
// (Facts), so that it can be tested without root; Host returns the facts of
// the machine it runs on.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Status is a check's verdict.
type Status int

// Verdicts, from good to bad.
const (
	OK Status = iota
	Warn
	Fail
)

// String returns "ok", "warn" or "FAIL", as printed.
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	}
	return "FAIL"
}

// MarshalText makes a Status "ok", "warn" or "fail" in JSON.
func (s Status) MarshalText() ([]byte, error) {
	if s == Fail {
		return []byte("fail"), nil
	}
	return []byte(s.String()), nil
}

// A Result is one check's verdict, printed as one line:
//
//	STATUS CHECK: MESSAGE — fix: FIX
type Result struct {
	// Check names the group of checks, e.g. "capability", "interface",
	// "peer 10.0.0.2:7124"; stable for scripts.
	Check string `json:"check"`
	// Status is ok, warn or fail.
	Status Status `json:"status"`
	// Message is what was found, and for warn and fail why it matters.
	Message string `json:"message"`
	// Fix is the flag, sysctl or command that fixes a warn or fail.
	Fix string `json:"fix,omitempty"`
}

func ok(check, format string, a ...any) Result {
	return Result{Check: check, Status: OK, Message: fmt.Sprintf(format, a...)}
}

func warn(check, fix, format string, a ...any) Result {
	return Result{Check: check, Status: Warn, Message: fmt.Sprintf(format, a...), Fix: fix}
}

func fail(check, fix, format string, a ...any) Result {
	return Result{Check: check, Status: Fail, Message: fmt.Sprintf(format, a...), Fix: fix}
}

// Line returns the result as doctor prints it.
func (r Result) Line() string {
	s := fmt.Sprintf("%-4s %s: %s", r.Status, r.Check, r.Message)
	if r.Fix != "" {
		s += " — fix: " + r.Fix
	}
	return s
}

// Config is what the relay would run with: the run command's flags, checked
// and turned into values.
type Config struct {
	Interface      string
	BroadcastPorts []uint16
	MeshPort       uint16
	MeshBind       netip.Addr // invalid: 0.0.0.0
	// Peers are --other-relays: addresses or names; Discover the DNS names
	// whose addresses are peers (--discover, SERVICENAME).
	Peers, Discover []string
	// MeshKeys are the --mesh-key-file keys, sending key first.
	MeshKeys      [][]byte
	LocalDelivery bool
	AcceptAnyPeer bool
	StatsSocket   string
	// Sample is how long to watch a running relay's counters for drops that
	// move; ProbeTimeout how long to wait for a peer's answer.
	Sample, ProbeTimeout time.Duration
	// Version is this binary's version.
	Version string
}

// A Report is every result, in the order the checks ran.
type Report struct {
	// Version is the doctor's snowsignal version.
	Version string `json:"version"`
	// Failed reports whether any result is fail: the exit status is 1.
	Failed  bool     `json:"failed"`
	Results []Result `json:"results"`
}

func (r *Report) add(rs ...Result) {
	for _, x := range rs {
		r.Results = append(r.Results, x)
		r.Failed = r.Failed || x.Status == Fail
	}
}

// WriteText prints one line per result.
func (r *Report) WriteText(w io.Writer) error {
	for _, x := range r.Results {
		if _, err := fmt.Fprintln(w, x.Line()); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// Run runs every check against cfg with the facts f and returns the report.
// When a relay answers on cfg.StatsSocket, its counters are read twice,
// cfg.Sample apart (the other checks run in between).
func Run(ctx context.Context, cfg Config, f Facts) *Report {
	rep := &Report{Version: cfg.Version}
	start := time.Now()
	first, relayErr := f.snapshot(ctx, cfg.StatsSocket)
	running := relayErr == nil
	rep.add(checkRelayRunning(cfg.StatsSocket, first, relayErr))

	rep.add(checkCapNetRaw(f.Capabilities()))
	info, err := f.Interface(cfg.Interface)
	rep.add(checkInterface(cfg.Interface, info, err, f.InterfaceNames)...)
	rep.add(checkRPFilter(cfg.Interface, cfg.LocalDelivery, f.Sysctl)...)
	rep.add(checkMeshPort(cfg, f.BindUDP, first))
	bound, berr := f.BoundUDP(cfg.BroadcastPorts)
	rep.add(checkBroadcastPorts(cfg, bound, berr, running)...)
	rep.add(checkFirewall(cfg, f.Firewall, f.LegacyIPTables)...)
	mtu := 0
	if info != nil {
		mtu = info.MTU
	}
	rep.add(checkPeers(ctx, cfg, f, mtu)...)

	if running {
		if wait := cfg.Sample - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		second, err := f.snapshot(ctx, cfg.StatsSocket)
		if err != nil {
			rep.add(fail("relay", "", "the stats socket %s stopped answering: %v", cfg.StatsSocket, err))
		} else {
			rep.add(checkRunning(first, second)...)
		}
	}
	return rep
}
