package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/demo"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/labrelay"
)

// DemoCmd shows two relays at work in a lab of network namespaces.
type DemoCmd struct {
	Verbose     bool   `short:"v" help:"Also print the relays' log lines as they come."`
	IPv6        bool   `name:"ipv6" help:"Also give the lab IPv6 (ULA) addresses and relay IPv6 searches to ff02::1 (--ipv6)."`
	RelayBinary string `hidden:"" type:"path" placeholder:"PATH" help:"snowsignal binary the relays run (default: this program)."`
}

// Run builds the lab, relays a few broadcasts and tears the lab down,
// also on Ctrl-C.
func (d DemoCmd) Run(o *stdio) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin := d.RelayBinary
	if bin == "" {
		var err error
		if bin, err = labrelay.BinaryPath(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	err := demo.Run(ctx, o.Out, bin, demo.Options{Verbose: d.Verbose, IPv6: d.IPv6})
	if ctx.Err() != nil {
		return errors.Join(errors.New("demo: interrupted"), err)
	}
	return err
}
