package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/chain"
	"github.com/nfpipe/nfpipe/vnf/kinds"
)

// TestChainConfigs checks every chain spec in configs/ with the real flags
// of `nfpipe vnf KIND`: kind parameters and every generated command line.
func TestChainConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !chain.IsSpec(b) {
			continue
		}
		n++
		opts := chainOptions(kinds.Registry())
		opts.RuntimeRoot = t.TempDir()
		if _, err := chain.Check(f, b, opts); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
	if n < 5 {
		t.Errorf("%d chain specs in configs/, want at least 5", n)
	}
}

// runCLI runs nfpipe in this process and returns its exit status, stdout
// and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	code := 0
	if err := root.Execute(); err != nil {
		code = 2
		if ee, ok := err.(exitError); ok {
			code = ee.code
		} else {
			errb.WriteString("nfpipe: " + err.Error() + "\n")
		}
	}
	return code, out.String(), errb.String()
}

// TestChainCLI checks the chain subcommands: the built-in default, JSON,
// the graph formats and the error report.
func TestChainCLI(t *testing.T) {
	rt := "--runtime-dir=" + t.TempDir()
	code, out, errs := runCLI(t, "", "chain", "check", rt)
	if code != 0 || !strings.Contains(out, "chain quickstart") || !strings.Contains(out, "<built-in quickstart.yaml>") {
		t.Errorf("chain check (built-in): exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, "", "chain", "check", "--json", rt, "../../configs/loadbalancer.yaml")
	var p chain.Plan
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || p.Chain != "loadbalancer" || len(p.Functions) != 5 {
		t.Errorf("chain check --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	for format, want := range map[string]string{
		"ascii":   "client (host) eth0 --seqpacket-- front lb (router) be1 --seqpacket-- eth0 web1 (host)",
		"dot":     `"client" -- "lb" [label="seqpacket", taillabel="eth0", headlabel="front"];`,
		"mermaid": `f0 ---|"eth0 · seqpacket · front"| f1`,
	} {
		code, out, errs = runCLI(t, "", "chain", "graph", "--format", format, rt, "../../configs/loadbalancer.yaml")
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("chain graph --format %s: exit %d, want %q in\n%s%s", format, code, want, out, errs)
		}
	}
	code, _, errs = runCLI(t, "", "chain", "graph", "--format", "svg")
	if code != 2 || !strings.Contains(errs, "--format svg: want ascii, dot, mermaid") {
		t.Errorf("chain graph --format svg: exit %d, %s", code, errs)
	}
	bad := "name: t\nfunctions:\n  a: {kind: hots, interfaces: {eth0: 192.0.2.1/24}}\n  b: {kind: host, interfaces: {eth0: 192.0.2.1/24}, serve: [htp :80]}\nlinks: [[a, c]]\n"
	code, out, errs = runCLI(t, bad, "chain", "check", rt, "-")
	want := `<stdin>:3:13: functions.a.kind: unknown kind "hots" (known kinds: firewall, gateway, host, nat, router)
<stdin>:4:32: functions.b.interfaces.eth0: interface is not linked: add it to links (or the pipeline), or remove it
<stdin>:4:38: functions.b.interfaces.eth0: address 192.0.2.1 is already on a.eth0 (<stdin>:3:38)
<stdin>:4:61: functions.b.serve[0]: unknown application "htp" in "htp :80": want one of bulk, echo, http, sink (did you mean "http"?)
<stdin>:5:13: links[0][1]: no function "c"
nfpipe: 5 problems in <stdin>
`
	if code != 2 || out != "" || errs != want {
		t.Errorf("chain check of a bad spec: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errs, want)
	}
}

// TestChainPlanRuns starts the functions of example chains exactly as
// their plans say — a socketpair or pipes per link, handed over in FDs
// order, servers first and clients once the others' control sockets exist
// — and expects every check to pass: the plan is all a runner needs.
func TestChainPlanRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs chains of processes")
	}
	for spec, want := range map[string]string{
		"quickstart.yaml":   "0% packet loss",
		"nat-firewall.yaml": "0% packet loss",
		"loadbalancer.yaml": "200 OK",
		"mirror.yaml":       "0% packet loss",
	} {
		t.Run(spec, func(t *testing.T) {
			opts := chainOptions(kinds.Registry())
			opts.RuntimeRoot = t.TempDir()
			b, err := os.ReadFile("../../configs/" + spec)
			if err != nil {
				t.Fatal(err)
			}
			p, err := chain.Check("../../configs/"+spec, b, opts)
			if err != nil {
				t.Fatal(err)
			}
			var capture string
			for _, m := range p.Mirrors {
				if m.Kind == chain.MirrorCapture {
					capture = m.Capture
					os.Remove(capture)
				}
			}
			outputs := runPlan(t, p, want)
			// The mirrors got copies: a capture file with frames after
			// its 24-byte header, and frames on the monitor's interface.
			if capture != "" {
				if fi, err := os.Stat(capture); err != nil || fi.Size() <= 24 {
					t.Errorf("mirror capture %s: no frames (%v)", capture, err)
				}
			}
			if mon, ok := outputs["mon"]; ok {
				if m := regexp.MustCompile(`(?m)^in\s+(\d+)`).FindStringSubmatch(mon); m == nil || m[1] == "0" {
					t.Errorf("the monitor received nothing:\n%s", mon)
				}
			}
		})
	}
}

// runPlan runs p's functions, expects each client to print want, and
// returns what each function printed.
func runPlan(t *testing.T, p *chain.Plan, want string) map[string]string {
	outputs := map[string]string{}
	for _, d := range []string{p.Runtime.Functions, p.Runtime.Logs, filepath.Join(p.Runtime.Dir, "links"), filepath.Join(p.Runtime.Dir, "mirrors")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range p.Runtime.FIFOs {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The objects of each link, by link and end.
	type key struct {
		link, end int
		obj       chain.FDObject
	}
	files := map[key]*os.File{}
	for i, l := range p.Links {
		switch l.Transport {
		case chain.Seqpacket, chain.Stream:
			typ := syscall.SOCK_SEQPACKET
			if l.Transport == chain.Stream {
				typ = syscall.SOCK_STREAM
			}
			fds, err := syscall.Socketpair(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[key{i, 0, chain.FDSocket}] = os.NewFile(uintptr(fds[0]), l.Name+".0")
			files[key{i, 1, chain.FDSocket}] = os.NewFile(uintptr(fds[1]), l.Name+".1")
		case chain.Pipe:
			r01, w01, _ := os.Pipe()
			r10, w10, _ := os.Pipe()
			files[key{i, 0, chain.FDPipeTx}], files[key{i, 1, chain.FDPipeRx}] = w01, r01
			files[key{i, 1, chain.FDPipeTx}], files[key{i, 0, chain.FDPipeRx}] = w10, r10
		case chain.FIFO, chain.Unix:
		default:
			t.Fatalf("this test does not run %s links", l.Transport)
		}
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	type proc struct {
		fn  chain.FunctionPlan
		cmd *exec.Cmd
		out *bytes.Buffer
	}
	start := func(fn chain.FunctionPlan) *proc {
		cmd := exec.Command(binary, fn.Argv...)
		for _, fd := range fn.FDs {
			cmd.ExtraFiles = append(cmd.ExtraFiles, files[key{fd.Link, fd.End, fd.Object}])
		}
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "NFPIPE_") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		cmd.Env = append(cmd.Env, fn.Env...)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return &proc{fn, cmd, out}
	}
	var servers, clients []*proc
	for _, fn := range p.Functions {
		if !fn.Client {
			servers = append(servers, start(fn))
		}
	}
	stop := func() {
		for _, s := range servers {
			s.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, s := range servers {
			if err := s.cmd.Wait(); err != nil {
				t.Errorf("%s: %v\n%s", s.fn.Name, err, s.out)
			}
			outputs[s.fn.Name] = s.out.String()
		}
	}
	// A function is ready when its control socket appears.
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range servers {
		for {
			if _, err := os.Stat(s.fn.Control); err == nil {
				break
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("%s did not become ready:\n%s", s.fn.Name, s.out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, fn := range p.Functions {
		if fn.Client {
			clients = append(clients, start(fn))
		}
	}
	for _, c := range clients {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("client %s: %v\n%s", c.fn.Name, err, c.out)
		} else if !strings.Contains(c.out.String(), want) {
			t.Errorf("client %s did not print %q:\n%s", c.fn.Name, want, c.out)
		}
		outputs[c.fn.Name] = c.out.String()
	}
	stop()
	return outputs
}
