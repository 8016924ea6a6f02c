//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordInsertsNewestFirstAndKeepsEarlier(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(file, []byte("# Benchmarks\n\nHow to run.\n\n## Results\n\n"+resultsMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := record(file, "### first run\n\n| a |\n"); err != nil {
		t.Fatal(err)
	}
	if err := record(file, "### second run\n\n| b |\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	i, j, k := strings.Index(got, resultsMarker), strings.Index(got, "### second run"), strings.Index(got, "### first run")
	if !strings.HasPrefix(got, "# Benchmarks\n\nHow to run.\n") || i < 0 || j < i || k < j {
		t.Errorf("want the text, the marker, then the second run, then the first; got:\n%s", got)
	}
	if strings.Count(got, resultsMarker) != 1 {
		t.Errorf("marker appears %d times", strings.Count(got, resultsMarker))
	}
}

func TestRecordCreatesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "new.md")
	if err := record(file, "### run\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if got := string(b); !strings.Contains(got, "## Results\n\n"+resultsMarker+"\n\n### run\n") {
		t.Errorf("got:\n%s", got)
	}
}

func TestDropCountersFindsEveryNonZeroDrop(t *testing.T) {
	var snap map[string]any
	err := json.Unmarshal([]byte(`{
		"stages": [{"name": "capture", "in": 10, "errors": 0}],
		"links": [{"name": "capture->decode", "packets": 9, "dropped_packets": 3, "dropped_batches": 1},
		          {"name": "decode->filter", "dropped_packets": 0}],
		"drops": {"duplicate": 2, "wrong_port": 0},
		"kernel_drops": 1,
		"peers": [{"addr": "10.77.0.2:7124", "tx_packets": 5}]
	}`), &snap)
	if err != nil {
		t.Fatal(err)
	}
	got := dropCounters(snap)
	want := map[string]float64{
		"links[capture->decode].dropped_packets": 3,
		"links[capture->decode].dropped_batches": 1,
		"drops.duplicate":                        2,
		"kernel_drops":                           1,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestLatencies(t *testing.T) {
	var ns []int64
	for i := 100; i >= 1; i-- {
		ns = append(ns, int64(i)*1000)
	}
	l := latencies(ns)
	if !l.ok || l.N != 100 || l.P50 != 51*time.Microsecond || l.P99 != 100*time.Microsecond || l.Max != 100*time.Microsecond {
		t.Errorf("got %+v", l)
	}
	if ns[0] != 100000 {
		t.Error("latencies sorted its argument")
	}
	if latencies(nil).ok {
		t.Error("no samples reported as ok")
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RunNS == 0 || s.HWMKiB == 0 || s.RSSKiB == 0 || s.AnonKiB+s.FileKiB == 0 {
		t.Errorf("implausible sample of a running process: %+v", s)
	}
	if selfCPU() <= 0 {
		t.Error("selfCPU: no CPU time for a running process")
	}
}

func TestSoftnetAndHostCPU(t *testing.T) {
	if _, err := softnetDrops(); err != nil {
		t.Error(err)
	}
	h, err := readHostCPU()
	if err != nil {
		t.Fatal(err)
	}
	if h.Total == 0 || h.Busy > h.Total {
		t.Errorf("host cpu %+v", h)
	}
}
