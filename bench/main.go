// Command bench is nfpipe's benchmark harness: one command that installs
// what it needs and measures, in one bounded run, nfpipe's functions side by
// side with the baselines a user would pick instead (the Linux kernel, a
// bare user-space frame copier, slirp4netns, pasta), on this machine.
//
//	go run ./bench            # the full set, at most 10 minutes
//	go run ./bench --quick    # a smaller set, under 2 minutes
//
// Every figure is reported with its baseline from the same run and the
// ratio between them: a markdown table (also printed), a CSV and PNG plots
// in bench/results/DATE/. Everything network-related runs in network
// namespaces the harness creates (named after its pid) and deletes, even
// on Ctrl-C; a run that was killed leaves namespaces the next run deletes.
//
// The helper roles the harness needs (a TAP frame copier, a bare frame
// copy between two processes, a many-connection TCP client and server)
// are this same binary, re-executed with a hidden first argument.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// section is one group of measurements.
type section struct {
	name, title string
	run         func(context.Context, *harness) error
}

// sections are the measurements in the order they run (and of
// importance): a name for --only, and the function that runs it.
var sections = []section{
	{"goodput", "1. TCP goodput between nfpipe hosts", runGoodput},
	{"kernel", "2. Real kernels at both ends (iperf3 through one router)", runKernelEnds},
	{"udp", "3. Small packets: 64-byte UDP forwarding", runSmallPackets},
	{"latency", "4. Latency: round trip", runLatency},
	{"startup", "5. Start-up and footprint", runStartup},
	{"nat", "6. NAT scale: concurrent TCP connections through MASQUERADE", runNATScale},
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "__") {
		os.Exit(runHelper(os.Args[1], os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "a smaller, shorter set (under 2 minutes) for development; numbers are indicative only")
	flag.StringVar(&o.out, "out", "", "results directory (default bench/results/DATE, or DATE-quick with --quick)")
	flag.StringVar(&o.only, "only", "", "comma-separated sections to run: "+sectionNames())
	flag.StringVar(&o.nfpipe, "nfpipe", "", "use this nfpipe binary instead of building ./cmd/nfpipe")
	flag.BoolVar(&o.noDeps, "no-deps", false, "do not run bench/install-deps.sh")
	flag.BoolVar(&o.verbose, "v", false, "print every command the harness runs")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench [--quick] [--only SECTIONS] [--out DIR]\n\n"+
			"Measures nfpipe against the kernel, a bare frame copier, slirp4netns and pasta, in\n"+
			"network namespaces of its own (needs root), and writes results.md, results.csv and\n"+
			"PNG plots to the results directory.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		return 2
	}
	if o.only != "" {
		for _, s := range strings.Split(o.only, ",") {
			if !slices.ContainsFunc(sections, func(x section) bool { return x.name == s }) {
				fmt.Fprintf(os.Stderr, "bench: --only: unknown section %q (known: %s)\n", s, sectionNames())
				return 2
			}
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root: it creates network namespaces, veth pairs and TAP devices (run it with sudo)")
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := newHarness(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer h.cleanup()
	if err := h.prepare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	// The whole run is bounded: a section that would start after the
	// budget is skipped and said so, and each measurement has its own
	// deadline inside it.
	budget := 10 * time.Minute
	if o.quick {
		budget = 2 * time.Minute
	}
	bctx, cancel := context.WithDeadline(ctx, h.started.Add(budget-10*time.Second))
	defer cancel()
	for _, s := range sections {
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), s.name) {
			continue
		}
		h.section = s.title
		if bctx.Err() != nil {
			h.note(s.title, "skipped: "+why(ctx, bctx))
			continue
		}
		h.logf("== %s", s.title)
		t0 := time.Now()
		if err := s.run(bctx, h); err != nil {
			h.note(s.title, "stopped: "+err.Error())
			h.logf("%s: %v", s.name, err)
		}
		h.logf("   %s done in %v", s.name, time.Since(t0).Round(100*time.Millisecond))
		if ctx.Err() != nil {
			break
		}
	}
	h.finished = time.Now()
	if err := h.writeResults(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted; partial results written to", h.outDir)
		return 130
	}
	return 0
}

// why says why a section is skipped.
func why(ctx, bctx context.Context) string {
	if ctx.Err() != nil {
		return "interrupted"
	}
	if errors.Is(bctx.Err(), context.DeadlineExceeded) {
		return "time budget spent"
	}
	return bctx.Err().Error()
}

func sectionNames() string {
	var n []string
	for _, s := range sections {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

// options are the command line.
type options struct {
	quick   bool
	out     string
	only    string
	nfpipe  string
	noDeps  bool
	verbose bool
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod: `go run ./bench` runs from anywhere inside the module.
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
			return "", errors.New("no go.mod above the working directory: run it inside the nfpipe module")
		}
		dir = parent
	}
}
