package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// hexFrames counts the frames a host wrote in hex format and the UDP
// destination ports they went to.
func hexFrames(t *testing.T, out string) (n int, ports map[string]int) {
	t.Helper()
	ports = map[string]int{}
	// DST SRC 0800, 20 bytes of IPv4 header, then the UDP ports.
	re := regexp.MustCompile(`^FFFFFFFFFFFF [0-9A-F]{12} 0800 45(?: [0-9A-F]{2}){19} [0-9A-F]{2} [0-9A-F]{2} ([0-9A-F]{2} [0-9A-F]{2}) `)
	for _, l := range lines(out) {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("not a broadcast IPv4 hex frame: %q", l)
			continue
		}
		n++
		ports[m[1]]++
	}
	return n, ports
}

// TestConfigSources: the same settings from a config file (YAML, JSON,
// TOML), from NFPIPE_* variables, and from flags, with flags over the
// environment over the file.
func TestConfigSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yaml := write("gen.yaml", `# a sender, as in the README's grep example
name: gen-yaml
if: ["eth0=stdout,format=hex"]
ip:
  - 192.0.2.10/24
run:
  - gen udp 192.0.2.7:9000 count=3
stats: json
timeout: 10s
`)
	json := write("gen.json", `{"name": "gen-json", "if": ["eth0=stdout,format=hex"], "ip": ["192.0.2.10/24"],
 "run": ["gen udp 192.0.2.7:9000 count=2", "gen udp 192.0.2.7:9001 count=1"], "stats": "json", "timeout": "10s"}`)
	toml := write("gen.toml", `name = "gen-toml"
if = ["eth0=stdout,format=hex"]
ip = ["192.0.2.10/24"]
run = ["gen udp 192.0.2.7:9000 count=4"]
stats = "json"
timeout = "10s"
`)
	const (
		p9000 = "23 28"
		p9001 = "23 29"
		p9002 = "23 2A"
	)
	cases := []struct {
		name   string
		env    []string
		args   []string
		frames int
		ports  map[string]int
		fnName string // the function's name in the report
	}{
		{name: "yaml", args: []string{"--config", yaml}, frames: 3, ports: map[string]int{p9000: 3}, fnName: "gen-yaml"},
		{name: "json", args: []string{"--config", json}, frames: 3, ports: map[string]int{p9000: 2, p9001: 1}, fnName: "gen-json"},
		{name: "toml", args: []string{"--config", toml}, frames: 4, ports: map[string]int{p9000: 4}, fnName: "gen-toml"},
		{name: "env", env: []string{"NFPIPE_NAME=gen-env", "NFPIPE_IF=eth0=stdout,format=hex", "NFPIPE_IP=192.0.2.10/24",
			"NFPIPE_RUN=gen udp 192.0.2.7:9000 count=2;gen udp 192.0.2.7:9001 count=3", "NFPIPE_STATS=json", "NFPIPE_TIMEOUT=10s"},
			frames: 5, ports: map[string]int{p9000: 2, p9001: 3}, fnName: "gen-env"},
		{name: "env-over-file", env: []string{"NFPIPE_RUN=gen udp 192.0.2.7:9001 count=1;gen udp 192.0.2.7:9002 count=1", "NFPIPE_NAME=gen-env"},
			args: []string{"--config", yaml}, frames: 2, ports: map[string]int{p9001: 1, p9002: 1}, fnName: "gen-env"},
		{name: "flag-over-env-and-file", env: []string{"NFPIPE_RUN=gen udp 192.0.2.7:9001 count=1", "NFPIPE_NAME=gen-env"},
			args:   []string{"--config", yaml, "--run", "gen udp 192.0.2.7:9002 count=5", "--name", "gen-flag"},
			frames: 5, ports: map[string]int{p9002: 5}, fnName: "gen-flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 20*time.Second)
			res := run(t, ctx, 15*time.Second, procSpec{Env: c.env, Args: append([]string{"vnf", "host"}, c.args...)})
			wantCode(t, "host", res, 0)
			n, ports := hexFrames(t, res.Stdout)
			if n != c.frames {
				t.Errorf("%d frames on stdout, want %d", n, c.frames)
			}
			for p, want := range c.ports {
				if ports[p] != want {
					t.Errorf("%d frames to port %s, want %d (all: %v)", ports[p], p, want, ports)
				}
			}
			if len(ports) != len(c.ports) {
				t.Errorf("frames to ports %v, want only %v", ports, c.ports)
			}
			// stats: json came from the same source; frames are on stdout,
			// so the report is on stderr.
			rep := parseStats(t, "host", res.Stderr)
			if rep.Name != c.fnName {
				t.Errorf("function name %q, want %q", rep.Name, c.fnName)
			}
			wantCounter(t, rep, "eth0", "tx_frames", uint64(c.frames))
		})
	}

	t.Run("log-level-from-env", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 20*time.Second)
		res := run(t, ctx, 15*time.Second, procSpec{Stdout: devNull(t), Env: []string{"NFPIPE_LOG_LEVEL=debug"},
			Args: []string{"vnf", "host", "--config", yaml}})
		wantCode(t, "host", res, 0)
		wantContains(t, "host", res.Stderr, "level=DEBUG")
	})

	t.Run("unknown-key", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 20*time.Second)
		for _, c := range []struct {
			text string
			want []string
			not  string
		}{
			{"if: [\"eth0=stdout\"]\nip: [\"192.0.2.10/24\"]\nserv: [\"sink udp:9000\"]\n",
				[]string{`unknown setting "serv"`, `did you mean "serve"?`}, ""},
			{"if: [\"eth0=stdout\"]\nip: [\"192.0.2.10/24\"]\nconect-timeout: 3s\n",
				[]string{`unknown setting "conect-timeout"`, `did you mean "connect-timeout"?`}, ""},
			{"if: [\"eth0=stdout\"]\nfrobnicate: 3\n",
				[]string{`unknown setting "frobnicate"`}, "did you mean"},
		} {
			file := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(file, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			res := nfpipe(t, ctx, 10*time.Second, "vnf", "host", "--config", file)
			wantCode(t, "host --config", res, 2)
			wantContains(t, "host --config", res.Stderr, append(c.want, file)...)
			if c.not != "" && strings.Contains(res.Stderr, c.not) {
				t.Errorf("unexpected %q in:\n%s", c.not, res.Stderr)
			}
			if res.Stdout != "" {
				t.Errorf("a bad config still produced output:\n%s", res.Stdout)
			}
		}
	})
}

// TestCLIErrors: bad options exit with status 2, before anything runs, and
// say which token is wrong.
func TestCLIErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown kind", []string{"vnf", "rooter"}, []string{`"rooter"`}},
		{"unknown kind with flags", []string{"vnf", "rooter", "--if", "eth0=stdin,ip=192.0.2.1/24"}, []string{`"rooter"`}},
		{"unknown kind lists the known ones", []string{"vnf", "bogus"}, []string{`"bogus"`, "host", "router"}},
		{"bad endpoint", []string{"vnf", "host", "--if", "eth0=bogus:x", "--ip", "192.0.2.1/24"},
			[]string{`"eth0=bogus:x"`, `unknown endpoint kind "bogus"`}},
		{"bad format", []string{"vnf", "host", "--if", "eth0=stdin,format=hexx", "--ip", "192.0.2.1/24"},
			[]string{`unknown frame format "hexx"`}},
		{"bad interface key", []string{"vnf", "host", "--if", "eth0=stdin,formt=hex", "--ip", "192.0.2.1/24"},
			[]string{`unknown option "formt"`, `did you mean "format"?`}},
		{"ip without interface name", []string{"vnf", "router", "--if", "eth0=stdin", "--if", "eth1=stdout", "--ip", "192.0.2.1/24"},
			[]string{"--ip 192.0.2.1/24", "say which interface"}},
		{"ip on unknown interface", []string{"vnf", "router", "--if", "eth0=stdin", "--if", "eth1=stdout", "--ip", "eth2=192.0.2.1/24"},
			[]string{`no interface "eth2"`}},
		{"bad address", []string{"vnf", "host", "--if", "eth0=stdin", "--ip", "192.0.2.300/24"}, []string{`"192.0.2.300/24"`}},
		{"route via off-subnet gateway", []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24",
			"--route", "198.51.100.0/24 via 203.0.113.1", "--run", "gen udp 198.51.100.7:9000 count=1"},
			[]string{"198.51.100.0/24 via 203.0.113.1", "203.0.113.1 is not in the subnet"}},
		{"default gateway off-subnet", []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24",
			"--gw", "203.0.113.1", "--run", "gen udp 198.51.100.7:9000 count=1"},
			[]string{"203.0.113.1 is not in the subnet"}},
		{"bad gateway", []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24", "--gw", "192.0.2.1/24"},
			[]string{"--gw 192.0.2.1/24"}},
		{"unknown application", []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24", "--run", "pign 192.0.2.1"},
			[]string{`unknown application "pign"`}},
		{"server as client", []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24", "--run", "sink udp:9000"},
			[]string{`"sink"`}},
		{"bad app option", []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24", "--run", "gen udp 192.0.2.7:9000 cuont=3"},
			[]string{`unknown option "cuont"`}},
		{"expect without sink", []string{"vnf", "host", "--if", "eth0=stdin", "--ip", "192.0.2.10/24", "--expect", "3"},
			[]string{"--expect"}},
		{"bad stats", []string{"vnf", "host", "--if", "eth0=stdin", "--ip", "192.0.2.10/24", "--stats=xml"}, []string{"--stats=xml"}},
		{"bad log level", []string{"vnf", "host", "--if", "eth0=stdin", "--log-level", "loud"}, []string{`"loud"`}},
		{"no interface", []string{"vnf", "host", "--run", "ping 192.0.2.1"}, []string{"--if"}},
		{"negative procs", []string{"vnf", "host", "--if", "eth0=stdin", "--procs", "-1"}, []string{"--procs -1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 20*time.Second)
			// Stdin is a pipe the test keeps open: a function that ran
			// instead of rejecting its options would wait on it.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			res := run(t, ctx, 10*time.Second, procSpec{Stdin: r, Args: c.args})
			r.Close()
			wantCode(t, strings.Join(c.args, " "), res, 2)
			wantNoPanic(t, c.name, res.Stderr)
			// Errors found after flag parsing come as log lines, whose
			// msg has its quotes escaped.
			wantContains(t, c.name, strings.ReplaceAll(res.Stderr, `\"`, `"`), c.want...)
			if res.Stdout != "" {
				t.Errorf("bad options still produced output on stdout:\n%s", res.Stdout)
			}
		})
	}
}

// TestProcs: a function runs on one CPU unless --procs (or a GOMAXPROCS
// variable set on purpose) says otherwise; its --stats report says which.
func TestProcs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want float64
	}{
		{"default", nil, []string{"GOMAXPROCS="}, 1},
		{"--procs 2", []string{"--procs", "2"}, nil, 2},
		{"GOMAXPROCS=2", nil, []string{"GOMAXPROCS=2"}, 2},
		{"--procs wins over GOMAXPROCS", []string{"--procs", "1"}, []string{"GOMAXPROCS=2"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 20*time.Second)
			out := filepath.Join(t.TempDir(), "frames")
			args := append([]string{"vnf", "host", "--if", "eth0=none|file:" + out, "--ip", "192.0.2.10/24", "--stats=json", "--timeout", "100ms"}, c.args...)
			res := run(t, ctx, 10*time.Second, procSpec{Args: args, Env: c.env})
			wantCode(t, c.name, res, 0)
			var rep struct {
				Procs float64 `json:"procs"`
			}
			if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
				t.Fatalf("stats report: %v\n%s", err, res.Stdout)
			}
			if rep.Procs != c.want {
				t.Errorf("procs = %v, want %v", rep.Procs, c.want)
			}
		})
	}
}

// TestListKinds: `nfpipe vnf --list` names every kind with its summary.
func TestListKinds(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 20*time.Second)
	res := nfpipe(t, ctx, 10*time.Second, "vnf", "--list")
	wantCode(t, "vnf --list", res, 0)
	for _, re := range []string{
		`(?m)^host\s+an endpoint running ping, echo, gen, sink, http, bulk \(TCP throughput\) and conns`,
		`(?m)^router\s+forwards IPv4/IPv6 between interfaces`,
		`(?m)^nat\s+a router that masquerades`,
		`(?m)^firewall\s+a stateful router`,
		`(?m)^gateway\s+relays host sockets to the chain and back without root`,
	} {
		if !regexp.MustCompile(re).MatchString(res.Stdout) {
			t.Errorf("vnf --list: no line matching %s in:\n%s", re, res.Stdout)
		}
	}
	if n := len(lines(res.Stdout)); n != 5 {
		t.Errorf("vnf --list: %d lines, want one per kind (5):\n%s", n, res.Stdout)
	}
}
