package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func startupRowName(n int) string {
	if n == 1 {
		return "chain of 1 function: `chain up` to ready"
	}
	return fmt.Sprintf("chain of %d functions: `chain up` to ready", n)
}

const idleRSSRowName = "idle router RSS (median of an 8-function chain)"

// idleAnonRowName is the idle router's private memory.
const idleAnonRowName = "idle router private memory (RssAnon, median of an 8-function chain)"

// runStartup measures how long `nfpipe chain up` takes to report a chain
// of 1, 8, 32 and 64 functions ready (a host, routers, a host; every
// function's control socket answers), the functions' resident memory when
// idle and while forwarding a bulk TCP transfer. Baselines: a bare Go
// process (this binary doing nothing: exec to its first line, and its
// RSS), the 1-function chain for the bigger chains, the idle figure for
// the loaded one.
func runStartup(ctx context.Context, h *harness) error {
	settle, reps := time.Second, 3
	if h.o.quick {
		settle, reps = 500*time.Millisecond, 1
	}
	// The floor: exec a Go binary and read its first line.
	var bareTimes []float64
	var bareMS, bareRSS float64
	var err error
	for i := 0; i < reps && err == nil; i++ {
		var ms, rss float64
		if ms, rss, err = h.bareProcess(ctx, settle); err == nil {
			bareTimes, bareRSS = append(bareTimes, ms), rss
		}
	}
	if err == nil {
		bareMS = median(bareTimes)
	}
	if err != nil {
		h.fail("bare Go process: exec to first line", "ms", err)
	} else {
		h.add(row{Name: "bare Go process: exec to first line", Value: bareMS, Unit: "ms", Note: "this binary, doing nothing"})
		h.add(row{Name: "bare Go process RSS", Value: bareRSS, Unit: "MB", Note: "this binary, doing nothing"})
	}
	var oneMS float64
	var idleRouter, idleHost float64
	for _, n := range []int{1, 8, 32, 64} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := startupRowName(n)
		// Start-up is short and the machine noisy: the full set starts
		// each chain three times and keeps the median (RSS: the first).
		var res startResult
		var times []float64
		var err error
		for i := 0; i < reps && err == nil; i++ {
			var r startResult
			if r, err = h.startChain(ctx, n, settle); err == nil {
				if i == 0 {
					res = r
				}
				times = append(times, r.readyMS)
			}
		}
		if err != nil {
			h.fail(name, "ms", err)
			continue
		}
		res.readyMS = median(times)
		r := row{Name: name, Value: res.readyMS, Unit: "ms", Note: fmt.Sprintf("the runner says (first start): %s", res.runnerSays)}
		if len(times) > 1 {
			r.Note = fmt.Sprintf("median of %d (%s–%s ms); %s", len(times), fmtVal(slices.Min(times)), fmtVal(slices.Max(times)), r.Note)
		}
		switch {
		case n == 1 && bareMS > 0:
			r.Baseline, r.BaseVal = "bare Go process: exec to first line", bareMS
		case n > 1 && oneMS > 0:
			r.Baseline, r.BaseVal = startupRowName(1), oneMS
		}
		if n == 1 {
			oneMS = res.readyMS
		}
		h.add(r)
		switch n {
		case 8:
			idleRouter, idleHost = median(res.routerMB), median(res.hostMB)
			h.add(row{Name: idleRSSRowName, Value: idleRouter, Unit: "MB", Baseline: "bare Go process RSS", BaseVal: bareRSS})
			h.add(row{Name: "idle host RSS (median of an 8-function chain)", Value: idleHost, Unit: "MB", Baseline: "bare Go process RSS", BaseVal: bareRSS})
			if len(res.routerAnonMB) > 0 {
				h.add(row{Name: idleAnonRowName, Value: median(res.routerAnonMB), Unit: "MB", Baseline: idleRSSRowName, BaseVal: idleRouter,
					Note: "RssAnon: the router's own memory; the rest of its RSS is the executable's pages, shared by every nfpipe process"})
			}
		case 32:
			if len(res.routerPssMB) > 0 {
				h.add(row{Name: "idle router PSS (median of a 32-function chain)", Value: median(res.routerPssMB), Unit: "MB", Baseline: "the same routers' RSS", BaseVal: median(res.routerMB),
					Note: "proportional set size: the router's own pages plus its share of the executable's, which 32 processes map: what one more function costs"})
			}
		case 64:
			total := sum(res.routerMB) + sum(res.hostMB)
			h.add(row{Name: "64-function chain: total RSS", Value: total, Unit: "MB", Baseline: "64 bare Go processes", BaseVal: 64 * bareRSS,
				Note: fmt.Sprintf("%d functions measured", len(res.routerMB)+len(res.hostMB))})
			if len(res.pssMB) > 0 {
				h.add(row{Name: "64-function chain: total PSS", Value: sum(res.pssMB), Unit: "MB", Baseline: "64-function chain: total RSS", BaseVal: total,
					Note: "the sum of the functions' proportional set sizes: the memory the machine holds for them, the shared executable counted once"})
			}
		}
	}

	// Under load: one router forwarding a bulk transfer.
	secs := 3.0
	if h.o.quick {
		secs = 1.5
	}
	router, hosts, err := h.loadedRSS(ctx, secs)
	if err != nil {
		h.fail("router RSS under load (1 hop, bulk TCP)", "MB", err)
		return nil
	}
	rr := row{Name: "router RSS under load (1 hop, bulk TCP, peak)", Value: router, Unit: "MB"}
	if idleRouter > 0 {
		rr.Baseline, rr.BaseVal = idleRSSRowName, idleRouter
	}
	h.add(rr)
	hr := row{Name: "host RSS under load (bulk TCP sender/receiver, peak)", Value: hosts, Unit: "MB"}
	if idleHost > 0 {
		hr.Baseline, hr.BaseVal = "idle host RSS (median of an 8-function chain)", idleHost
	}
	h.add(hr)
	h.note("5. Start-up and footprint", "ready = the runner's \"chain NAME ready\" line, measured from its exec; "+
		"RSS from /proc/PID/status (VmRSS) after "+settle.String()+" idle; peaks sampled every 100ms. "+
		"A function unmaps its executable's pages once it runs (internal/exetrim), so its RSS counts the code it touches since, "+
		"not all the code its start-up touched; they stay in the page cache, shared.")
	return nil
}

func sum(v []float64) float64 {
	t := 0.0
	for _, x := range v {
		t += x
	}
	return t
}

// bareProcess execs this binary's idle role, times its first line and
// reads its RSS after settle.
func (h *harness) bareProcess(ctx context.Context, settle time.Duration) (ms, rssMB float64, err error) {
	t0 := time.Now()
	p, err := h.start(ctx, "idle", []string{h.self, "__idle"}, procOpts{})
	if err != nil {
		return 0, 0, err
	}
	defer p.kill()
	if err := p.waitFor("first line", 10*time.Second, func() bool { return strings.Contains(p.stdout.String(), "ready") }); err != nil {
		return 0, 0, err
	}
	ms = float64(time.Since(t0).Microseconds()) / 1000
	time.Sleep(settle)
	kb, err := rssKB(p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	return ms, float64(kb) / 1024, nil
}

// startResult is one chain start.
type startResult struct {
	readyMS          float64
	runnerSays       string    // the runner's own figure ("8 functions up in 150ms")
	routerMB, hostMB []float64 // idle RSS per function
	routerAnonMB     []float64 // idle private memory (RssAnon) per router
	routerPssMB      []float64 // idle proportional set size per router
	pssMB            []float64 // idle proportional set size per function
}

// startChain starts a chain of n functions that has no clients (so it
// runs until stopped), times its ready line, reads every function's RSS
// after settle, and stops it.
func (h *harness) startChain(ctx context.Context, n int, settle time.Duration) (startResult, error) {
	var res startResult
	var c *chainRun
	var err error
	var fns []string
	if n == 1 {
		c, fns, err = h.upSingle(ctx)
	} else {
		if n-2 > maxHops {
			return res, fmt.Errorf("%d functions: at most %d routers fit the address plan", n, maxHops)
		}
		t := topo{name: h.name("up"), hops: n - 2, clientServe: []string{"echo udp:7"}, serve: []string{"echo udp:7"}}
		c, err = h.upChain(ctx, t)
		fns = t.functions()
	}
	if err != nil {
		return res, err
	}
	defer c.down()
	if err := c.waitReady(60 * time.Second); err != nil {
		return res, err
	}
	res.readyMS = float64(c.ready.Microseconds()) / 1000
	for _, l := range strings.Split(c.p.stderr.String(), "\n") {
		if _, after, ok := strings.Cut(l, " ready: "); ok {
			res.runnerSays, _, _ = strings.Cut(after, " (")
		}
	}
	time.Sleep(settle)
	pids := c.pids()
	for _, fn := range fns {
		pid, ok := pids[fn]
		if !ok {
			return res, fmt.Errorf("no pid file for %s in %s", fn, c.runtime)
		}
		kb, err := rssKB(pid)
		if err != nil {
			return res, err
		}
		if strings.HasPrefix(fn, "r") {
			res.routerMB = append(res.routerMB, float64(kb)/1024)
			if akb, err := anonKB(pid); err == nil {
				res.routerAnonMB = append(res.routerAnonMB, float64(akb)/1024)
			}
			if pkb, err := pssKB(pid); err == nil {
				res.routerPssMB = append(res.routerPssMB, float64(pkb)/1024)
			}
		} else {
			res.hostMB = append(res.hostMB, float64(kb)/1024)
		}
		if pkb, err := pssKB(pid); err == nil {
			res.pssMB = append(res.pssMB, float64(pkb)/1024)
		}
	}
	return res, nil
}

// upSingle starts a chain of one function: a host whose interface is a
// unix socket nobody connects to.
func (h *harness) upSingle(ctx context.Context) (*chainRun, []string, error) {
	name := h.name("up")
	dir := filepath.Join(h.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	spec := fmt.Sprintf(`name: %s
functions:
  client:
    kind: host
    interfaces:
      eth0: 192.0.2.2/24
    serve: ["echo udp:7"]
links:
  - ends: [client.eth0]
    transport: unix
`, name)
	path := filepath.Join(dir, "chain.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		return nil, nil, err
	}
	rt := filepath.Join(h.work, "rt")
	t := topo{name: name, hops: -1}
	c := &chainRun{h: h, t: t, runtime: filepath.Join(rt, name), start: time.Now()}
	p, err := h.start(ctx, "chain "+name, []string{h.nfpipe, "chain", "up", "--grace", "3s", path},
		procOpts{env: []string{"NFPIPE_RUNTIME_DIR=" + rt}})
	if err != nil {
		return nil, nil, err
	}
	c.p = p
	return c, []string{"client"}, nil
}

// loadedRSS runs a bulk transfer through one router and samples every
// function's RSS while it runs; it returns the router's peak and the
// hosts' peak, in MB.
func (h *harness) loadedRSS(ctx context.Context, secs float64) (router, hosts float64, err error) {
	t := topo{name: h.name("rss"), hops: 1, serve: []string{"bulk"}}
	t.client = []string{fmt.Sprintf("bulk %s seconds=%g", t.serverAddr(), secs)}
	c, err := h.upChain(ctx, t)
	if err != nil {
		return 0, 0, err
	}
	var rkb, hkb int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(time.Duration(secs*float64(time.Second)) + 30*time.Second)
	for !c.p.exited() && time.Now().Before(deadline) {
		for fn, pid := range c.pids() {
			kb, err := rssKB(pid)
			if err != nil {
				continue
			}
			if strings.HasPrefix(fn, "r") {
				rkb = max(rkb, kb)
			} else {
				hkb = max(hkb, kb)
			}
		}
		<-tick.C
	}
	c.p.stop(syscall.SIGINT, 8*time.Second)
	if rkb == 0 || hkb == 0 {
		return 0, 0, fmt.Errorf("could not read the functions' RSS (runtime directory %s)", c.runtime)
	}
	return float64(rkb) / 1024, float64(hkb) / 1024, nil
}
