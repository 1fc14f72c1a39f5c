package demo

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestDemo runs the README's main command, the built-in demo, against the
// real binary and checks that every step passed.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo (about 5 s)")
	}
	exe := filepath.Join(t.TempDir(), "nfpipe")
	if out, err := exec.Command("go", "build", "-o", exe, "../../cmd/nfpipe").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	code := Run(ctx, Options{Exe: exe, Seconds: 1, Out: &out})
	t.Log(out.String())
	if code != 0 {
		t.Fatalf("demo exit status %d", code)
	}
	for _, want := range []string{
		`(?m)^ping IPv4 through the router\s+ok`,
		`(?m)^ping IPv6 through the router\s+ok`,
		`(?m)^TCP echo\s+ok`,
		`(?m)^HTTP GET over IPv6\s+ok`,
		`(?m)^bulk TCP throughput\s+ok`,
		`(?m)^one-way pipeline\s+ok\s+1000 of 1000 UDP packets delivered`,
		`sink\s+\| sink udp:9000: 1000 packets, 200000 bytes from 1 flow`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("demo output lacks %s", want)
		}
	}
}
