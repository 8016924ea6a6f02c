// Command snowsignal relays UDP broadcasts (EPICS PVAccess and Channel Access
// searches) between network segments over a mesh of relays.
//
//	snowsignal [run] [flags]    relay (the default command)
//	snowsignal version          print version, commit and Go version
//	snowsignal demo             show the relay at work in network namespaces
//	snowsignal stats            show a running relay's counters
//	snowsignal health           exit 0 if a running relay is healthy
//	snowsignal doctor [flags]   check this host and the peers for what the relay needs
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/alecthomas/kong"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// CLI is the command line.
type CLI struct {
	Run     RunCmd     `cmd:"" default:"withargs" help:"Relay UDP broadcasts across the mesh (the default command)."`
	Version VersionCmd `cmd:"" help:"Print version, commit and Go version."`
	Demo    DemoCmd    `cmd:"" help:"Build a two-segment lab in network namespaces and show two relays at work (root)."`
	Stats   StatsCmd   `cmd:"" help:"Show a running relay's counters (stages, links, drops, peers, EPICS searches)."`
	Health  HealthCmd  `cmd:"" help:"Exit 0 if a running relay is healthy (every stage running, capture up), 1 with the reason if not."`
	Doctor  DoctorCmd  `cmd:"" help:"Check what the relay needs from this host and its peers: one line per check, ok, warn or FAIL with the fix; exit 1 if any fails."`
}

// VersionCmd prints build information.
type VersionCmd struct{}

// Run prints the version line.
func (VersionCmd) Run(o *stdio) error {
	fmt.Fprintf(o.Out, "snowsignal %s (commit %s, %s, %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// stdio is where commands write, bound into every command's Run method by
// kong so tests can capture the output.
type stdio struct {
	Out, Err io.Writer
}

// exitCode carries kong's requested exit status (after --help) out of
// Parse by panic, so that help never falls through to running a command.
type exitCode int

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// parse parses args (after normalizeArgs) into cli. A nil context with a
// nil error means kong printed help and nothing must run; code is then the
// exit status kong asked for.
func parse(cli *CLI, args []string, stdout, stderr io.Writer) (kctx *kong.Context, code int, err error) {
	parser, err := kong.New(cli,
		kong.Name("snowsignal"),
		kong.Description(description),
		kong.ExplicitGroups(flagGroups),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Bind(&stdio{Out: stdout, Err: stderr}),
		// kong calls Exit after printing help; returning from it would let
		// Parse go on and run the default command.
		kong.Exit(func(c int) { panic(exitCode(c)) }),
	)
	if err != nil {
		return nil, 2, err
	}
	clearEmptyEnv(parser.Model.Node)
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			kctx, code, err = nil, int(c), nil
		}
	}()
	kctx, err = parser.Parse(normalizeArgs(args))
	if err != nil {
		return nil, 2, err
	}
	return kctx, 0, nil
}

// run parses args and runs the chosen command, writing to stdout and
// stderr, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	var cli CLI
	kctx, code, err := parse(&cli, args, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "snowsignal: error: %v\n", err)
		return 2
	}
	if kctx == nil {
		return code // help was printed
	}
	if err := kctx.Run(); err != nil {
		if e, ok := errors.AsType[errExit](err); ok {
			return int(e) // the command printed why
		}
		fmt.Fprintf(stderr, "snowsignal: error: %v\n", err)
		return 1
	}
	return 0
}
