package main

import "errors"

// DemoCmd shows two relays at work in a lab of network namespaces.
type DemoCmd struct{}

// Run builds the lab, relays a few broadcasts and tears the lab down.
func (DemoCmd) Run() error { return errors.New("demo: not built yet") }
