package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Package path of the command Build compiles.
const cmdPackage = "github.com/snowsignal/snowsignal/cmd/snowsignal"

// buildDirPrefix starts the name of the folder Build writes the binary to;
// the owner's PID follows, so a later Build can remove what a dead process
// left behind (as lab.Sweep does for namespaces).
const buildDirPrefix = "snowsignal-harness-"

// build is the result of the one build per process. Building once matters:
// a test binary holds dozens of tests and `go build` takes seconds cold.
var build = sync.OnceValues(func() (string, error) {
	return buildOnce()
})

// Build compiles ./cmd/snowsignal of the module holding the working
// directory, once per process, into a temporary folder, and returns the
// binary's path. Later calls return the same path (or the same error). The
// binary is built with CGO_ENABLED=0, like the released static binary. The
// folder stays until the process exits; the next process to Build removes
// the folders of processes that have ended.
func Build() (string, error) { return build() }

// Binary is Build for tests and benchmarks: it fails t if the build fails.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatalf("build snowsignal: %v", err)
	}
	return bin
}

func buildOnce() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("harness: the working directory is not inside the snowsignal module")
	}
	sweepBuildDirs()
	dir, err := os.MkdirTemp("", buildDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	// Readable by all, so tests can run the binary as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("harness: %w", err)
	}
	bin := filepath.Join(dir, "snowsignal")
	cmd := exec.Command("go", "build", "-o", bin, cmdPackage)
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("harness: go build %s: %w\n%s", cmdPackage, err, out)
	}
	return bin, nil
}

// sweepBuildDirs removes the build folders of processes that no longer run.
// Best effort: a folder it cannot judge or remove is left alone.
func sweepBuildDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), buildDirPrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		// Signal 0 tests for existence; EPERM means it exists.
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue
		}
		os.RemoveAll(m)
	}
}
