// Package demo runs nfpipe's built-in demonstration: network functions as
// separate processes of this same binary, wired two ways (unix sockets:
// client -> router -> server, IPv4 and IPv6) and one way (OS pipes:
// gen | router | sink), printing what each one reports.
package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nfpipe/nfpipe/internal/syncwriter"
)

// Options tune the demo.
type Options struct {
	// Exe is the nfpipe binary to run the functions with.
	Exe string
	// Seconds is how long the bulk TCP transfer runs.
	Seconds int
	// Out receives everything the functions report, prefixed by name.
	Out io.Writer
}

type step struct {
	name string
	ok   bool
	note string
}

// Run runs the demo and returns 0 when every check passed.
func Run(ctx context.Context, o Options) int {
	dir, err := os.MkdirTemp("", "nfpipe-demo-")
	if err != nil {
		fmt.Fprintf(o.Out, "demo: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	out := syncwriter.New(o.Out)
	var steps []step
	fmt.Fprintf(out, "== two-way: client --unix--> router --unix--> server (IPv4 + IPv6) ==\n")
	steps = append(steps, twoWay(ctx, o, out, dir)...)
	fmt.Fprintf(out, "\n== one-way shell-style pipeline: gen | router | sink over OS pipes ==\n")
	steps = append(steps, oneWay(ctx, o, out))
	fmt.Fprintf(out, "\n== summary ==\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	code := 0
	for _, s := range steps {
		res := "ok"
		if !s.ok {
			res, code = "FAILED", 1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.name, res, s.note)
	}
	tw.Flush()
	return code
}

func twoWay(ctx context.Context, o Options, out io.Writer, dir string) []step {
	a, b := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	router := start(ctx, o.Exe, out, "router", nil, nil, "vnf", "router", "--name", "router",
		"--if", "eth0=unix-listen:"+a+",ip=192.0.2.1/24,ip=2001:db8:1::1/64",
		"--if", "eth1=unix-listen:"+b+",ip=198.51.100.1/24,ip=2001:db8:2::1/64",
		"--stats", "--log-level", "warn")
	server := start(ctx, o.Exe, out, "server", nil, nil, "vnf", "host", "--name", "server",
		"--if", "eth0=unix:"+b, "--ip", "198.51.100.2/24", "--ip", "2001:db8:2::2/64",
		"--gw", "198.51.100.1", "--gw", "2001:db8:2::1",
		"--serve", "echo tcp:7", "--serve", "http :80", "--serve", "bulk", "--log-level", "warn")
	clients := []struct{ name, spec string }{
		{"ping IPv4 through the router", "ping 198.51.100.2 count=3 interval=200ms"},
		{"ping IPv6 through the router", "ping 2001:db8:2::2 count=3 interval=200ms"},
		{"TCP echo", "echo tcp 198.51.100.2:7 count=20"},
		{"HTTP GET over IPv6", "http get http://[2001:db8:2::2]/"},
		{"bulk TCP throughput", fmt.Sprintf("bulk 198.51.100.2 seconds=%d", o.Seconds)},
	}
	var steps []step
	for _, c := range clients {
		cl := start(ctx, o.Exe, out, "client", nil, nil, "vnf", "host", "--name", "client",
			"--if", "eth0=unix:"+a, "--ip", "192.0.2.2/24", "--ip", "2001:db8:1::2/64",
			"--gw", "192.0.2.1", "--gw", "2001:db8:1::1", "--run", c.spec, "--log-level", "warn", "--timeout", "60s")
		err := cl.wait()
		steps = append(steps, step{name: c.name, ok: err == nil, note: c.spec})
	}
	server.stop()
	router.stop()
	return steps
}

func oneWay(ctx context.Context, o Options, out io.Writer) step {
	r1, w1, _ := os.Pipe()
	r2, w2, _ := os.Pipe()
	const n = 1000
	gen := start(ctx, o.Exe, out, "gen", nil, w1, "vnf", "host", "--name", "gen",
		"--if", "eth0=stdout", "--ip", "192.0.2.10/24", "--run", fmt.Sprintf("gen udp 198.51.100.7:9000 count=%d size=200", n), "--log-level", "warn")
	router := start(ctx, o.Exe, out, "router", r1, w2, "vnf", "router", "--name", "router",
		"--if", "eth0=stdin,ip=192.0.2.1/24", "--if", "eth1=stdout,ip=198.51.100.1/24", "--stats", "--log-level", "warn")
	sink := start(ctx, o.Exe, out, "sink", r2, nil, "vnf", "host", "--name", "sink",
		"--if", "eth0=stdin", "--ip", "198.51.100.7/24", "--serve", "sink udp:9000", "--expect", fmt.Sprint(n), "--log-level", "warn")
	// The children hold the pipe ends now; ours must go, or EOF never comes.
	for _, f := range []*os.File{r1, w1, r2, w2} {
		f.Close()
	}
	errs := []error{gen.wait(), router.wait(), sink.wait()}
	for _, err := range errs {
		if err != nil {
			return step{name: "one-way pipeline", note: err.Error()}
		}
	}
	return step{name: "one-way pipeline", ok: true, note: fmt.Sprintf("%d of %d UDP packets delivered, none lost", n, n)}
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// start runs `exe args...` with its output prefixed by name.
func start(ctx context.Context, exe string, out io.Writer, name string, stdin, stdout *os.File, args ...string) *child {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdin = stdin
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = pw
	}
	cmd.Stderr = pw
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	// wait returns once the child's last line is out, not before: the
	// caller prints after it (the summary), and reads out when Run ends.
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		prefixLines(out, name, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		<-printed
		c.done <- err
		return c
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-printed
		c.done <- err
	}()
	return c
}

func (c *child) wait() error {
	err := <-c.done
	c.done <- err
	return err
}

// stop sends SIGTERM and waits.
func (c *child) stop() error {
	if c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
	}
	return c.wait()
}

func prefixLines(out io.Writer, name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(out, "%-7s| %s\n", name, sc.Text())
	}
	io.Copy(io.Discard, r)
}
