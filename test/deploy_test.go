package test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/snowsignal/snowsignal/test/harness"
)

// The deployment files in deploy/ are checked for the fields that make a
// relay work: the image, the environment and arguments (names the command
// line knows), the capabilities, the health probes, one relay per node.

// cliEnvVars returns the environment variables the command line reads,
// from the env:"..." tags in cmd/snowsignal.
func cliEnvVars(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(moduleRoot(t), "cmd", "snowsignal", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/snowsignal sources: %v", err)
	}
	var out []string
	re := regexp.MustCompile(`env:"([A-Z0-9_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

// checkEnv fails t unless every variable is one the command line reads,
// has a non-empty value (kong takes an empty value as given), and the
// durations parse.
func checkEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known := cliEnvVars(t)
	for k, v := range env {
		if !slices.Contains(known, k) {
			t.Errorf("%s: environment variable %s is not read by snowsignal run (known: %v)", where, k, known)
		}
		if strings.TrimSpace(v) == "" {
			t.Errorf("%s: %s is empty; leave it out instead", where, k)
		}
		if k == "DISCOVERY_INTERVAL" {
			if d, err := time.ParseDuration(v); err != nil || d < time.Second {
				t.Errorf("%s: DISCOVERY_INTERVAL=%q: want a duration of 1s or more", where, v)
			}
		}
	}
}

func readDeploy(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// swarmStack is the part of a compose file the checks read.
type swarmStack struct {
	Version  string `yaml:"version"`
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Environment map[string]string `yaml:"environment"`
		Networks    []string          `yaml:"networks"`
		CapAdd      []string          `yaml:"cap_add"`
		CapDrop     []string          `yaml:"cap_drop"`
		NetworkMode string            `yaml:"network_mode"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Deploy struct {
			Mode         string `yaml:"mode"`
			UpdateConfig struct {
				Order string `yaml:"order"`
			} `yaml:"update_config"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Networks map[string]struct {
		Name       string `yaml:"name"`
		Driver     string `yaml:"driver"`
		Attachable bool   `yaml:"attachable"`
	} `yaml:"networks"`
}

func TestDeploySwarmStack(t *testing.T) {
	var st swarmStack
	if err := yaml.Unmarshal(readDeploy(t, "swarm-stack.yml"), &st); err != nil {
		t.Fatalf("swarm-stack.yml: %v", err)
	}
	if !strings.HasPrefix(st.Version, "3.") {
		t.Errorf("version %q: docker stack deploy wants a 3.x compose file", st.Version)
	}
	if len(st.Services) != 1 {
		t.Fatalf("%d services, want the relay only", len(st.Services))
	}
	for name, s := range st.Services {
		where := "swarm-stack.yml service " + name
		if !strings.Contains(s.Image, "snowsignal") {
			t.Errorf("%s: image %q", where, s.Image)
		}
		if got := s.Environment["SERVICENAME"]; got != "{{.Service.Name}}" {
			t.Errorf("%s: SERVICENAME=%q, want '{{.Service.Name}}' (Swarm fills in the stack-prefixed name)", where, got)
		}
		checkEnv(t, where, s.Environment)
		if s.Deploy.Mode != "global" {
			t.Errorf("%s: deploy.mode %q, want global: one relay per node", where, s.Deploy.Mode)
		}
		if s.Deploy.UpdateConfig.Order != "stop-first" {
			t.Errorf("%s: update_config.order %q, want stop-first: never two relays on one node", where, s.Deploy.UpdateConfig.Order)
		}
		if !slices.Contains(s.CapAdd, "NET_RAW") || !slices.Contains(s.CapDrop, "ALL") || len(s.CapAdd) != 1 {
			t.Errorf("%s: cap_add %q cap_drop %q, want NET_RAW only after dropping ALL", where, s.CapAdd, s.CapDrop)
		}
		if want := []string{"CMD", "/snowsignal", "health"}; !slices.Equal(s.Healthcheck.Test, want) {
			t.Errorf("%s: healthcheck.test %q, want %q", where, s.Healthcheck.Test, want)
		}
		if s.NetworkMode != "" {
			t.Errorf("%s: network_mode %q: this stack relays on the overlay", where, s.NetworkMode)
		}
		if len(s.Networks) != 1 {
			t.Errorf("%s: networks %q: want exactly one, so the target interface is eth0", where, s.Networks)
			continue
		}
		n, ok := st.Networks[s.Networks[0]]
		if !ok || n.Driver != "overlay" || !n.Attachable {
			t.Errorf("%s: network %q: want a top-level overlay network with attachable: true", where, s.Networks[0])
		}
	}
}

// TestDeploySwarmStackDockerSchema runs the Docker CLI's own compose loader
// on the stack file (`docker stack config` needs no engine), when a Docker
// CLI with that command is installed.
func TestDeploySwarmStackDockerSchema(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI installed; the stack file's fields were checked, not Docker's schema")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, docker, "stack", "config", "--help").Run(); err != nil {
		t.Skipf("this docker CLI has no `stack config` (Docker 25 or later has): %v", err)
	}
	out, err := exec.CommandContext(ctx, docker, "stack", "config", "-c", filepath.Join(moduleRoot(t), "deploy", "swarm-stack.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("docker stack config: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("SERVICENAME: '{{.Service.Name}}'")) && !bytes.Contains(out, []byte("SERVICENAME: '{{ .Service.Name }}'")) {
		t.Errorf("docker stack config lost SERVICENAME's template:\n%s", out)
	}
}

// k8sObject is the part of a Kubernetes object the checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		// Service
		ClusterIP                string           `yaml:"clusterIP"`
		PublishNotReadyAddresses bool             `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]any   `yaml:"selector"`
		Ports                    []k8sServicePort `yaml:"ports"`
		Template                 k8sPodTemplate   `yaml:"template"`
	} `yaml:"spec"`
}

type k8sServicePort struct {
	Protocol string `yaml:"protocol"`
	Port     int    `yaml:"port"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		HostNetwork bool   `yaml:"hostNetwork"`
		DNSPolicy   string `yaml:"dnsPolicy"`
		Containers  []struct {
			Image string   `yaml:"image"`
			Args  []string `yaml:"args"`
			Env   []struct {
				Name  string `yaml:"name"`
				Value string `yaml:"value"`
			} `yaml:"env"`
			SecurityContext struct {
				ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
				Capabilities           struct {
					Add  []string `yaml:"add"`
					Drop []string `yaml:"drop"`
				} `yaml:"capabilities"`
			} `yaml:"securityContext"`
			LivenessProbe  k8sProbe   `yaml:"livenessProbe"`
			ReadinessProbe k8sProbe   `yaml:"readinessProbe"`
			VolumeMounts   []k8sMount `yaml:"volumeMounts"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

type k8sMount struct {
	MountPath string `yaml:"mountPath"`
}

type k8sProbe struct {
	Exec struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

func TestDeployKubernetes(t *testing.T) {
	dec := yaml.NewDecoder(bytes.NewReader(readDeploy(t, "kubernetes.yaml")))
	byKind := map[string]k8sObject{}
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubernetes.yaml: %v", err)
		}
		if _, dup := byKind[o.Kind]; dup {
			t.Fatalf("kubernetes.yaml: two %s objects", o.Kind)
		}
		byKind[o.Kind] = o
	}
	svc, ok := byKind["Service"]
	if !ok {
		t.Fatal("kubernetes.yaml: no Service")
	}
	ds, ok := byKind["DaemonSet"]
	if !ok {
		t.Fatal("kubernetes.yaml: no DaemonSet")
	}
	if svc.Spec.ClusterIP != "None" {
		t.Errorf("Service clusterIP %q, want None (headless: the name resolves to every relay)", svc.Spec.ClusterIP)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("Service: publishNotReadyAddresses is off: a relay would drop out of the mesh whenever its readiness probe fails")
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p k8sServicePort) bool { return p.Protocol == "UDP" && p.Port == 7124 }) {
		t.Errorf("Service ports %+v: want UDP 7124 (the mesh)", svc.Spec.Ports)
	}
	labels := ds.Spec.Template.Metadata.Labels
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			t.Errorf("Service selector %s=%v does not select the DaemonSet's pods (labels %v)", k, v, labels)
		}
	}
	if ns, ok := byKind["Namespace"]; ok {
		if ns.Metadata.Name != ds.Metadata.Namespace {
			t.Errorf("Namespace %q is not the DaemonSet's (%q)", ns.Metadata.Name, ds.Metadata.Namespace)
		}
		// Baseline forbids hostNetwork and adding NET_RAW.
		if got := ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
			t.Errorf("Namespace pod-security enforce=%q: the relay's pods are rejected unless it is privileged", got)
		}
	}
	if svc.Metadata.Namespace != ds.Metadata.Namespace {
		t.Errorf("Service in %q, DaemonSet in %q", svc.Metadata.Namespace, ds.Metadata.Namespace)
	}
	if ds.APIVersion != "apps/v1" {
		t.Errorf("DaemonSet apiVersion %q", ds.APIVersion)
	}
	pod := ds.Spec.Template.Spec
	// hostNetwork is the documented choice: the relay works on the node's
	// network. It then needs ClusterFirstWithHostNet to resolve the Service.
	if !pod.HostNetwork || pod.DNSPolicy != "ClusterFirstWithHostNet" {
		t.Errorf("pod hostNetwork %v dnsPolicy %q: want true and ClusterFirstWithHostNet", pod.HostNetwork, pod.DNSPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.Contains(c.Image, "snowsignal") {
		t.Errorf("image %q", c.Image)
	}
	fqdn := svc.Metadata.Name + "." + svc.Metadata.Namespace + ".svc.cluster.local"
	if i := slices.Index(c.Args, "--discover"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != fqdn {
		t.Errorf("args %q: want --discover %s (the headless Service)", c.Args, fqdn)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("args %q: args replace the image's CMD, so they must start with run", c.Args)
	}
	checkFlags(t, "kubernetes.yaml args", c.Args[1:])
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	checkEnv(t, "kubernetes.yaml", env)
	if caps := c.SecurityContext.Capabilities; !slices.Equal(caps.Add, []string{"NET_RAW"}) || !slices.Equal(caps.Drop, []string{"ALL"}) {
		t.Errorf("capabilities add %q drop %q, want NET_RAW only after dropping ALL", caps.Add, caps.Drop)
	}
	want := []string{"/snowsignal", "health"}
	if !slices.Equal(c.LivenessProbe.Exec.Command, want) || !slices.Equal(c.ReadinessProbe.Exec.Command, want) {
		t.Errorf("probes %q / %q, want exec %q", c.LivenessProbe.Exec.Command, c.ReadinessProbe.Exec.Command, want)
	}
	if c.SecurityContext.ReadOnlyRootFilesystem && !slices.ContainsFunc(c.VolumeMounts, func(m k8sMount) bool { return m.MountPath == "/run/snowsignal" }) {
		t.Error("read-only root file system but nothing writable mounted at /run/snowsignal for the stats socket")
	}
}

// checkFlags fails t unless every --flag in args is one `snowsignal run`
// knows, according to its help.
func checkFlags(t *testing.T, where string, args []string) {
	t.Helper()
	help, err := exec.Command(harness.Binary(t), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("snowsignal run --help: %v\n%s", err, help)
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		flag, _, _ := strings.Cut(a, "=")
		if !regexp.MustCompile(`(?m)\s` + regexp.QuoteMeta(flag) + `[=\s]`).Match(help) {
			t.Errorf("%s: %s is not a flag of snowsignal run", where, flag)
		}
	}
}

// unitFile parses a systemd unit into section -> key -> values.
func unitFile(t *testing.T, b []byte) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	var sec string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = line[1 : len(line)-1]
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("snowsignal.service:%d: %q is not key=value in a section", n, line)
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

func TestDeploySystemdUnit(t *testing.T) {
	b := readDeploy(t, "snowsignal.service")
	u := unitFile(t, b)
	svc := u["Service"]
	for key, want := range map[string]string{
		"AmbientCapabilities":   "CAP_NET_RAW",
		"CapabilityBoundingSet": "CAP_NET_RAW",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"DynamicUser":           "yes",
		"RuntimeDirectory":      "snowsignal",
		"EnvironmentFile":       "-/etc/default/snowsignal",
	} {
		if got := svc[key]; !slices.Equal(got, []string{want}) {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	fams := strings.Fields(strings.Join(svc["RestrictAddressFamilies"], " "))
	slices.Sort(fams)
	if want := []string{"AF_INET", "AF_NETLINK", "AF_PACKET", "AF_UNIX"}; !slices.Equal(fams, want) {
		t.Errorf("RestrictAddressFamilies %q, want %q", fams, want)
	}
	exe := strings.Fields(strings.Join(svc["ExecStart"], " "))
	if len(exe) < 2 || filepath.Base(exe[0]) != "snowsignal" || exe[1] != "run" {
		t.Errorf("ExecStart %q, want .../snowsignal run", exe)
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("[Install] WantedBy=%q", got)
	}

	// The example environment file uses only variables the relay reads.
	env := map[string]string{}
	for _, line := range strings.Split(string(readDeploy(t, "snowsignal.env")), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("snowsignal.env: %q is not KEY=value", line)
		}
		env[k] = v
	}
	checkEnv(t, "snowsignal.env", env)

	// systemd's own check, on a copy whose ExecStart names a binary that
	// exists (verify insists on it).
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd); the unit's keys were checked, not its validity for systemd")
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "snowsignal.service")
	fixed := bytes.Replace(b, []byte("ExecStart="+exe[0]), []byte("ExecStart="+harness.Binary(t)), 1)
	if err := os.WriteFile(unit, fixed, 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on keys it ignores; any output is a finding.
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The hardening as systemd scores it (0 = fully locked down, 10 = not at
	// all); older systemd has no --offline, and then this is skipped.
	out, err = exec.Command(sa, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Logf("systemd-analyze security --offline unavailable (%v); exposure not checked", err)
		return
	}
	if x, _ := strconv.ParseFloat(string(m[1]), 64); x > 2.5 {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most 2.5\n%s", x, out)
	}
}
