// Command snowsignal relays UDP broadcasts (EPICS PVAccess and Channel Access
// searches) between network segments over a mesh of relays.
//
//	snowsignal [run] [flags]    relay (the default command)
//	snowsignal version          print version, commit and Go version
//	snowsignal demo             show the relay at work in network namespaces
package main

import (
	"fmt"
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
}

// VersionCmd prints build information.
type VersionCmd struct{}

// Run prints the version line.
func (VersionCmd) Run() error {
	fmt.Printf("snowsignal %s (commit %s, %s, %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs the chosen command, returning the exit code.
func run(args []string) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("snowsignal"),
		kong.Description("SnowSignal relays UDP broadcasts between network segments over a mesh of relays."),
		kong.UsageOnError(),
		kong.Exit(func(int) {}),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "snowsignal:", err)
		return 2
	}
	ctx, err := parser.Parse(normalizeArgs(args))
	if err != nil {
		fmt.Fprintf(os.Stderr, "snowsignal: error: %v\n", err)
		return 2
	}
	if ctx.Empty() {
		// --help or --version style output was printed and exit was suppressed.
		return 0
	}
	if err := ctx.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "snowsignal: error: %v\n", err)
		return 1
	}
	return 0
}
