package labrelay

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestLogBufferParsesAndWaits(t *testing.T) {
	b := newLogBuffer()
	pr, pw := io.Pipe()
	go b.readFrom(pr, nil)
	go func() {
		io.WriteString(pw, `{"level":"info","stage":"capture","message":"capturing"}`+"\n")
		io.WriteString(pw, "snowsignal: error: --mesh-port: 0 is out of range\n")
		time.Sleep(20 * time.Millisecond) // the waiter below must see a later line too
		io.WriteString(pw, `{"level":"info","stage":"inject","message":"injecting"}`+"\n")
		pw.Close()
	}()
	e, err := b.wait(Msg("injecting", "stage", "inject"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e["level"] != "info" {
		t.Errorf("level = %v, want info", e["level"])
	}
	if _, err := b.wait(Msg("capturing", "stage", "inject"), 2*time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("wait for a line never written after EOF: %v, want ErrExited", err)
	}
	all := b.all()
	if len(all) != 3 || all[1]["raw"] != "snowsignal: error: --mesh-port: 0 is out of range" {
		t.Errorf("entries = %v", all)
	}
	if got := b.text(); strings.Count(got, "\n") != 3 {
		t.Errorf("text = %q", got)
	}
}

func TestLogBufferWaitTimesOut(t *testing.T) {
	b := newLogBuffer()
	start := time.Now()
	_, err := b.wait(Level("error"), 50*time.Millisecond)
	if err == nil || errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("timeout took %s", d)
	}
}

func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"--stats-socket", "/x"}, "/x", true},
		{[]string{"-t", "eth0", "--stats-socket=/y"}, "/y", true},
		{[]string{"--stats-socket"}, "", false},
		{[]string{"--", "--stats-socket=/z"}, "", false},
		{nil, "", false},
	} {
		got, ok := flagValue(tc.args, "--stats-socket")
		if got != tc.want || ok != tc.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}
