package tests

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/internal/syncwriter"
	"github.com/nfpipe/nfpipe/vnf"
)

// nfpipeBin is the binary under test, built once by TestMain.
var nfpipeBin string

// binDir holds nfpipeBin; shell pipelines get it first on PATH so that they
// can say `nfpipe` exactly as the README does.
var binDir string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	binDir, err = os.MkdirTemp("", "nfpipe-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// The TAP test runs the binary as an unprivileged user too.
	if err := os.Chmod(binDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	nfpipeBin = filepath.Join(binDir, "nfpipe")
	build := exec.Command("go", "build", "-o", nfpipeBin, "./cmd/nfpipe")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "tests: building nfpipe:", err)
		return 1
	}
	return m.Run()
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// testContext bounds a whole test: every process it starts is killed when
// the deadline passes, so a hang becomes a failure.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// shortDir returns a fresh directory with a short path, for unix sockets
// (sun_path holds 108 bytes; t.TempDir paths grow with the test name).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nfp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer = syncwriter.Buffer

// procSpec says how to start a process.
type procSpec struct {
	// Path is the program; empty means nfpipeBin.
	Path string
	Args []string
	// Stdin, when set, is the process's standard input; an *os.File is
	// handed over as is (a real OS pipe or file), anything else is copied.
	Stdin io.Reader
	// Stdout, when set, replaces the captured buffer (an *os.File is handed
	// over as is).
	Stdout io.Writer
	// ExtraFiles become fds 3, 4, ... of the child.
	ExtraFiles []*os.File
	// Env is added to the test's environment.
	Env []string
	// Dir is the working directory; empty means the test's.
	Dir string
}

// proc is a started process. Its own process group is killed when the test
// ends or its context expires.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// start starts a process; it is killed and reaped at the end of the test.
func start(t *testing.T, ctx context.Context, name string, spec procSpec) *proc {
	t.Helper()
	path := spec.Path
	if path == "" {
		path = nfpipeBin
	}
	cmd := exec.CommandContext(ctx, path, spec.Args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, spec.Env...)
	p := &proc{name: name, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdin = spec.Stdin
	cmd.Stdout = p.stdout
	if spec.Stdout != nil {
		cmd.Stdout = spec.Stdout
	}
	cmd.Stderr = p.stderr
	cmd.ExtraFiles = spec.ExtraFiles
	cmd.Dir = spec.Dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = -int(ws.Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s: %s\nstdout:\n%s\nstderr:\n%s", name, strings.Join(cmd.Args, " "), abbrev(p.stdout.String()), abbrev(p.stderr.String()))
		}
	})
	return p
}

// wait waits for the process to exit, at most d, and returns its exit
// status (negative: killed by that signal). On timeout the test fails, the
// process is killed and the status is -1.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		t.Errorf("%s did not exit within %v; killed it (its goroutines are in its stderr below)", p.name, d)
		p.dumpAndKill()
		return -1
	}
}

// dumpAndKill makes a hung nfpipe print its goroutines (SIGQUIT, for the
// failure log), then kills the process group.
func (p *proc) dumpAndKill() {
	if p.cmd.Path == nfpipeBin {
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGQUIT)
		select {
		case <-p.done:
			return
		case <-time.After(time.Second):
		}
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (not its group).
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.name, sig, err)
	}
}

// waitStderr waits until the process's stderr contains s.
func (p *proc) waitStderr(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("%s: stderr has no %q after %v:\n%s", p.name, s, d, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitControl waits until the function's control socket at path answers
// a status request: it appears once the function runs, a moment after its
// links connect.
func waitControl(t *testing.T, ctx context.Context, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		var st vnf.Status
		err := vnf.Control(cctx, path, vnf.ControlRequest{Op: "status"}, &st)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control socket %s: %v after %v", path, err, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// controlStats asks the function's control socket at path for its stats
// into reply (a vnf.StatsReport, or a struct for the parts a test reads),
// failing the test if it does not answer within 5s.
func controlStats(t *testing.T, ctx context.Context, path string, reply any) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := vnf.Control(cctx, path, vnf.ControlRequest{Op: "stats"}, reply); err != nil {
		t.Fatalf("control stats %s: %v", path, err)
	}
}

// result is what a finished process left.
type result struct {
	Code           int
	Stdout, Stderr string
}

// run runs nfpipe with args to completion (at most d) and returns what it
// printed and its exit status.
func run(t *testing.T, ctx context.Context, d time.Duration, spec procSpec) result {
	t.Helper()
	name := "nfpipe"
	if spec.Path != "" {
		name = filepath.Base(spec.Path)
	}
	if len(spec.Args) > 0 {
		name += " " + spec.Args[0]
		if len(spec.Args) > 1 {
			name += " " + spec.Args[1]
		}
	}
	p := start(t, ctx, name, spec)
	code := p.wait(t, d)
	return result{Code: code, Stdout: p.stdout.String(), Stderr: p.stderr.String()}
}

// nfpipe is a shorthand for run with just arguments.
func nfpipe(t *testing.T, ctx context.Context, d time.Duration, args ...string) result {
	t.Helper()
	return run(t, ctx, d, procSpec{Args: args})
}

// pipeline runs nfpipe processes joined stdout to stdin by real OS pipes,
// like a shell pipeline, and returns each one's result (the intermediate
// ones have no stdout: it went down the pipe).
func pipeline(t *testing.T, ctx context.Context, d time.Duration, stages ...[]string) []result {
	t.Helper()
	procs := make([]*proc, len(stages))
	var next *os.File // read end feeding the next stage
	for i, args := range stages {
		spec := procSpec{Args: args}
		if next != nil {
			spec.Stdin = next
		}
		var w *os.File
		if i < len(stages)-1 {
			r, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			w = pw
			spec.Stdout = w
			procs[i] = start(t, ctx, fmt.Sprintf("stage %d (%s)", i+1, args[1]), spec)
			w.Close()
			if next != nil {
				next.Close()
			}
			next = r
			continue
		}
		procs[i] = start(t, ctx, fmt.Sprintf("stage %d (%s)", i+1, args[1]), spec)
		if next != nil {
			next.Close()
		}
	}
	out := make([]result, len(procs))
	deadline := time.Now().Add(d)
	for i, p := range procs {
		code := p.wait(t, time.Until(deadline))
		out[i] = result{Code: code, Stdout: p.stdout.String(), Stderr: p.stderr.String()}
	}
	return out
}

// shell runs one bash pipeline (with pipefail) in dir with nfpipe first on
// PATH, and returns its result and the exit status of every command of the
// pipeline (PIPESTATUS).
func shell(t *testing.T, ctx context.Context, d time.Duration, dir, script string) (result, []int) {
	t.Helper()
	statusFile := filepath.Join(dir, fmt.Sprintf("pipestatus.%d", time.Now().UnixNano()))
	full := script + "\nst=(\"${PIPESTATUS[@]}\")\necho \"${st[*]}\" >" + strconv.Quote(statusFile) + "\nexit 0\n"
	p := start(t, ctx, "bash", procSpec{Path: "bash", Args: []string{"-o", "pipefail", "-c", full}})
	code := p.wait(t, d)
	res := result{Code: code, Stdout: p.stdout.String(), Stderr: p.stderr.String()}
	b, err := os.ReadFile(statusFile)
	if err != nil {
		t.Fatalf("pipeline did not finish (exit %d): %v\nscript: %s\nstderr:\n%s", code, err, script, res.Stderr)
	}
	var st []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("PIPESTATUS %q: %v", b, err)
		}
		st = append(st, n)
	}
	return res, st
}

// wantStatus checks every exit status of a pipeline.
func wantStatus(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: exit statuses %v, want %v", what, got, want)
	}
}

// wantCode checks one process's exit status.
func wantCode(t *testing.T, what string, r result, want int) {
	t.Helper()
	if r.Code != want {
		t.Errorf("%s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.Code, want, abbrev(r.Stdout), abbrev(r.Stderr))
	}
}

// wantContains checks that s contains every fragment.
func wantContains(t *testing.T, what, s string, frags ...string) {
	t.Helper()
	for _, f := range frags {
		if !strings.Contains(s, f) {
			t.Errorf("%s: want %q in:\n%s", what, f, abbrev(s))
		}
	}
}

// wantNoPanic checks that a process's stderr shows no Go panic or
// goroutine dump.
func wantNoPanic(t *testing.T, what, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("%s: crashed:\n%s", what, stderr)
	}
}

// abbrev shortens output for failure messages: a --stats=json report
// (hundreds of lines) becomes one line.
func abbrev(out string) string {
	ls := strings.Split(out, "\n")
	var b strings.Builder
	for i := 0; i < len(ls); i++ {
		if ls[i] == "{" {
			j := i + 1
			for j < len(ls) && ls[j] != "}" {
				j++
			}
			fmt.Fprintf(&b, "{ ... --stats=json report, %d lines ... }\n", j-i+1)
			i = j
			continue
		}
		b.WriteString(ls[i])
		if i < len(ls)-1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// statsReport is the --stats=json report.
type statsReport struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	CPUs  string `json:"cpus"`
	Stack struct {
		Interfaces []ifaceStats       `json:"interfaces"`
		Protocols  map[string]float64 `json:"protocols"`
		Conntrack  *struct {
			Count, Max int
			Dropped    uint64 `json:"dropped_full"`
		} `json:"conntrack"`
	} `json:"stack"`
	Apps []appReport `json:"apps"`
}

type ifaceStats struct {
	Name     string            `json:"name"`
	MAC      string            `json:"mac"`
	Link     string            `json:"link"`
	Counters map[string]uint64 `json:"counters"`
	Drops    uint64            `json:"drops"`
}

type appReport struct {
	Spec  string          `json:"spec"`
	Stats json.RawMessage `json:"stats"`
}

// parseStats extracts the --stats=json report from output that may also
// hold log lines and application reports: the object runs from the first
// line that is exactly "{" to the next line that is exactly "}".
func parseStats(t *testing.T, what, out string) *statsReport {
	t.Helper()
	lines := strings.Split(out, "\n")
	first := -1
	for i, l := range lines {
		if l == "{" {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("%s: no --stats=json report in:\n%s", what, out)
	}
	last := -1
	for i := first + 1; i < len(lines); i++ {
		if lines[i] == "}" {
			last = i
			break
		}
	}
	if last < 0 {
		t.Fatalf("%s: unterminated --stats=json report in:\n%s", what, out)
	}
	var rep statsReport
	if err := json.Unmarshal([]byte(strings.Join(lines[first:last+1], "\n")), &rep); err != nil {
		t.Fatalf("%s: --stats=json: %v", what, err)
	}
	return &rep
}

// iface returns the counters of one interface.
func (r *statsReport) iface(t *testing.T, name string) ifaceStats {
	t.Helper()
	for _, ifc := range r.Stack.Interfaces {
		if ifc.Name == name {
			return ifc
		}
	}
	t.Fatalf("%s: no interface %q in the report", r.Name, name)
	return ifaceStats{}
}

// proto returns a protocol counter, failing if the key does not exist (so
// that a renamed counter is noticed, not read as zero).
func (r *statsReport) proto(t *testing.T, key string) uint64 {
	t.Helper()
	v, ok := r.Stack.Protocols[key]
	if !ok {
		t.Fatalf("%s: no protocol counter %q in the report", r.Name, key)
	}
	return uint64(v)
}

// app decodes the stats of the application whose spec is spec.
func (r *statsReport) app(t *testing.T, spec string, v any) {
	t.Helper()
	for _, a := range r.Apps {
		if a.Spec == spec {
			if err := json.Unmarshal(a.Stats, v); err != nil {
				t.Fatalf("%s: app %q stats: %v", r.Name, spec, err)
			}
			return
		}
	}
	var specs []string
	for _, a := range r.Apps {
		specs = append(specs, a.Spec)
	}
	t.Fatalf("%s: no app %q in the report (apps: %q)", r.Name, spec, specs)
}

// wantCounter checks an interface counter.
func wantCounter(t *testing.T, r *statsReport, ifname, key string, want uint64) {
	t.Helper()
	ifc := r.iface(t, ifname)
	got, ok := ifc.Counters[key]
	if !ok {
		t.Fatalf("%s: interface %s has no counter %q", r.Name, ifname, key)
	}
	if got != want {
		t.Errorf("%s: %s.%s = %d, want %d", r.Name, ifname, key, got, want)
	}
}

// sinkStats is what a sink application reports.
type sinkStats struct {
	Listen     string `json:"listen"`
	Proto      string `json:"proto"`
	Packets    int64  `json:"packets"`
	Bytes      int64  `json:"bytes"`
	Lost       int64  `json:"lost"`
	Duplicates int64  `json:"duplicates"`
	Reordered  int64  `json:"reordered"`
}

// pcapRecords splits a classic libpcap file into its records' data,
// checking the headers; it returns each record's starting offset too.
func pcapRecords(t *testing.T, b []byte) (offsets []int, frames [][]byte) {
	t.Helper()
	if len(b) < 24 {
		t.Fatalf("pcap: %d bytes, shorter than a file header", len(b))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("pcap: bad magic % x", b[:4])
	}
	if lt := bo.Uint32(b[20:]) & 0xffff; lt != 1 {
		t.Fatalf("pcap: link type %d, want 1 (Ethernet)", lt)
	}
	for off := 24; off < len(b); {
		if off+16 > len(b) {
			t.Fatalf("pcap: truncated record header at %d", off)
		}
		n := int(bo.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			t.Fatalf("pcap: truncated record at %d", off)
		}
		offsets = append(offsets, off)
		frames = append(frames, b[off+16:off+16+n])
		off += 16 + n
	}
	return offsets, frames
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// needTool skips the test when a program it drives is not installed, except
// in CI, where scripts/install-deps.sh must have installed it: there a
// missing tool is a failure, not a skip that hides one.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed in CI: scripts/install-deps.sh must install it", name)
		}
		t.Skipf("needs %s (scripts/install-deps.sh installs it)", name)
	}
}
