package test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snowsignal/snowsignal/netio/netlab"
	"github.com/snowsignal/snowsignal/netio/netlab/netlabtest"
	"github.com/snowsignal/snowsignal/test/harness"
)

// No Docker engine runs where the tests run, so these tests check what can
// be checked without one: the Dockerfile's structure, and that the binary
// its build line makes is static and runs in an empty root file system, as
// it must in a scratch image.

// dockerInstr is one Dockerfile instruction.
type dockerInstr struct {
	cmd  string // upper case: FROM, RUN, ...
	args string // the rest, continuation lines joined
}

// moduleRoot returns the folder holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// readDockerfile parses the repository's Dockerfile into instructions:
// comments dropped, lines ending in a backslash joined to the next.
func readDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// dockerBuildLine returns the arguments of the Dockerfile's `go build`
// command and the environment assignments before it.
func dockerBuildLine(t *testing.T, instrs []dockerInstr) (env, args []string) {
	t.Helper()
	for _, in := range instrs {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words := shellWords(t, in.args)
		for i, w := range words {
			if w == "go" && i+1 < len(words) && words[i+1] == "build" {
				return words[:i], words[i+2:]
			}
		}
	}
	t.Fatal("Dockerfile: no RUN ... go build line")
	return nil, nil
}

// shellWords splits a simple shell command line: words separated by
// blanks, double quotes grouping. It fails on anything fancier, so the
// Dockerfile's build line stays simple enough to be checked here.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	if strings.ContainsAny(s, "'`;&|<>\\") || strings.Contains(s, "$(") {
		t.Fatalf("Dockerfile build line %q: keep it one plain command (no quotes other than \", no pipes or substitutions)", s)
	}
	var out []string
	var w strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inQuote {
		t.Fatalf("Dockerfile build line %q: unbalanced quote", s)
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

func TestDockerfileStructure(t *testing.T) {
	instrs := readDockerfile(t)
	var froms []string
	var entry, cmd, health []string
	for _, in := range instrs {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "ENTRYPOINT":
			entry = execForm(t, in)
		case "CMD":
			cmd = execForm(t, in)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK %q has no CMD", in.args)
			}
			health = execForm(t, dockerInstr{cmd: "HEALTHCHECK CMD", args: c})
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines %q: want a multi-stage build", froms)
	}
	builder, final := froms[0], froms[len(froms)-1]
	if !regexp.MustCompile(`^golang:1\.26\S* AS \w+$`).MatchString(builder) {
		t.Errorf("builder stage %q: want golang:1.26 AS <name>", builder)
	}
	if goVer := goModVersion(t); !strings.HasPrefix(builder, "golang:"+goVer) {
		t.Errorf("builder %q does not build with the Go of go.mod (%s)", builder, goVer)
	}
	if final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %q: want scratch or gcr.io/distroless/static", final)
	}
	if want := []string{"/snowsignal"}; !slices.Equal(entry, want) {
		t.Errorf("ENTRYPOINT %q, want %q", entry, want)
	}
	if want := []string{"run"}; !slices.Equal(cmd, want) {
		t.Errorf("CMD %q, want %q", cmd, want)
	}
	if want := []string{"/snowsignal", "health"}; !slices.Equal(health, want) {
		t.Errorf("HEALTHCHECK CMD %q, want %q: the binary itself answers", health, want)
	}

	env, args := dockerBuildLine(t, instrs)
	line := strings.Join(append(env, args...), " ")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=$VERSION", "-X main.commit=$COMMIT", "./cmd/snowsignal"} {
		if !strings.Contains(line, want) {
			t.Errorf("build line %q lacks %q", line, want)
		}
	}
	// The final stage gets the binary at /snowsignal and the stats
	// socket's folder, which a scratch image cannot create at run time.
	var copies []string
	for _, in := range instrs {
		if in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=") {
			copies = append(copies, in.args)
		}
	}
	joined := strings.Join(copies, "\n")
	if !regexp.MustCompile(`(?m)^--from=\w+ \S*/snowsignal /snowsignal$`).MatchString(joined) {
		t.Errorf("no COPY --from=<builder> .../snowsignal /snowsignal in %q", copies)
	}
	if !regexp.MustCompile(`(?m)^--from=\w+ \S*/run/? /run/?$`).MatchString(joined) {
		t.Errorf("no COPY of /run (with /run/snowsignal) into the final image in %q", copies)
	}
	if !strings.Contains(instrsText(instrs, "RUN"), "mkdir -p /out/run/snowsignal") {
		t.Error("the builder does not create run/snowsignal for the stats socket")
	}
}

// execForm decodes an instruction's JSON (exec) form, failing on the
// shell form: scratch has no shell.
func execForm(t *testing.T, in dockerInstr) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(in.args), &out); err != nil {
		t.Fatalf("%s %s: want the exec form [\"...\"] (scratch has no /bin/sh): %v", in.cmd, in.args, err)
	}
	return out
}

func instrsText(instrs []dockerInstr, cmd string) string {
	var b strings.Builder
	for _, in := range instrs {
		if in.cmd == cmd {
			b.WriteString(in.args + "\n")
		}
	}
	return b.String()
}

// goModVersion returns the major.minor of go.mod's go directive.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// TestContainerBinaryRunsInEmptyRoot builds the binary with the
// Dockerfile's own build line, checks it is static, and runs it in an
// empty root file system: what a scratch image gives it.
func TestContainerBinaryRunsInEmptyRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot (CAP_SYS_CHROOT)")
	}
	const version, commit = "v9.8.7-test", "c0ffee1"
	out := buildLikeDockerfile(t, version, commit)

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -ldflags -s did not apply")
	}
	f.Close()

	// The root holds the binary and nothing else: no libc, no /etc, no /tmp.
	chroot := emptyRoot(t, out)
	inRoot := func(args ...string) (string, error) {
		cmd := exec.Command("/snowsignal", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: chroot}
		cmd.Dir = "/"
		cmd.Env = []string{} // nothing from this host leaks in
		cmd.WaitDelay = time.Second
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			return "", err
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return b.String(), err
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			return b.String(), errors.New("did not exit within 10s")
		}
	}

	got, err := inRoot("version")
	if err != nil {
		t.Fatalf("snowsignal version in an empty root: %v\n%s", err, got)
	}
	if want := "snowsignal " + version + " (commit " + commit; !strings.HasPrefix(got, want) {
		t.Errorf("version printed %q, want it to start with %q (the -X flags did not stamp it)", got, want)
	}
	got, err = inRoot("run", "--help")
	if err != nil {
		t.Fatalf("snowsignal run --help in an empty root: %v\n%s", err, got)
	}
	for _, flag := range []string{"--other-relays", "--discover", "--discovery-interval"} {
		if !strings.Contains(got, flag) {
			t.Errorf("run --help does not mention %s:\n%s", flag, got)
		}
	}

	// The HEALTHCHECK runs `snowsignal health`; with no relay running it
	// must say unhealthy (exit non-zero), not crash for want of a file.
	if help, err := inRoot("health", "--help"); err != nil {
		t.Logf("health subcommand not in this build yet (it arrives with the stats work); skipping its check: %v\n%s", err, help)
		return
	}
	if err := os.MkdirAll(filepath.Join(chroot, "run", "snowsignal"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = inRoot("health")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("health with no relay running: %v, want a non-zero exit\n%s", err, got)
	}
}

// buildLikeDockerfile builds the binary with the Dockerfile's own build
// line (its environment, flags and package; $VERSION and $COMMIT as given)
// and returns its path.
func buildLikeDockerfile(t *testing.T, version, commit string) string {
	t.Helper()
	env, args := dockerBuildLine(t, readDockerfile(t))
	out := filepath.Join(t.TempDir(), "snowsignal")
	vars := strings.NewReplacer("$VERSION", version, "${VERSION}", version, "$COMMIT", commit, "${COMMIT}", commit)
	for i, a := range args {
		a = vars.Replace(a)
		if i > 0 && args[i-1] == "-o" {
			a = out
		}
		args[i] = a
	}
	build := exec.Command("go", append([]string{"build"}, args...)...)
	build.Dir = moduleRoot(t)
	build.Env = append(os.Environ(), env...)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %q with %q: %v\n%s", args, env, err, b)
	}
	return out
}

// emptyRoot returns a folder holding only /snowsignal, a copy of bin: the
// root file system of a scratch image without the Dockerfile's extras.
func emptyRoot(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "snowsignal"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestContainerRelayInEmptyRoot runs a relay the way the image does: the
// static binary alone in its root file system (plus the image's
// /run/snowsignal), started as `/snowsignal run`, in a lab namespace. It
// relays a broadcast, and the image's HEALTHCHECK command, run in the same
// root, reports it healthy over the default stats socket.
func TestContainerRelayInEmptyRoot(t *testing.T) {
	chrootBin, err := exec.LookPath("chroot")
	if err != nil {
		t.Skip("no chroot binary (coreutils)")
	}
	l := netlabtest.NewSwarmT(t, netlab.TwoSegmentSwarm())
	root := emptyRoot(t, buildLikeDockerfile(t, "v0-test", "none"))
	if err := os.MkdirAll(filepath.Join(root, "run", "snowsignal"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := l.Host("relay-a"), l.Host("relay-b")
	inImage := func(ctx context.Context, args ...string) *exec.Cmd {
		return a.Command(ctx, chrootBin, append([]string{root, "/snowsignal"}, args...)...)
	}
	ctx, cancel := context.WithCancel(t.Context())
	relay := inImage(ctx, "run", "--other-relays", b.IP.String(), "--log-format", "json")
	relay.Cancel = func() error { return relay.Process.Signal(syscall.SIGTERM) }
	relay.WaitDelay = 5 * time.Second
	var logs bytes.Buffer
	relay.Stdout, relay.Stderr = &logs, &logs
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := relay.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("relay in the empty root: %v\n%s", err, logs.String())
		}
	})
	harness.StartT(t, harness.Binary(t), b, "--other-relays", a.IP.String())

	// The HEALTHCHECK: `/snowsignal health` in the same root, polled as
	// Docker would, until the relay is up.
	var health []byte
	healthy := false
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !healthy; {
		health, err = inImage(t.Context(), "health").CombinedOutput()
		if healthy = err == nil; !healthy {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !healthy {
		t.Fatalf("HEALTHCHECK /snowsignal health never passed: %v\n%s\n--- relay output ---\n%s", err, health, logs.String())
	}

	srv, err := l.Host("server").ListenUDP("0.0.0.0:5076")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := l.Host("client").BroadcastUDP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("relayed from an empty root")
	if _, err := cl.WriteToUDPAddrPort(want, netip.MustParseAddrPort("10.77.0.255:5076")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("server got %q, %v; want the client's broadcast\n--- relay output ---\n%s", buf[:n], err, logs.String())
	}
}
