package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpipe/nfpipe/internal/stalens"
	"github.com/nfpipe/nfpipe/internal/syncwriter"
)

// harness is one run: where things go, what was measured, and what must
// be undone at the end.
type harness struct {
	o       options
	root    string // the module's root
	self    string // this binary, for the helper roles
	nfpipe  string // the nfpipe binary under test
	work    string // scratch directory (specs, rule files, runtime dirs), removed at the end
	outDir  string // results directory
	rawDir  string // raw outputs (iperf3 JSON, chain output), kept with the results
	section string // title of the section running, for rows and notes

	started, finished time.Time
	machine           machineInfo

	mu     sync.Mutex
	rows   []row
	notes  []string
	series map[string][]point // plot data, by plot and series
	cdfs   map[string][]float64
	pps    map[int]*ppsBest // best small-packet rate by hops, for the targets
	// rawPPS is the router's own 64-byte rate (raw source and sink) and
	// rawSilent what it lost without counting; 0 when not measured.
	rawPPS    float64
	rawSilent int64
	cleanups  []func() // undone last-in first-out
	seq       int      // for unique names within the run
}

// row is one figure of the results table.
type row struct {
	Section  string
	Name     string
	Value    float64
	Unit     string
	Baseline string  // what Value is compared with; empty when it has none
	BaseVal  float64 // the baseline's value in the same unit
	Note     string  // a short remark (loss, failures)
	Err      string  // the measurement failed: why (Value is meaningless)
}

// ratio is Value/BaseVal, or 0 when there is no baseline.
func (r row) ratio() float64 {
	if r.Err != "" || r.BaseVal == 0 {
		return 0
	}
	return r.Value / r.BaseVal
}

// point is one point of a plotted series.
type point struct {
	plot, series string
	x, y         float64
}

func newHarness(o options) (*harness, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary: %w", err)
	}
	work, err := os.MkdirTemp("", fmt.Sprintf("nfpb-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	h := &harness{o: o, root: root, self: self, work: work, started: time.Now(),
		series: map[string][]point{}, cdfs: map[string][]float64{}}
	h.defer_(func() { os.RemoveAll(work) })
	return h, nil
}

// defer_ registers an undo step, run by cleanup in reverse order.
func (h *harness) defer_(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

// cleanup undoes everything the run set up: processes first (they were
// registered after their namespaces), then namespaces and files.
func (h *harness) cleanup() {
	h.mu.Lock()
	c := h.cleanups
	h.cleanups = nil
	h.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// prepare installs the dependencies, builds nfpipe, deletes what a killed
// run left behind and records the machine.
func (h *harness) prepare(ctx context.Context) error {
	if !h.o.noDeps {
		cmd := exec.CommandContext(ctx, filepath.Join(h.root, "bench", "install-deps.sh"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		// Without the network (or apt) the run goes on with what is
		// installed: what needs a missing tool fails with its name.
		if err := cmd.Run(); err != nil {
			h.logf("bench/install-deps.sh: %v; going on with what is installed", err)
			h.note("setup", fmt.Sprintf("bench/install-deps.sh failed (%v): measurements needing a missing tool failed", err))
		}
	}
	h.nfpipe = h.o.nfpipe
	if h.nfpipe == "" {
		h.nfpipe = filepath.Join(h.work, "nfpipe")
		h.logf("building nfpipe")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.nfpipe, "./cmd/nfpipe")
		cmd.Dir = h.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build`: static, no libc mapped
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/nfpipe: %v\n%s", err, out)
		}
	} else if abs, err := filepath.Abs(h.nfpipe); err == nil {
		h.nfpipe = abs
	}
	h.cleanStale()
	h.machine = readMachine(ctx, h.root)
	h.outDir = h.o.out
	if h.outDir == "" {
		h.outDir = resultsDir(filepath.Join(h.root, "bench", "results"), h.started, h.o.quick)
	}
	h.rawDir = filepath.Join(h.outDir, "raw")
	if err := os.MkdirAll(h.rawDir, 0o755); err != nil {
		return err
	}
	h.logf("results in %s; %s, %d cores, kernel %s, commit %s", h.outDir, h.machine.CPU, h.machine.NProc, h.machine.Kernel, h.machine.commitString())
	return nil
}

// resultsDir picks DATE (DATE-quick), or DATE-2, DATE-3, ... when a run
// of the same day is there already: results are never overwritten.
func resultsDir(base string, t time.Time, quick bool) string {
	name := t.UTC().Format("2006-01-02")
	if quick {
		name += "-quick"
	}
	dir := filepath.Join(base, name)
	for i := 2; ; i++ {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return dir
		}
		dir = filepath.Join(base, fmt.Sprintf("%s-%d", name, i))
	}
}

// logf reports progress on stderr (the table goes to stdout at the end).
func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(h.started).Seconds(), fmt.Sprintf(format, args...))
}

// add records a figure of the current section and logs it.
func (h *harness) add(r row) {
	r.Section = h.section
	h.mu.Lock()
	h.rows = append(h.rows, r)
	h.mu.Unlock()
	switch {
	case r.Err != "":
		h.logf("   %-52s FAILED: %s", r.Name, r.Err)
	case r.BaseVal != 0:
		h.logf("   %-52s %10s %-8s (%.2fx %s)", r.Name, fmtVal(r.Value), r.Unit, r.ratio(), r.Baseline)
	default:
		h.logf("   %-52s %10s %-8s", r.Name, fmtVal(r.Value), r.Unit)
	}
}

// fail records a figure that could not be measured.
func (h *harness) fail(name, unit string, err error) {
	h.add(row{Name: name, Unit: unit, Err: oneLine(err.Error())})
}

// note records a remark about the current section for the results.
func (h *harness) note(where, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf("%s: %s", where, text))
}

// plot adds a point to a plotted series.
func (h *harness) plot(plot, series string, x, y float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.series[plot] = append(h.series[plot], point{plot, series, x, y})
}

// cdf keeps a latency sample set (µs) for the CDF plot.
func (h *harness) cdf(series string, samples []float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cdfs[series] = samples
}

// name returns a name unique within the run, with the harness's pid so
// that concurrent runs and stale objects of dead runs can be told apart.
func (h *harness) name(prefix string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return fmt.Sprintf("%s%d-%d", prefix, h.seq, os.Getpid())
}

// saveRaw keeps a raw output next to the results (best effort).
func (h *harness) saveRaw(name, content string) {
	if h.rawDir == "" {
		return
	}
	os.WriteFile(filepath.Join(h.rawDir, name), []byte(content), 0o644)
}

// proc is a started process, in its own process group, killed (the whole
// group) when its context ends or the run is cleaned up.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// procOpts are the optional parts of starting a process.
type procOpts struct {
	stdin      *os.File
	extraFiles []*os.File
	env        []string
}

// start starts argv; it is killed at the end of the run at the latest.
func (h *harness) start(ctx context.Context, name string, argv []string, po procOpts) (*proc, error) {
	if h.o.verbose {
		h.logf("   $ %s", strings.Join(argv, " "))
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// Own process group, so that a kill reaches what it forks (ip netns
	// exec, pasta), and a parent-death signal, so that nothing outlives a
	// harness that was killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	cmd.Env = append(os.Environ(), po.env...)
	p := &proc{name: name, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if po.stdin != nil {
		cmd.Stdin = po.stdin
	}
	cmd.ExtraFiles = po.extraFiles
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = -int(ws.Signal())
		}
		close(p.done)
	}()
	h.defer_(func() { p.kill() })
	return p, nil
}

// kill kills the process group and waits for the process.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks the process to stop with sig, and kills it after grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// wait waits for the process to exit, at most d; it kills it on timeout.
func (p *proc) wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.code, nil
	case <-time.After(d):
		p.kill()
		return -1, fmt.Errorf("%s: did not finish within %v; killed", p.name, d)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond every 10ms until it holds, the process exits, or d
// passes.
func (p *proc) waitFor(what string, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (status %d) before %s: %s", p.name, p.code, what, lastLines(p.stderr.String()+p.stdout.String(), 5))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// run runs argv to completion (at most d) and returns its output; a
// non-zero exit is an error that quotes the output.
func (h *harness) run(ctx context.Context, d time.Duration, argv ...string) (string, error) {
	p, err := h.start(ctx, argv[0], argv, procOpts{})
	if err != nil {
		return "", err
	}
	code, err := p.wait(d)
	out := p.stdout.String() + p.stderr.String()
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("%s: exit status %d: %s", strings.Join(argv, " "), code, lastLines(out, 5))
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer = syncwriter.Buffer

// staleNS matches the namespaces of this harness; the number is the pid
// of the run that made them.
var staleNS = regexp.MustCompile(`^nfpb[a-z]+\d+-(\d+)$`)

// staleWork matches the scratch directories of this harness in the
// temporary directory, by the pid of their run.
var staleWork = regexp.MustCompile(`^nfpb-(\d+)-\d+$`)

// cleanStale deletes the namespaces and scratch directories of runs whose
// process is gone, and nothing else.
func (h *harness) cleanStale() {
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			m := staleWork.FindStringSubmatch(e.Name())
			if m == nil || !e.IsDir() {
				continue
			}
			if pid, _ := strconv.Atoi(m[1]); pid != os.Getpid() && unix.Kill(pid, 0) == unix.ESRCH {
				os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
	stalens.Delete(staleNS, 1, h.logf)
}

// netns creates a namespace (lo up), deleted at the end of the run.
func (h *harness) netns(ctx context.Context, role string) (string, error) {
	name := h.name("nfpb" + role)
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	h.defer_(func() {
		// Processes in the namespace were registered later and are gone
		// by now; a TAP held by nothing goes with the namespace. A
		// topology may have deleted it already.
		if _, err := os.Stat("/run/netns/" + name); err != nil {
			return
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			h.logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if err := h.ip(ctx, name, "link set lo up"); err != nil {
		return "", err
	}
	return name, nil
}

// ip runs ip commands in a namespace, in one batch.
func (h *harness) ip(ctx context.Context, ns string, cmds ...string) error {
	if h.o.verbose {
		for _, c := range cmds {
			h.logf("   $ ip -n %s %s", ns, c)
		}
	}
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s: %v: %s (commands: %s)", ns, err, strings.TrimSpace(string(out)), strings.Join(cmds, "; "))
	}
	return nil
}

// sysctl sets kernel settings in a namespace.
func (h *harness) sysctl(ctx context.Context, ns string, kv ...string) error {
	args := append([]string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w"}, kv...)
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// inNS prefixes argv to run it in a namespace.
func inNS(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// rssKB returns a process's resident set size in KiB, from /proc.
func rssKB(pid int) (int64, error) { return statusKB(pid, "VmRSS:") }

// anonKB returns a process's private anonymous resident memory in KiB
// (RssAnon): what the function itself costs, without the executable's
// pages, which every nfpipe process shares.
func anonKB(pid int) (int64, error) { return statusKB(pid, "RssAnon:") }

// pssKB returns a process's proportional set size in KiB (Pss in
// smaps_rollup): its private pages plus its share of every page it maps
// with other processes — what one more function of a chain costs.
func pssKB(pid int) (int64, error) { return procKB(pid, "smaps_rollup", "Pss:") }

func statusKB(pid int, field string) (int64, error) { return procKB(pid, "status", field) }

// procKB reads a "Field: N kB" line of /proc/PID/FILE.
func procKB(pid int, file, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no %s", pid, field)
}

// machineInfo is what the results record about where they were taken.
type machineInfo struct {
	Date      string
	Commit    string
	Dirty     bool
	NProc     int
	CPU       string
	Kernel    string
	Go        string
	MemMB     int64
	LoadStart string
	LoadEnd   string
}

func (m machineInfo) commitString() string {
	if m.Dirty {
		return m.Commit + " (dirty)"
	}
	return m.Commit
}

func readMachine(ctx context.Context, root string) machineInfo {
	m := machineInfo{Date: time.Now().UTC().Format(time.RFC3339), NProc: runtime.NumCPU(), Go: runtime.Version()}
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	m.Commit = git("rev-parse", "HEAD")
	// Dirty means tracked files differ from the commit; files nobody
	// added (other people's work in progress) do not change what was
	// measured.
	m.Dirty = git("status", "--porcelain", "--untracked-files=no") != ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemMB = kb / 1024
			}
		}
	}
	m.LoadStart = loadAvg()
	return m
}

// loadAvg is /proc/loadavg's first three figures: how busy the machine
// was, which says how far to trust the numbers.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var ls []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			ls = append(ls, strings.TrimSpace(l))
		}
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// oneLine shortens an error for a table cell.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
