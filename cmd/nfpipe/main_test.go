package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/chain"
	"github.com/nfpipe/nfpipe/vnf/kindflags"
	"github.com/nfpipe/nfpipe/vnf/kinds"
)

// binary is nfpipe built for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nfpipe-cmd-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "nfpipe")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build nfpipe: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestConfigsLoad checks that every example configuration decodes into a
// valid function configuration.
func TestConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs found")
	}
	reg := kinds.Registry()
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && chain.IsSpec(b) {
			continue // a chain spec: TestChainConfigs
		}
		kind := "host"
		for _, k := range []string{"router", "gateway"} {
			if strings.Contains(filepath.Base(f), k) {
				kind = k
			}
		}
		k, err := reg.Lookup(kind)
		if err != nil {
			t.Fatal(err)
		}
		cmd := newKindCommand(reg, k)
		if err := cmd.ParseFlags([]string{"--config", f}); err != nil {
			t.Fatal(err)
		}
		v, err := loadSettings(cmd)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cfg, err := kindflags.Build(cmd.Flags(), v, k)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(cfg.Stack.NICs) == 0 || len(cfg.Stack.NICs[0].Addrs) == 0 {
			t.Errorf("%s: no interface or address decoded: %+v", f, cfg.Stack)
		}
	}
}

// TestConfigsRun runs the router, server and client of configs/ as
// separate processes, `nfpipe vnf KIND --config FILE`, and expects the
// client to pass all its checks.
func TestConfigsRun(t *testing.T) {
	for _, p := range []string{"/tmp/nfpipe-a.sock", "/tmp/nfpipe-b.sock"} {
		os.Remove(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var servers []*exec.Cmd
	for _, args := range [][]string{
		{"vnf", "router", "--config", "../../configs/router.yaml", "--log-level", "warn", "--stats="},
		{"vnf", "host", "--config", "../../configs/host-server.yaml", "--log-level", "warn"},
	} {
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, cmd)
	}
	client := exec.CommandContext(ctx, binary, "vnf", "host", "--config", "../../configs/host-client.yaml", "--log-level", "warn",
		"--run", "ping 198.51.100.2 count=2 interval=100ms", "--run", "bulk 198.51.100.2 seconds=1")
	out, err := client.CombinedOutput()
	if err != nil {
		t.Errorf("client: %v\n%s", err, out)
	}
	// --run on the command line replaces the file's run list: flags win.
	for _, want := range []string{"2 received, 0% packet loss", "receiver got"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	for _, s := range servers {
		s.Process.Signal(syscall.SIGTERM)
		if err := s.Wait(); err != nil {
			t.Errorf("%v: %v", s.Args[1:3], err)
		}
	}
}

// TestCLIErrors checks the exit status and message of bad options.
func TestCLIErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"vnf", "host", "--if", "eth0=bogus:x"}, `unknown endpoint kind "bogus"`},
		{[]string{"vnf", "host", "--if", "eth0=stdout", "--if", "eth1=stdout", "--ip", "192.0.2.1/24"}, "say which interface"},
		{[]string{"vnf", "host", "--if", "eth0=stdout", "--stats=xml"}, "--stats=xml: want text or json"},
		{[]string{"vnf", "router", "--run", "ping 192.0.2.1"}, "unknown flag: --run"},
	} {
		r, w, _ := os.Pipe()
		old := os.Stderr
		os.Stderr = w
		code := execute(tt.args)
		os.Stderr = old
		w.Close()
		b := make([]byte, 4096)
		n, _ := r.Read(b)
		r.Close()
		if code != 2 || !strings.Contains(string(b[:n]), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, b[:n], tt.want)
		}
	}
}

// TestKindDocs keeps docs/kinds in step with the registry: a page per kind,
// starting with the kind's one-line summary.
func TestKindDocs(t *testing.T) {
	for _, k := range kinds.Registry().Kinds() {
		b, err := os.ReadFile(filepath.Join("../../docs/kinds", k.Name+".md"))
		if err != nil {
			t.Errorf("kind %q has no page: %v", k.Name, err)
			continue
		}
		if !strings.Contains(string(b), k.Summary) {
			t.Errorf("docs/kinds/%s.md does not carry the summary %q", k.Name, k.Summary)
		}
	}
}
