// Package harness holds the test-only helpers around cmd/snowsignal/labrelay:
// building the binary once per test process, and starting relays that stop
// when the test ends.
//
//	bin := harness.Binary(t) // go build ./cmd/snowsignal, once per process
//	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
//	a := harness.StartT(t, bin, l.Host("relay-a"), "--other-relays", "10.77.0.2")
//	b := harness.StartT(t, bin, l.Host("relay-b"), "--other-relays", "10.77.0.1")
//	// ... send broadcasts from l.Host("client"), receive on l.Host("server")
//	if err := a.Stop(); err != nil { // SIGTERM; nil means exit status 0
//		t.Error(err)
//	}
//
// StartT copies a failed test's relay output into the test log. Outside
// tests (a benchmark's setup), use labrelay.Start and Build, which return
// errors instead of failing a test.
package harness
