package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHelpReadsLikeDocumentation: the help of the top level and of each
// command has examples, the run flags come in titled groups, and every
// flag with an environment variable shows it beside its description.
func TestHelpReadsLikeDocumentation(t *testing.T) {
	cleanEnv(t)
	_, top, _ := runCLI("--help")
	for _, want := range []string{"Examples:", "snowsignal doctor -t eth0", "set but empty counts as unset", "doctor [flags]"} {
		if !strings.Contains(top, want) {
			t.Errorf("snowsignal --help lacks %q:\n%s", want, top)
		}
	}
	for _, cmd := range []string{"run", "doctor"} {
		_, out, _ := runCLI(cmd, "--help")
		for _, want := range []string{"Examples:", "Interface and ports:", "Peers and mesh:", "Loops, limits and performance:", "Logging and observability:"} {
			if !strings.Contains(out, want) {
				t.Errorf("snowsignal %s --help lacks %q:\n%s", cmd, want, out)
			}
		}
		// kong wraps the text: compare without line breaks and indentation.
		flat := strings.Join(strings.Fields(out), " ")
		rt := reflect.TypeFor[RunCmd]()
		for i := range rt.NumField() {
			f := rt.Field(i)
			env := f.Tag.Get("env")
			_, hidden := f.Tag.Lookup("hidden")
			if env == "" || hidden {
				continue
			}
			if f.Tag.Get("group") == "" {
				t.Errorf("flag %s has no group", f.Name)
			}
			if !strings.Contains(flat, "($"+env+")") {
				t.Errorf("snowsignal %s --help does not show $%s beside its flag", cmd, env)
			}
		}
	}
	for _, cmd := range []string{"stats", "health", "demo"} {
		if _, out, _ := runCLI(cmd, "--help"); !strings.Contains(out, "Examples:") {
			t.Errorf("snowsignal %s --help has no examples:\n%s", cmd, out)
		}
	}
	_, out, _ := runCLI("doctor", "--help")
	for _, want := range []string{"Doctor:", "--json", "--sample", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("snowsignal doctor --help lacks %q", want)
		}
	}
}

// TestEmptyEnvIsUnset: a variable set but empty (DISCOVERY_INTERVAL= in a
// compose file) takes the flag's default instead of failing to parse, except
// STATS_SOCKET, where empty means off.
func TestEmptyEnvIsUnset(t *testing.T) {
	cleanEnv(t, "DISCOVERY_INTERVAL", "", "RATE_LIMIT", "", "LOGLEVEL", "", "LOCAL_DELIVERY", "",
		"REBROADCAST_DESTINATION", "", "MESH_PORT", "", "STATS_SOCKET", "")
	c := parseRun(t, "--other-relays", "10.0.0.2")
	if c.DiscoveryInterval != 10*time.Second || c.RateLimit != 0 || c.LogLevel != "info" || !c.LocalDelivery ||
		c.RebroadcastDestination != "auto" || c.MeshPort != 7124 {
		t.Errorf("empty variables: %+v; want the defaults", c)
	}
	if c.StatsSocket != "" {
		t.Errorf("STATS_SOCKET= gave %q; want empty (off)", c.StatsSocket)
	}
}
