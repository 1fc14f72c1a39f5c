package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runNATScale opens many concurrent TCP connections from the client
// namespace to the server namespace through a MASQUERADE router — the
// kernel's (the baseline) and nfpipe's on TAPs — and measures the setup
// rate, that every connection carries data (an echo when it opens, and
// another once all are open), and the router's memory with all of them
// open.
//
// nfpipe's host applications open one connection each (gen tcp, bulk,
// echo), so the connections come from real kernels at both ends, driven
// by this binary's __natclient and __natserver roles.
func runNATScale(ctx context.Context, h *harness) error {
	// 10,000 takes seconds, so --quick opens as many.
	n, conc := 10_000, 64
	var kernelRate float64
	for _, v := range []string{kvKernelMasq, kvNfpipeMasq} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		label := kernelLabels[v]
		res, err := h.natRun(ctx, v, n, conc)
		if err != nil {
			h.fail(fmt.Sprintf("%s: %d connections: setup rate", label, n), "conn/s", err)
			continue
		}
		r := row{Name: fmt.Sprintf("%s: %d connections: setup rate", label, n), Value: res.Rate, Unit: "conn/s",
			Note: fmt.Sprintf("%d opened in %.2fs, %d concurrent dials", res.Opened, res.SetupSeconds, conc)}
		if res.FirstError != "" {
			r.Note += "; first error: " + res.FirstError
		}
		if v == kvKernelMasq {
			kernelRate = res.Rate
		} else if kernelRate > 0 {
			r.Baseline, r.BaseVal = fmt.Sprintf("%s: %d connections: setup rate", kernelLabels[kvKernelMasq], n), kernelRate
		}
		h.add(r)
		h.add(row{Name: fmt.Sprintf("%s: connections carrying data both times", label), Value: float64(res.Round2OK), Unit: "connections",
			Baseline: "connections attempted", BaseVal: float64(n),
			Note: fmt.Sprintf("%d failed to open, %d failed the second echo; router tracked %s", res.Failed, res.Round2Failed, res.tracked)})
		if v == kvNfpipeMasq && res.idleKB > 0 {
			h.add(row{Name: fmt.Sprintf("%s: RSS with %d connections open", label, res.Opened), Value: float64(res.openKB) / 1024, Unit: "MB",
				Baseline: "the same router idle", BaseVal: float64(res.idleKB) / 1024,
				Note: fmt.Sprintf("%.1f KB per connection", float64(res.openKB-res.idleKB)/float64(max(1, res.Opened)))})
		}
	}
	// nfpipe at both ends: the conns application through a MASQUERADE
	// router in a chain (gVisor's TCP on both sides, no root needed).
	if ctx.Err() == nil {
		name := fmt.Sprintf("nfpipe host → nfpipe router (MASQUERADE) → nfpipe host, in a chain: %d connections: setup rate", n)
		if res, err := h.natChain(ctx, n, conc); err != nil {
			h.fail(name, "conn/s", err)
		} else {
			r := row{Name: name, Value: res.Rate, Unit: "conn/s", Note: fmt.Sprintf("%d opened in %.2fs, %d concurrent dials (conns app)", res.Opened, res.SetupSeconds, conc)}
			if kernelRate > 0 {
				r.Baseline, r.BaseVal = fmt.Sprintf("%s: %d connections: setup rate", kernelLabels[kvKernelMasq], n), kernelRate
			}
			h.add(r)
			h.add(row{Name: "nfpipe host → nfpipe router (MASQUERADE) → nfpipe host, in a chain: connections carrying data both times", Value: float64(res.Round2OK), Unit: "connections",
				Baseline: "connections attempted", BaseVal: float64(n)})
		}
	}
	h.note("6. NAT scale", "connections from a Go client in C to a Go echo server in S (real kernels at both ends), "+
		"and from the conns application of an nfpipe host to an nfpipe host's echo server through an nfpipe router in a chain; "+
		"each connection echoes 16 bytes when it opens and again once all are open.")
	return nil
}

// connsLine matches the conns application's summary line.
var connsLine = regexp.MustCompile(`conns \S+: (\d+)/(\d+) opened in ([0-9.]+)s \((\d+)/s\), (\d+)/(\d+) echoed again`)

// natChain opens n connections from an nfpipe host through an nfpipe
// MASQUERADE router to an nfpipe host, all in one chain.
func (h *harness) natChain(ctx context.Context, n, conc int) (*natResult, error) {
	t := topo{name: h.name("natc"), hops: 1, masquerade: true, serve: []string{"echo tcp:7"}}
	t.client = []string{fmt.Sprintf("conns %s:7 count=%d parallel=%d", t.serverAddr(), n, conc)}
	c, err := h.upChain(ctx, t)
	if err != nil {
		return nil, err
	}
	out, err := c.finish(3 * time.Minute)
	m := connsLine.FindStringSubmatch(out.text("client"))
	if m == nil {
		if err == nil {
			err = fmt.Errorf("no conns summary line")
		}
		return nil, fmt.Errorf("%w: %s", err, lastLines(out.text("client")+out.stderr, 3))
	}
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	secs, _ := strconv.ParseFloat(m[3], 64)
	res := &natResult{Opened: atoi(m[1]), Failed: atoi(m[2]) - atoi(m[1]), SetupSeconds: secs, Round2OK: atoi(m[5])}
	res.Round2Failed = res.Opened - res.Round2OK
	if secs > 0 {
		res.Rate = float64(res.Opened) / secs
	}
	return res, nil
}

// natResult is what __natclient reports, plus the router's side.
type natResult struct {
	Opened       int     `json:"opened"`
	Failed       int     `json:"failed"`
	SetupSeconds float64 `json:"setup_seconds"`
	Rate         float64 `json:"rate"`
	Round2OK     int     `json:"round2_ok"`
	Round2Failed int     `json:"round2_failed"`
	FirstError   string  `json:"first_error"`

	idleKB, openKB int64
	tracked        string // the router's connection count with all open
}

// natRun runs one NAT scale measurement through a variant's router.
func (h *harness) natRun(ctx context.Context, variant string, n, conc int) (*natResult, error) {
	kt, err := h.newKernelTopo(ctx, variant, 1500)
	if err != nil {
		return nil, err
	}
	defer kt.close()
	addr := kt.serverAddr() + ":7000"
	srv, err := h.start(ctx, "nat server", inNS(kt.s, h.self, "__natserver", addr), procOpts{})
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	if err := srv.waitFor("nat server ready", 10*time.Second, func() bool { return strings.Contains(srv.stdout.String(), "ready") }); err != nil {
		return nil, err
	}
	var idleKB int64
	if kt.router != nil {
		idleKB, _ = rssKB(kt.router.cmd.Process.Pid)
	}
	// The client reports "open" when every connection is open (or
	// failed), waits for a line on its stdin, then runs the second round.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	cli, err := h.start(ctx, "nat client", inNS(kt.c, h.self, "__natclient", addr, strconv.Itoa(n), strconv.Itoa(conc)), procOpts{stdin: r})
	r.Close()
	if err != nil {
		return nil, err
	}
	if err := cli.waitFor("all connections open", 60*time.Second, func() bool { return strings.Contains(cli.stdout.String(), "open\n") }); err != nil {
		return nil, err
	}
	res := &natResult{idleKB: idleKB}
	if kt.router != nil {
		res.openKB, _ = rssKB(kt.router.cmd.Process.Pid)
	}
	res.tracked = h.conntrackCount(ctx, kt)
	io.WriteString(w, "go\n")
	if code, err := cli.wait(60 * time.Second); err != nil || code != 0 {
		return nil, fmt.Errorf("nat client: status %d %v: %s", code, err, lastLines(cli.stderr.String(), 3))
	}
	out := cli.stdout.String()
	_, js, _ := strings.Cut(out, "open\n")
	if err := json.Unmarshal([]byte(strings.TrimSpace(js)), res); err != nil {
		return nil, fmt.Errorf("nat client said %q: %v", out, err)
	}
	return res, nil
}

// conntrackCount says how many connections the router tracks: the
// kernel's nf_conntrack_count in its namespace, or nfpipe's count from
// its control socket.
func (h *harness) conntrackCount(ctx context.Context, kt *kernelTopo) string {
	if kt.ctl == "" {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", kt.r, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").Output()
		if err != nil {
			return "? (no nf_conntrack_count)"
		}
		return strings.TrimSpace(string(out)) + " (nf_conntrack_count)"
	}
	c, err := net.DialTimeout("unix", kt.ctl, 2*time.Second)
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, `{"op":"stats"}`+"\n")
	line, err := bufio.NewReaderSize(c, 1<<20).ReadBytes('\n')
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	var v any
	if json.Unmarshal(line, &v) != nil {
		return "?"
	}
	if ct := findKey(v, "conntrack"); ct != nil {
		if m, ok := ct.(map[string]any); ok {
			for k, x := range m {
				if strings.EqualFold(k, "count") {
					return fmt.Sprintf("%v (conntrack count)", x)
				}
			}
		}
	}
	return "?"
}

// findKey finds a key anywhere in decoded JSON.
func findKey(v any, key string) any {
	switch t := v.(type) {
	case map[string]any:
		if x, ok := t[key]; ok {
			return x
		}
		for _, x := range t {
			if r := findKey(x, key); r != nil {
				return r
			}
		}
	case []any:
		for _, x := range t {
			if r := findKey(x, key); r != nil {
				return r
			}
		}
	}
	return nil
}

// natServer is the echo server of the NAT measurement: it accepts on
// ADDR:PORT and echoes every connection until it closes.
func natServer(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: __natserver ADDR:PORT")
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go func() {
			// Not io.Copy: between two TCP sockets it splices through a
			// pipe, two more descriptors per idle connection, and 10,000
			// connections would run out of them.
			defer c.Close()
			buf := make([]byte, 64)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// natClient opens N connections to ADDR:PORT with CONC dialers, each
// echoing 16 bytes once open; prints "open" when all are done, waits for a
// line on stdin, echoes 16 bytes on every open connection again, and
// prints its report as JSON.
func natClient(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: __natclient ADDR:PORT N CONC")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conc, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var res natResult
	var firstErr atomic.Value
	setErr := func(err error) { firstErr.CompareAndSwap(nil, err.Error()) }
	echo := func(c net.Conn, tag uint64) error {
		msg := []byte(fmt.Sprintf("%016x", tag))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != string(msg) {
			return fmt.Errorf("echo %q came back as %q", msg, got)
		}
		return nil
	}
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	setupDone := make(chan struct{})
	go func() {
		// Progress on stderr, which the harness quotes when a run hangs.
		for {
			select {
			case <-setupDone:
				return
			case <-progress.C:
				e, _ := firstErr.Load().(string)
				fmt.Fprintf(os.Stderr, "%.0fs: %d dialled, %d failed (first error: %s)\n", time.Since(start).Seconds(), min(int(next.Load()), n), failed.Load(), e)
			}
		}
	}()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := d.Dial("tcp", args[0])
				if err == nil {
					if err = echo(c, uint64(i)); err != nil {
						c.Close()
					}
				}
				if err != nil {
					failed.Add(1)
					setErr(err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(setupDone)
	res.SetupSeconds = time.Since(start).Seconds()
	res.Failed = int(failed.Load())
	res.Opened = n - res.Failed
	res.Rate = float64(res.Opened) / res.SetupSeconds
	fmt.Println("open")
	bufio.NewReader(os.Stdin).ReadString('\n')

	var ok, bad atomic.Int64
	next.Store(0)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if conns[i] == nil {
					continue
				}
				if err := echo(conns[i], uint64(i)<<32); err != nil {
					bad.Add(1)
					setErr(err)
				} else {
					ok.Add(1)
				}
				conns[i].Close()
			}
		}()
	}
	wg.Wait()
	res.Round2OK, res.Round2Failed = int(ok.Load()), int(bad.Load())
	if e, _ := firstErr.Load().(string); e != "" {
		res.FirstError = e
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return nil
}
