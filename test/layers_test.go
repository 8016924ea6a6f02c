package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The layer rule of docs/ARCHITECTURE.md: cmd → assembly → stages → pipeline
// → netio, nothing points up. Each of our packages has a layer; a package
// may import packages of its own layer only where sameLayerOK says so, and
// of lower layers freely.
const module = "github.com/snowsignal/snowsignal"

// layer returns the floor of one of our packages, 0 being the bottom, and
// its group: two packages of one floor and group may import each other.
func layer(pkg string) (floor int, group string) {
	rel := strings.TrimPrefix(pkg, module+"/")
	top, rest, _ := strings.Cut(rel, "/")
	switch top {
	case "netio":
		return 0, "netio"
	case "pipeline":
		return 1, "pipeline"
	case "stages":
		if strings.HasPrefix(rest, "shared/") || rest == "shared" {
			return 2, "shared" // state and rules the actors share
		}
		actor, _, _ := strings.Cut(rest, "/")
		return 3, "stages/" + actor // an actor: imports no other actor
	case "cmd":
		switch {
		case strings.HasPrefix(rest, "snowsignal/readout"):
			return 4, "readout"
		case strings.HasPrefix(rest, "snowsignal/assembly"):
			return 5, "assembly"
		case rest == "snowsignal":
			return 7, "cmd"
		default:
			return 6, "cmd-parts" // the demo and other parts of the command
		}
	case "test":
		return 8, "test"
	}
	return -1, ""
}

// violation says what is wrong with pkg importing imp, or "" if nothing.
func violation(pkg, imp string) string {
	if !strings.HasPrefix(imp, module+"/") {
		return ""
	}
	floor, group := layer(pkg)
	f, g := layer(imp)
	switch {
	case f > floor:
		return "points up"
	case f == floor && g != group:
		return "sideways (a stage never imports another stage)"
	}
	return ""
}

// TestLayerRule: the rule itself, on imports that must and must not pass.
func TestLayerRule(t *testing.T) {
	for _, tc := range []struct {
		pkg, imp string
		bad      bool
	}{
		{"stages/capture", "pipeline", false},
		{"stages/capture", "netio/rawsock", false},
		{"stages/rewrite", "stages/shared/rules", false},
		{"stages/shared/rules", "stages/shared/dedup", false},
		{"cmd/snowsignal", "cmd/snowsignal/assembly", false},
		{"cmd/snowsignal/assembly", "stages/capture", false},
		{"cmd/snowsignal/assembly", "cmd/snowsignal/readout", false},
		{"test/bench", "cmd/snowsignal/labrelay", false},
		{"netio/meshconn", "netio/mmsg", false},
		{"netio/mmsg", "pipeline", true},
		{"netio/frame", "stages/shared/rules", true},
		{"pipeline", "stages/capture", true},
		{"stages/rewrite", "stages/filter", true},
		{"stages/shared/rules", "stages/filter", true},
		{"stages/capture", "cmd/snowsignal/assembly", true},
		{"cmd/snowsignal/readout", "cmd/snowsignal/assembly", true},
		{"cmd/snowsignal/assembly", "test/harness", true},
	} {
		v := violation(module+"/"+tc.pkg, module+"/"+tc.imp)
		if (v != "") != tc.bad {
			t.Errorf("%s -> %s: violation %q, want bad=%v", tc.pkg, tc.imp, v, tc.bad)
		}
	}
}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func goList(t *testing.T, args ...string) []listed {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listed
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestLayers fails on an import that points up or sideways between actors,
// on netio importing anything of ours outside netio, and on the shipped
// binary linking package testing or anything under test/.
func TestLayers(t *testing.T) {
	for _, p := range goList(t, "./...") {
		if floor, _ := layer(p.ImportPath); floor < 0 {
			t.Errorf("%s: not in any layer of docs/ARCHITECTURE.md", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if v := violation(p.ImportPath, imp); v != "" {
				t.Errorf("%s imports %s: %s", p.ImportPath, imp, v)
			}
		}
	}
	for _, p := range goList(t, "-deps", "./cmd/snowsignal") {
		if p.ImportPath == "testing" || strings.HasPrefix(p.ImportPath, module+"/test") {
			t.Errorf("the snowsignal binary links %s", p.ImportPath)
		}
	}
}
