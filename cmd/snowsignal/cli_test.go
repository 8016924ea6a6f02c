package main

import (
	"bytes"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// Environment variables the run command reads. Tests clear them all, so
// the environment of whoever runs the tests cannot change the results.
var runEnv = []string{
	"TARGET_INTERFACE", "BDCAST_PORT", "MESH_PORT", "OTHER_RELAYS", "LOGLEVEL", "LOG_FORMAT",
	"DISCOVER", "SERVICENAME", "DISCOVERY_INTERVAL", "REBROADCAST_DESTINATION", "DEDUP_WINDOW",
	"HELLO_INTERVAL", "ACCEPT_ANY_PEER", "MESH_KEY_FILE", "LOCAL_DELIVERY", "WAIT_FOR_INTERFACE", "INJECT_MARK",
	"COALESCE", "MAX_DELAY", "QUEUE_TARGET", "QUEUE_INTERVAL", "IPV6", "IPV6_GROUPS",
	"MESH_IPV6",
}

// cleanEnv unsets every variable of runEnv for the test, then sets kv
// (KEY, value, KEY, value, ...).
func cleanEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, k := range runEnv {
		t.Setenv(k, "") // registers the restore
	}
	for _, k := range runEnv {
		// t.Setenv has no unset; the restore it registered still applies.
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

// parseRun parses args as the command line and returns the run command's
// flags; it fails the test unless run was selected without error.
func parseRun(t *testing.T, args ...string) RunCmd {
	t.Helper()
	var cli CLI
	var out, errOut bytes.Buffer
	kctx, _, err := parse(&cli, args, &out, &errOut)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if kctx == nil || kctx.Command() != "run" {
		t.Fatalf("parse %q: command %v, want run", args, kctx)
	}
	return cli.Run
}

// runCLI runs the command line and returns its exit code and output.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestPrecedence: for every flag/environment pair, the flag beats the
// environment variable, which beats the default.
func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     string
		envVal  string
		flag    []string
		get     func(RunCmd) any
		def     any
		fromEnv any
		extra   []string // another spelling of the flag, if any
		want    any
	}{
		{"target-interface", "TARGET_INTERFACE", "env0", []string{"-t", "flag0"},
			func(c RunCmd) any { return c.TargetInterface }, "eth0", "env0", []string{"--target-interface", "flag0"}, "flag0"},
		{"broadcast-port", "BDCAST_PORT", "5064", []string{"-b", "5065"},
			func(c RunCmd) any { return c.BroadcastPort }, []string{"5076"}, []string{"5064"}, []string{"--broadcast-port", "5065"}, []string{"5065"}},
		{"mesh-port", "MESH_PORT", "7200", []string{"-m", "7300"},
			func(c RunCmd) any { return c.MeshPort }, 7124, 7200, []string{"--mesh-port", "7300"}, 7300},
		{"other-relays", "OTHER_RELAYS", "env1 env2", []string{"--other-relays", "flag1"},
			func(c RunCmd) any { return c.OtherRelays }, []string(nil), []string{"env1 env2"}, []string{"--other-relays=flag1"}, []string{"flag1"}},
		{"log-level -l", "LOGLEVEL", "debug", []string{"-l", "warning"},
			func(c RunCmd) any { return c.LogLevel }, "info", "debug", []string{"--log-level", "warning"}, "warning"},
		{"log-level -ll", "LOGLEVEL", "debug", []string{"-ll", "error"},
			func(c RunCmd) any { return c.LogLevel }, "info", "debug", []string{"-ll=error"}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			if got := tc.get(parseRun(t)); !reflect.DeepEqual(got, tc.def) {
				t.Errorf("default: %#v, want %#v", got, tc.def)
			}
			t.Setenv(tc.env, tc.envVal)
			if got := tc.get(parseRun(t)); !reflect.DeepEqual(got, tc.fromEnv) {
				t.Errorf("%s=%s: %#v, want %#v", tc.env, tc.envVal, got, tc.fromEnv)
			}
			for _, flag := range [][]string{tc.flag, tc.extra} {
				if got := tc.get(parseRun(t, flag...)); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s=%s and %q: %#v, want %#v", tc.env, tc.envVal, flag, got, tc.want)
				}
				if got := tc.get(parseRun(t, append([]string{"run"}, flag...)...)); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s=%s and run %q: %#v, want %#v", tc.env, tc.envVal, flag, got, tc.want)
				}
			}
		})
	}
}

// TestRunIsTheDefaultCommand: the Python relay's invocation parses exactly
// as the explicit run command with long flags.
func TestRunIsTheDefaultCommand(t *testing.T) {
	cleanEnv(t)
	short := parseRun(t, "--other-relays", "a", "b", "-ll", "debug")
	long := parseRun(t, "run", "--other-relays", "a", "b", "--log-level", "debug")
	if !reflect.DeepEqual(short, long) {
		t.Errorf("snowsignal --other-relays a b -ll debug:\n%+v\nsnowsignal run --other-relays a b --log-level debug:\n%+v", short, long)
	}
	if short.LogLevel != "debug" || !reflect.DeepEqual(short.OtherRelays, []string{"a", "b"}) {
		t.Errorf("parsed %+v", short)
	}
}

// TestOtherRelaysForms: a space-separated list after one flag, commas, the
// flag repeated and the environment variable all give the same peers.
func TestOtherRelaysForms(t *testing.T) {
	want := []string{"10.0.0.2", "relay-b", "10.0.0.4"}
	for _, tc := range []struct {
		name string
		args []string
		env  string
	}{
		{"space list", []string{"--other-relays", "10.0.0.2", "relay-b", "10.0.0.4"}, ""},
		{"space list before another flag", []string{"--other-relays", "10.0.0.2", "relay-b", "10.0.0.4", "-m", "7124"}, ""},
		{"commas", []string{"--other-relays", "10.0.0.2,relay-b,10.0.0.4"}, ""},
		{"commas with =", []string{"--other-relays=10.0.0.2,relay-b,10.0.0.4"}, ""},
		{"repeated", []string{"--other-relays", "10.0.0.2", "-ll", "info", "--other-relays", "relay-b", "--other-relays=10.0.0.4"}, ""},
		{"mixed with duplicates", []string{"--other-relays", "10.0.0.2,relay-b", "10.0.0.2", "--other-relays", "10.0.0.4"}, ""},
		{"env with spaces", nil, "10.0.0.2 relay-b 10.0.0.4"},
		{"env with commas", nil, "10.0.0.2,relay-b,10.0.0.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t, "OTHER_RELAYS", tc.env)
			c := parseRun(t, append(tc.args, "-t", "lo")...)
			cfg, _, err := c.config()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Peers, want) {
				t.Errorf("peers %q, want %q", cfg.Peers, want)
			}
		})
	}
}

// TestRunErrors: every command-line error exits non-zero, names the flag
// and what is allowed, and starts nothing. Each case also names an
// interface that does not exist, so that a case that failed to trigger
// its error still stops at the interface check instead of relaying.
func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"unknown interface", []string{"-t", "nosuch0"}, nil, []string{"--target-interface", `"nosuch0"`, "lo"}},
		{"unknown interface from env", nil, []string{"TARGET_INTERFACE", "nosuch0"}, []string{"--target-interface", `"nosuch0"`, "lo"}},
		{"mesh port 0", []string{"-m", "0"}, nil, []string{"--mesh-port", "1-65535"}},
		{"mesh port 65536", []string{"--mesh-port", "65536"}, nil, []string{"--mesh-port", "1-65535"}},
		{"mesh port from env", nil, []string{"MESH_PORT", "99999"}, []string{"--mesh-port", "1-65535"}},
		{"mesh port not a number", []string{"-m", "abc"}, nil, []string{"--mesh-port"}},
		{"broadcast port 0", []string{"-b", "0"}, nil, []string{"--broadcast-port", "1-65535"}},
		{"broadcast port 70000", []string{"-b", "5076,70000"}, nil, []string{"--broadcast-port", "70000", "1-65535"}},
		{"broadcast port from env", nil, []string{"BDCAST_PORT", "70000"}, []string{"--broadcast-port", "1-65535"}},
		{"broadcast port not a number", []string{"-b", "pva"}, nil, []string{"--broadcast-port", `"pva"`}},
		{"broadcast port is the mesh port", []string{"-b", "7124"}, nil, []string{"--broadcast-port", "--mesh-port", "7124"}},
		{"mesh port is the broadcast port", []string{"-m", "5076"}, nil, []string{"--broadcast-port", "--mesh-port", "5076"}},
		{"same ports from env", nil, []string{"BDCAST_PORT", "7000", "MESH_PORT", "7000"}, []string{"--broadcast-port", "--mesh-port"}},
		{"unknown log level", []string{"-ll", "verbose"}, nil, []string{"--log-level", "debug", "info", "warning", "error", "critical", "verbose"}},
		{"unknown log level -l", []string{"-l", "trace"}, nil, []string{"--log-level", "critical", "trace"}},
		{"unknown log level from env", nil, []string{"LOGLEVEL", "WARN"}, []string{"--log-level", "warning"}},
		{"link-local IPv6 peer", []string{"--other-relays", "fe80::1"}, nil, []string{"--other-relays", "fe80::1", "link-local"}},
		{"IPv6 group site-scope", []string{"--ipv6", "--ipv6-group", "ff05::1"}, nil, []string{"--ipv6-group", "ff05::1", "not a link-scope", "ff02::/16"}},
		{"IPv6 groups from env without IPV6", nil, []string{"IPV6_GROUPS", "ff02::1"}, []string{"--ipv6-group", "without --ipv6"}},
		{"other-relays without a value", []string{"--other-relays"}, nil, []string{"--other-relays"}},
		{"coalesce 20ms", []string{"--coalesce", "20ms"}, nil, []string{"--coalesce", "20ms", "out of range", "0 to disable", "10ms"}},
		{"coalesce=-1ms", []string{"--coalesce=-1ms"}, nil, []string{"--coalesce", "-1ms", "out of range", "0 to disable", "10ms"}},
		// kong reads "-1ms" after a space as a short flag; its error names
		// the flag and suggests the "=" form.
		{"coalesce -1ms", []string{"--coalesce", "-1ms"}, nil, []string{"--coalesce", `--coalesce="-1ms"`}},
		{"coalesce from env", nil, []string{"COALESCE", "1s"}, []string{"--coalesce", "1s", "10ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t, tc.env...)
			args := tc.args
			if !strings.Contains(tc.name, "interface") {
				args = append([]string{"-t", "nosuch0"}, args...)
			}
			code, out, errOut := runCLI(args...)
			if code == 0 {
				t.Fatalf("exit status 0, want non-zero\nstdout: %s\nstderr: %s", out, errOut)
			}
			first := strings.SplitN(errOut, "\n", 2)[0] // the error; usage may follow
			if !strings.HasPrefix(first, "snowsignal: error: ") {
				t.Errorf("stderr does not start with the error: %q", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(first, w) {
					t.Errorf("error %q does not mention %q", first, w)
				}
			}
		})
	}
}

// TestVersion: `snowsignal version` prints the version, commit and Go
// version on stdout.
func TestVersion(t *testing.T) {
	code, out, errOut := runCLI("version")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{"snowsignal " + version, "commit " + commit, runtime.Version()} {
		if !strings.Contains(out, w) {
			t.Errorf("version output %q does not contain %q", out, w)
		}
	}
}

// TestHelpRunsNothing: --help prints usage and exits 0 without running
// the default command (whose config check would fail on the unknown
// interface).
func TestHelpRunsNothing(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{{"--help"}, {"-t", "nosuch0", "--help"}, {"run", "-t", "nosuch0", "--help"}} {
		code, out, errOut := runCLI(args...)
		if code != 0 || !strings.Contains(out, "Usage: snowsignal") || errOut != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and usage", args, code, out, errOut)
		}
	}
}
