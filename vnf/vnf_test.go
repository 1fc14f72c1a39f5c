package vnf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/kinds"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRegistry(t *testing.T) {
	r := vnf.NewRegistry()
	k := vnf.Kind{Name: "a", New: func(*vnf.Config) (vnf.Function, error) { return nil, nil }}
	if err := r.Register(k); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(k); err == nil || err.Error() != `register kind "a": already registered` {
		t.Errorf("duplicate: %v", err)
	}
	if err := r.Register(vnf.Kind{Name: "b"}); err == nil {
		t.Error("a kind without a constructor must be refused")
	}
	_, err := kinds.Registry().Lookup("ruoter")
	if err == nil || err.Error() != `unknown kind "ruoter" (known kinds: firewall, gateway, host, nat, router)` {
		t.Errorf("unknown kind: %v", err)
	}
}

func nic(t *testing.T, spec string) netstack.NICConfig {
	n, err := netstack.ParseNIC(spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// run runs cfg in this process and returns the exit status and the report.
func run(t *testing.T, cfg vnf.Config) (int, string) {
	t.Helper()
	var out, logs bytes.Buffer
	r := &vnf.Runner{Registry: kinds.Registry(), Log: slog.New(slog.NewTextHandler(&logs, nil)), Stdout: &out, Stderr: &out}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := r.Run(ctx, cfg)
	t.Logf("logs:\n%s", logs.String())
	return code, out.String()
}

func TestRunnerExitStatus(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte{0xff, 0xff, 0xff, 0xff, 0}, 0o600)
	sock := filepath.Join(dir, "l.sock")
	for _, tt := range []struct {
		name string
		cfg  vnf.Config
		want int
	}{
		{"unknown kind", vnf.Config{Kind: "bridge"}, vnf.ExitBadSpec},
		{"router with --run", vnf.Config{Kind: "router", Run: []string{"ping 192.0.2.1"}, Expect: -1}, vnf.ExitBadSpec},
		{"bad app spec", vnf.Config{Kind: "host", Run: []string{"pnig 192.0.2.1"}, Expect: -1, Stack: netstack.Config{NICs: []netstack.NICConfig{nic(t, "eth0=stdout")}}}, vnf.ExitBadSpec},
		{"sink gets what it expects", vnf.Config{Kind: "host", Serve: []string{"sink udp:9000"}, Expect: 0,
			Stack: netstack.Config{NICs: []netstack.NICConfig{nic(t, "eth0=file:"+empty+"|none,ip=192.0.2.7/24")}}}, vnf.ExitOK},
		{"sink misses what it expects", vnf.Config{Kind: "host", Serve: []string{"sink udp:9000"}, Expect: 5,
			Stack: netstack.Config{NICs: []netstack.NICConfig{nic(t, "eth0=file:"+empty+"|none,ip=192.0.2.7/24")}}}, vnf.ExitFailed},
		{"fatal input", vnf.Config{Kind: "router", Expect: -1,
			Stack: netstack.Config{NICs: []netstack.NICConfig{nic(t, "eth0=file:"+garbage+"|none,ip=192.0.2.1/24")}}}, vnf.ExitFailed},
		{"timeout stops a server", vnf.Config{Kind: "host", Serve: []string{"echo tcp:7"}, Expect: -1, Timeout: 200 * time.Millisecond,
			Stack: netstack.Config{NICs: []netstack.NICConfig{nic(t, "eth0=unix-listen:"+sock+",ip=192.0.2.7/24")}}}, vnf.ExitOK},
		{"gateway off every subnet", vnf.Config{Kind: "host", Expect: -1,
			Stack: netstack.Config{NICs: []netstack.NICConfig{nic(t, "eth0=unix-listen:"+sock+",ip=192.0.2.7/24")},
				Routes: []netstack.Route{mustRoute(t, "default via 203.0.113.1")}}}, vnf.ExitBadSpec},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, out := run(t, tt.cfg); code != tt.want {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.want, out)
			}
		})
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("unix-listen socket %s left behind: %v", sock, err)
	}
}

func mustRoute(t *testing.T, s string) netstack.Route {
	r, err := netstack.ParseRoute(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStatsJSON checks the JSON report: interface counters and the apps'
// own figures.
func TestStatsJSON(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	code, out := run(t, vnf.Config{Kind: "host", Serve: []string{"sink udp:9000"}, Expect: -1, Stats: "json",
		Stack: netstack.Config{Name: "h1", NICs: []netstack.NICConfig{nic(t, "eth0=file:"+empty+"|none,ip=192.0.2.7/24")}}})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		Stack struct {
			Interfaces []struct {
				Name     string            `json:"name"`
				Counters map[string]uint64 `json:"counters"`
			} `json:"interfaces"`
			Protocols map[string]uint64 `json:"protocols"`
		} `json:"stack"`
		Apps []struct {
			Spec string `json:"spec"`
		} `json:"apps"`
	}
	i := strings.Index(out, "{\n")
	if i < 0 {
		t.Fatalf("no JSON in %q", out)
	}
	if err := json.Unmarshal([]byte(out[i:]), &rep); err != nil {
		t.Fatalf("%v in %q", err, out[i:])
	}
	if rep.Name != "h1" || rep.Kind != "host" || len(rep.Stack.Interfaces) != 1 || rep.Stack.Interfaces[0].Name != "eth0" {
		t.Errorf("report %+v", rep)
	}
	if _, ok := rep.Stack.Interfaces[0].Counters["rx_frames"]; !ok {
		t.Error("no rx_frames counter")
	}
	if _, ok := rep.Stack.Protocols["udp.packets_received"]; !ok {
		t.Errorf("no udp.packets_received in %v", rep.Stack.Protocols)
	}
	if len(rep.Apps) != 1 || rep.Apps[0].Spec != "sink udp:9000" {
		t.Errorf("apps %+v", rep.Apps)
	}
}
