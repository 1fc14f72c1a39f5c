package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpipe/nfpipe/internal/exetrim"
	"github.com/nfpipe/nfpipe/vnf"
)

// RunOptions are how Up runs a plan.
type RunOptions struct {
	// Exe is the nfpipe binary the children run (os.Executable()).
	Exe string
	// Out receives the children's merged output, each line prefixed with
	// the function's name; Err the runner's own messages.
	Out, Err io.Writer
	// Color colours the prefixes (on a terminal).
	Color bool
	// Grace is how long stopping functions get after SIGTERM before
	// SIGKILL; zero means 5s.
	Grace time.Duration
	// ReadyTimeout bounds how long a function may take to come up; zero
	// means 15s.
	ReadyTimeout time.Duration
	// Log receives structured runner events (restarts, crashes).
	Log *slog.Logger
}

// Function states, as status reports them.
const (
	StateStarting   = "starting"
	StateReady      = "ready"
	StateRestarting = "restarting"
	StateExited     = "exited" // a client that finished, or a function stopped at the end
	StateFailed     = "failed" // exited non-zero and not restarted
	StateCrashLoop  = "crash-loop"
)

// Exit statuses of `chain up`.
const (
	UpOK      = 0 // every client passed and every function stopped cleanly
	UpFailed  = 1 // a client or a function's own check failed, or a function crashed
	UpBadSpec = 2 // the chain could not be set up
)

// runner runs one plan.
type runner struct {
	p     *Plan
	o     RunOptions
	log   *slog.Logger
	links []linkFiles
	fifos []*os.File // the runner's read-write opens of link FIFOs
	fns   []*fnRun
	out   *prefixer

	started  time.Time
	stopping chan struct{}
	stopOnce sync.Once
	failMu   sync.Mutex
	failure  string // why the chain failed, if it did
}

// linkFiles are the runner's copies of a link's descriptors, per end.
type linkFiles struct {
	sock   [2]*os.File // seqpacket/stream socketpair
	rx, tx [2]*os.File // pipe ends: rx[i] is what end i reads, tx[i] what it writes
}

// fnRun is one function's supervision state.
type fnRun struct {
	plan  *FunctionPlan
	files []*os.File
	log   *os.File

	mu       sync.Mutex
	state    string
	pid      int
	restarts int
	exit     int // last exit status (-1 while running)
	started  time.Time
	reason   string
	drops    int64 // frames its links dropped, as last seen (see frames)
	proc     *os.Process
	ended    chan struct{} // closed when the supervisor goroutine is done
}

// Up runs the plan until its clients finish, ctx is cancelled (Ctrl-C),
// or `chain down` asks; it returns the exit status (UpOK, UpFailed,
// UpBadSpec) and reports what happened on o.Out and o.Err.
func Up(ctx context.Context, p *Plan, o RunOptions) int {
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := &runner{p: p, o: o, log: o.Log, stopping: make(chan struct{}), started: time.Now()}
	r.out = newPrefixer(o.Out, o.Color, p)
	if err := r.setup(); err != nil {
		fmt.Fprintf(o.Err, "nfpipe chain up %s: %v\n", p.Chain, err)
		r.teardown()
		return UpBadSpec
	}
	defer r.teardown()
	ctl, err := r.listenControl()
	if err != nil {
		fmt.Fprintf(o.Err, "nfpipe chain up %s: %v\n", p.Chain, err)
		return UpBadSpec
	}
	defer ctl.close()

	// Servers and routers first, then the clients, which start their work
	// as soon as they run.
	var servers, clients []*fnRun
	for _, f := range r.fns {
		if f.plan.Client {
			clients = append(clients, f)
		} else {
			servers = append(servers, f)
		}
	}
	for _, group := range [][]*fnRun{servers, clients} {
		for _, f := range group {
			go r.supervise(f)
		}
		if err := r.waitReady(ctx, group); err != nil {
			r.fail(err.Error())
			break
		}
	}
	if r.failed() == "" {
		fmt.Fprintf(o.Err, "nfpipe: chain %s ready: %d functions up in %v (control: %s)\n",
			p.Chain, len(r.fns), time.Since(r.started).Round(time.Millisecond), p.Runtime.Control)
		// The runner now only supervises: its RSS should show that, not
		// the code that parsed, planned and started the chain.
		_, _ = exetrim.Drop() // a failure costs only the saving
	}

	// Until the clients are done, a stop is asked for, or a function fails.
	var clientsDone chan struct{} // nil, never ready, without clients
	if len(clients) > 0 {
		clientsDone = make(chan struct{})
		go func() {
			for _, f := range clients {
				<-f.ended
			}
			close(clientsDone)
		}()
	}
	select {
	case <-clientsDone:
		// Frames the clients sent may still be on their way (queued in a
		// router waiting for a neighbour, say): let the chain go quiet
		// before stopping the servers that count them.
		r.settle(ctx, 50*time.Millisecond, 3*time.Second)
	case <-ctx.Done():
		fmt.Fprintf(o.Err, "nfpipe: chain %s: stopping\n", p.Chain)
		r.frames(context.Background()) // the drops, for the summary
	case <-r.stopping:
		r.frames(context.Background())
	}
	r.stop()
	for _, f := range r.fns {
		<-f.ended
	}
	return r.summary()
}

// setup creates the runtime directory, the links' objects (for tap links,
// the host's: see setupHost) and each function's descriptors and log file.
func (r *runner) setup() error {
	rt := r.p.Runtime
	if err := checkHostPrivileges(r.p); err != nil {
		return err
	}
	if err := cleanLeftovers(rt); err != nil {
		return err
	}
	for _, d := range []string{rt.Dir, rt.Functions, rt.Logs, filepath.Join(rt.Dir, "links")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("runtime directory: %w", err)
		}
	}
	if err := os.WriteFile(rt.PIDFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		return fmt.Errorf("runtime directory: %w", err)
	}
	for _, path := range rt.FIFOs {
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkfifo %s: %w", path, err)
		}
	}
	for _, path := range rt.Sockets {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", path); err == nil {
				c.Close()
				return fmt.Errorf("unix link %s: something is listening on it already", path)
			}
			os.Remove(path)
		}
	}
	if r.p.Host != nil {
		if err := setupHost(r.p, r.o.Err); err != nil {
			return err
		}
	}
	r.links = make([]linkFiles, len(r.p.Links))
	for i := range r.p.Links {
		l := &r.p.Links[i]
		lf := &r.links[i]
		switch l.Transport {
		case Seqpacket, Stream:
			typ := unix.SOCK_SEQPACKET
			if l.Transport == Stream {
				typ = unix.SOCK_STREAM
			}
			fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("link %s: socketpair: %w", l.Name, err)
			}
			for e := range 2 {
				lf.sock[e] = os.NewFile(uintptr(fds[e]), fmt.Sprintf("%s/%d", l.Name, e))
			}
		case Pipe:
			// a carries end 0 -> end 1, b end 1 -> end 0.
			ar, aw, err := os.Pipe()
			if err != nil {
				return fmt.Errorf("link %s: pipe: %w", l.Name, err)
			}
			br, bw, err := os.Pipe()
			if err != nil {
				ar.Close()
				aw.Close()
				return fmt.Errorf("link %s: pipe: %w", l.Name, err)
			}
			lf.tx[0], lf.rx[1], lf.tx[1], lf.rx[0] = aw, ar, bw, br
		case FIFO:
			// Holding both FIFOs open read-write means no child blocks
			// opening its end, whatever order they start in, and a
			// restarted child finds its link in place.
			for _, path := range l.FIFOs {
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					return fmt.Errorf("link %s: %w", l.Name, err)
				}
				r.fifos = append(r.fifos, f)
			}
		case TAP:
			// setupHost made the device; the function opens it by name.
		}
	}
	for i := range r.p.Functions {
		fp := &r.p.Functions[i]
		f := &fnRun{plan: fp, exit: -1, state: StateStarting, ended: make(chan struct{})}
		for _, d := range fp.FDs {
			file, err := r.fdFile(d)
			if err != nil {
				return fmt.Errorf("function %s: %w", fp.Name, err)
			}
			f.files = append(f.files, file)
		}
		lf, err := os.OpenFile(fp.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("function %s: log: %w", fp.Name, err)
		}
		f.log = lf
		r.fns = append(r.fns, f)
	}
	return nil
}

func (r *runner) fdFile(d FD) (*os.File, error) {
	lf := &r.links[d.Link]
	var f *os.File
	switch d.Object {
	case FDSocket:
		f = lf.sock[d.End]
	case FDPipeRx:
		f = lf.rx[d.End]
	case FDPipeTx:
		f = lf.tx[d.End]
	case FDStdin:
		f = os.Stdin
	case FDStdout:
		f = os.Stdout
	}
	if f == nil {
		return nil, fmt.Errorf("fd %d: link %d end %d has no %s", d.FD, d.Link, d.End, d.Object)
	}
	return f, nil
}

// supervise runs a function, restarting it as its policy says, until the
// chain stops or the function is done.
func (r *runner) supervise(f *fnRun) {
	defer close(f.ended)
	pol := f.plan.Restart
	backoff := pol.Backoff
	var recent []time.Time // restart times within the window
	for {
		code, err := r.runOnce(f)
		select {
		case <-r.stopping:
			f.setExit(code, StateExited, "")
			return
		default:
		}
		if err != nil {
			f.setExit(-1, StateFailed, err.Error())
			r.fail(fmt.Sprintf("function %s: %v", f.plan.Name, err))
			return
		}
		restart := pol.Policy == "always" || (pol.Policy == "on-failure" && code != 0)
		if f.plan.Client && code == 0 {
			restart = false
		}
		if !restart {
			if f.plan.Client {
				f.setExit(code, StateExited, "")
				return
			}
			if code == 0 {
				// It finished: in a pipeline, its input ended. Its links
				// close, so that the end of input reaches the next
				// function, and the chain ends when every function has.
				f.setExit(code, StateExited, "finished")
				r.release(f)
				r.finished()
				return
			}
			// A server, router or middlebox ended on its own: the chain
			// cannot run without it.
			f.setExit(code, StateFailed, exitReason(code))
			r.fail(fmt.Sprintf("function %s %s and is not restarted (restart: %s)", f.plan.Name, exitReason(code), pol.Policy))
			return
		}
		now := time.Now()
		if ran := now.Sub(f.startedAt()); pol.Window > 0 && ran > pol.Window {
			backoff, recent = pol.Backoff, nil
		}
		cut := 0
		for cut < len(recent) && pol.Window > 0 && now.Sub(recent[cut]) > pol.Window {
			cut++
		}
		recent = append(recent[cut:], now)
		if pol.MaxRestarts > 0 && len(recent) > pol.MaxRestarts {
			reason := fmt.Sprintf("crashed %d times within %v (last: %s); giving up", len(recent), pol.Window, exitReason(code))
			f.setExit(code, StateCrashLoop, reason)
			r.fail(fmt.Sprintf("function %s %s", f.plan.Name, reason))
			return
		}
		f.mu.Lock()
		f.state, f.reason, f.pid, f.proc, f.exit = StateRestarting, exitReason(code), 0, nil, code
		f.restarts++
		f.mu.Unlock()
		r.log.Warn("restarting function", "function", f.plan.Name, "after", backoff, "exit", exitReason(code))
		fmt.Fprintf(r.o.Err, "nfpipe: %s %s; restarting in %v\n", f.plan.Name, exitReason(code), backoff)
		select {
		case <-time.After(backoff):
		case <-r.stopping:
			f.setExit(code, StateExited, "")
			return
		}
		backoff = min(backoff*2, pol.MaxBackoff)
		if backoff <= 0 {
			backoff = pol.Backoff
		}
	}
}

func exitReason(code int) string {
	if code < 0 {
		return "was killed by a signal"
	}
	return fmt.Sprintf("exited with status %d", code)
}

func (f *fnRun) setExit(code int, state, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exit, f.state, f.reason, f.pid, f.proc = code, state, reason, 0, nil
}

func (f *fnRun) startedAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started
}

// runOnce starts the function's process and waits for it; it returns the
// exit status (-1 for a signal) or an error if it could not start.
func (r *runner) runOnce(f *fnRun) (int, error) {
	fp := f.plan
	cmd := exec.Command(r.o.Exe, fp.Argv...)
	cmd.ExtraFiles = f.files
	cmd.Env = childEnv(os.Environ(), fp.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, stderr := r.out.writers(fp.Name, f.log)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	os.Remove(fp.Control) // a stale socket would look like readiness
	select {
	case <-r.stopping:
		return 0, nil
	default:
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start: %w", err)
	}
	f.mu.Lock()
	f.pid, f.proc, f.started, f.state, f.exit = cmd.Process.Pid, cmd.Process, time.Now(), StateStarting, -1
	f.mu.Unlock()
	os.WriteFile(filepath.Join(r.p.Runtime.Functions, fp.Name+".pid"), []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o600)
	exited := make(chan struct{})
	go f.watchReady(cmd.Process.Pid, exited)
	err := cmd.Wait()
	close(exited)
	stdout.Flush()
	stderr.Flush()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		code = -1
	}
	return code, nil
}

// watchReady marks the function ready when its control socket accepts a
// connection: it has started and its stack runs.
func (f *fnRun) watchReady(pid int, exited <-chan struct{}) {
	for {
		if c, err := net.Dial("unix", f.plan.Control); err == nil {
			c.Close()
			f.mu.Lock()
			if f.pid == pid && f.state == StateStarting {
				f.state = StateReady
			}
			f.mu.Unlock()
			return
		}
		select {
		case <-exited:
			return
		case <-time.After(3 * time.Millisecond):
		}
	}
}

func (f *fnRun) ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state == StateReady
}

// childEnv is the runner's environment without NFPIPE_* settings (a
// function's command line is its whole configuration), plus extra.
func childEnv(env, extra []string) []string {
	var out []string
	for _, kv := range env {
		// NFPIPE_CPUPROFILE_DIR is not a setting: it profiles every process.
		if !strings.HasPrefix(kv, "NFPIPE_") || strings.HasPrefix(kv, "NFPIPE_CPUPROFILE_DIR=") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// waitReady waits until every function of group has its control socket
// up (it started and its stack runs), or reports which did not.
func (r *runner) waitReady(ctx context.Context, group []*fnRun) error {
	deadline := time.Now().Add(r.o.ReadyTimeout)
	pending := append([]*fnRun(nil), group...)
	for len(pending) > 0 {
		next := pending[:0]
		for _, f := range pending {
			if f.ready() {
				continue
			}
			select {
			case <-f.ended:
				// A client, or a function whose input ran out (a short
				// replay), may finish before anyone looks; anything else
				// that ended is reported by its supervisor.
				f.mu.Lock()
				done := f.state == StateExited && f.exit == 0
				f.mu.Unlock()
				if !f.plan.Client && !done {
					return fmt.Errorf("function %s ended before it was ready; see %s", f.plan.Name, f.plan.Log)
				}
				continue
			default:
			}
			next = append(next, f)
		}
		pending = next
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var names []string
			for _, f := range pending {
				names = append(names, f.plan.Name)
			}
			return fmt.Errorf("not ready after %v: %s (see their logs in %s)", r.o.ReadyTimeout, strings.Join(names, ", "), r.p.Runtime.Logs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopping:
			if r.failed() == "" {
				return nil // every function finished, or `chain down`
			}
			return errors.New("stopped while starting")
		case <-time.After(3 * time.Millisecond):
		}
	}
	return nil
}

// release closes the runner's copies of a finished function's link ends:
// with the function gone, its peers see the end of their input.
func (r *runner) release(f *fnRun) {
	for _, d := range f.plan.FDs {
		if d.Object == FDStdin || d.Object == FDStdout {
			continue
		}
		if file, err := r.fdFile(d); err == nil {
			file.Close()
		}
	}
}

// finished stops the chain once every function has finished.
func (r *runner) finished() {
	for _, f := range r.fns {
		f.mu.Lock()
		final := f.state == StateExited || f.state == StateFailed || f.state == StateCrashLoop
		f.mu.Unlock()
		if !final {
			return
		}
	}
	r.requestStop()
}

// settle waits until no function's interfaces moved a frame for quiet, or
// for at most limit.
func (r *runner) settle(ctx context.Context, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last := int64(-1)
	for time.Now().Before(deadline) {
		n := r.frames(ctx)
		if n == last {
			return
		}
		last = n
		select {
		case <-ctx.Done():
			return
		case <-r.stopping:
			return
		case <-time.After(quiet):
		}
	}
}

// frames sums the frames every running function's interfaces received and
// sent, and records each function's drops for the summary.
func (r *runner) frames(ctx context.Context) int64 {
	var total int64
	for _, f := range r.fns {
		if !f.ready() {
			continue
		}
		var rep struct {
			Stack struct {
				Interfaces []struct {
					Counters map[string]int64 `json:"counters"`
					Drops    int64            `json:"drops"`
				} `json:"interfaces"`
			} `json:"stack"`
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := call(cctx, f.plan.Control, vnf.ControlRequest{Op: "stats"}, &rep)
		cancel()
		if err != nil {
			continue
		}
		var drops int64
		for _, ifc := range rep.Stack.Interfaces {
			total += ifc.Counters["rx_frames"] + ifc.Counters["tx_frames"]
			drops += ifc.Drops
		}
		f.mu.Lock()
		f.drops = drops
		f.mu.Unlock()
	}
	return total
}

// fail records why the chain cannot go on and stops it.
func (r *runner) fail(why string) {
	r.failMu.Lock()
	if r.failure == "" {
		r.failure = why
		fmt.Fprintf(r.o.Err, "nfpipe: chain %s: %s\n", r.p.Chain, why)
	}
	r.failMu.Unlock()
	r.requestStop()
}

func (r *runner) failed() string {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	return r.failure
}

func (r *runner) requestStop() {
	r.stopOnce.Do(func() { close(r.stopping) })
}

// stop ends every running function: SIGTERM to its process group, SIGKILL
// after the grace period.
func (r *runner) stop() {
	r.requestStop()
	var wg sync.WaitGroup
	for _, f := range r.fns {
		f.mu.Lock()
		proc := f.proc
		f.mu.Unlock()
		if proc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			syscall.Kill(-proc.Pid, syscall.SIGTERM)
			select {
			case <-f.ended:
			case <-time.After(r.o.Grace):
				fmt.Fprintf(r.o.Err, "nfpipe: %s did not stop within %v; killing it\n", f.plan.Name, r.o.Grace)
				syscall.Kill(-proc.Pid, syscall.SIGKILL)
			}
		}()
	}
	wg.Wait()
}

// teardown closes the runner's descriptors and removes the runtime
// directory's sockets, FIFOs and PID files; the logs stay.
func (r *runner) teardown() {
	for _, lf := range r.links {
		for _, fs := range [][2]*os.File{lf.sock, lf.rx, lf.tx} {
			for _, f := range fs {
				if f != nil {
					f.Close()
				}
			}
		}
	}
	for _, f := range r.fifos {
		f.Close()
	}
	for _, f := range r.fns {
		if f.log != nil {
			f.log.Close()
		}
	}
	rt := r.p.Runtime
	// A runner that could not start because the chain runs already must
	// leave the running one's sockets, FIFOs and host objects alone: the
	// runtime directory is the runner's whose PID file it holds.
	var pid int
	if b, err := os.ReadFile(rt.PIDFile); err == nil {
		fmt.Sscanf(string(b), "%d", &pid)
	}
	if pid != os.Getpid() {
		return
	}
	for _, path := range rt.FIFOs {
		os.Remove(path)
	}
	for _, path := range rt.Sockets {
		os.Remove(path)
	}
	os.RemoveAll(rt.Functions)
	os.RemoveAll(filepath.Join(rt.Dir, "links"))
	os.Remove(rt.Control)
	os.Remove(rt.PIDFile)
	// Last: the functions that held the TAP devices are gone.
	if err := cleanHost(filepath.Join(rt.Dir, hostRecordFile), true); err != nil {
		fmt.Fprintf(r.o.Err, "nfpipe: chain %s: %v\n", r.p.Chain, err)
	}
}

// summary prints one line per function and returns the exit status.
func (r *runner) summary() int {
	status := UpOK
	if r.failed() != "" {
		status = UpFailed
	}
	w := r.o.Err
	fmt.Fprintf(w, "\n%-14s %-9s %-10s %5s %8s %8s  %s\n", "FUNCTION", "KIND", "RESULT", "EXIT", "RESTARTS", "DROPS", "NOTE")
	for _, f := range r.fns {
		f.mu.Lock()
		result := "ok"
		switch {
		case f.state == StateCrashLoop:
			result = "crash-loop"
		case f.state == StateFailed:
			result = "failed"
		case f.exit != 0:
			result = "failed"
		case f.plan.Client:
			result = "passed"
		}
		if result != "ok" && result != "passed" {
			status = UpFailed
		}
		note := f.reason
		if result == "failed" && note == "" {
			note = "see " + f.plan.Log
		}
		fmt.Fprintf(w, "%-14s %-9s %-10s %5d %8d %8d  %s\n", f.plan.Name, f.plan.Kind, result, f.exit, f.restarts, f.drops, note)
		f.mu.Unlock()
	}
	verdict := "passed"
	if status != UpOK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "chain %s %s in %v; logs in %s\n", r.p.Chain, verdict, time.Since(r.started).Round(time.Millisecond), r.p.Runtime.Logs)
	var drops int64
	for _, f := range r.fns {
		drops += f.drops
	}
	if drops > 0 {
		fmt.Fprintf(w, "%d frames were dropped on the way (queues full, frames for other MACs, malformed input...): 'nfpipe chain stats' while it runs, or the functions' --stats, say where\n", drops)
	}
	return status
}

// cleanLeftovers makes way for a new run of the chain: a live runner is an
// error; what a crashed one left (processes, sockets, FIFOs, and the host
// objects its record lists) is removed.
func cleanLeftovers(rt Runtime) error {
	if b, err := os.ReadFile(rt.PIDFile); err == nil {
		var pid int
		fmt.Sscanf(string(b), "%d", &pid)
		if pid > 0 && pid != os.Getpid() && isNfpipe(pid) {
			return fmt.Errorf("the chain is already running (runner pid %d); stop it with `nfpipe chain down`", pid)
		}
	}
	// Functions of a runner that died: they normally follow it (parent
	// death signal), but make sure.
	if ents, err := os.ReadDir(rt.Functions); err == nil {
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".pid") {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(rt.Functions, e.Name()))
			var pid int
			fmt.Sscanf(string(b), "%d", &pid)
			if pid > 0 && isNfpipe(pid) {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	}
	// TAP devices, namespaces and nftables tables it made.
	if err := cleanHost(filepath.Join(rt.Dir, hostRecordFile), false); err != nil {
		return fmt.Errorf("cleaning up after the last run: %w", err)
	}
	if err := os.RemoveAll(rt.Dir); err != nil {
		return fmt.Errorf("cleaning the runtime directory %s: %w", rt.Dir, err)
	}
	return nil
}

// isNfpipe reports whether pid is a live nfpipe process.
func isNfpipe(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(b), "\x00")
	return strings.Contains(filepath.Base(argv0), "nfpipe")
}

// Running lists the chains with a live runner under root.
func Running(root string) []string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "runner.pid"))
		if err != nil {
			continue
		}
		var pid int
		fmt.Sscanf(string(b), "%d", &pid)
		if pid > 0 && isNfpipe(pid) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
