package vnf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nfpipe/nfpipe/internal/cpuset"
	"github.com/nfpipe/nfpipe/internal/exetrim"
	"github.com/nfpipe/nfpipe/netstack"
)

// Exit statuses of a function process.
const (
	ExitOK      = 0 // finished, and the function's own checks passed
	ExitFailed  = 1 // the function failed: loss, mismatch, bad input, I/O error
	ExitBadSpec = 2 // the configuration was wrong; nothing ran
)

// drainTimeout bounds how long a stopping function waits for queued frames
// to be written.
const drainTimeout = 5 * time.Second

// closeTimeout bounds how long a stopping function waits for its stack to
// shut down, so that a stuck peer or a stuck file can never keep the process
// from exiting.
const closeTimeout = 3 * time.Second

// closeWithin closes the stack, giving up (with a warning) after d.
func closeWithin(stk *netstack.Stack, d time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() { stk.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		log.Warn("stack did not shut down in time; exiting anyway", "waited", d)
	}
}

// Runner runs one function in this process.
type Runner struct {
	Registry *Registry
	Log      *slog.Logger
	// Stdout and Stderr are the process's outputs for reports; frames on
	// stdin/stdout use the real os.Stdin/os.Stdout.
	Stdout, Stderr io.Writer
}

// Run runs the function cfg describes until it finishes, its input ends,
// ctx is cancelled (a signal) or its timeout passes, and returns the exit
// status. Errors are logged.
func (r *Runner) Run(ctx context.Context, cfg Config) int {
	log := r.Log
	// Errors before the function starts are the user's to fix: say them
	// plainly, like any command-line tool, rather than as log records.
	kind, err := r.Registry.Lookup(cfg.Kind)
	if err != nil {
		fmt.Fprintf(r.Stderr, "nfpipe: %v\n", err)
		return ExitBadSpec
	}
	if cfg.Stack.Name == "" {
		cfg.Stack.Name = kind.Name
	}
	cfg.Stack.Forwarding = kind.Forwarding
	place := &placement{pinned: cfg.CPUs}
	if cfg.CPUs.Count() > 0 {
		if err := cpuset.Pin(cfg.CPUs); err != nil {
			fmt.Fprintf(r.Stderr, "nfpipe vnf %s: --cpus %s: %v\n", kind.Name, cpuset.Format(cfg.CPUs), err)
			return ExitBadSpec
		}
	} else if cfg.PackCPUs {
		// Packing starts once the function is up (below): start-up runs
		// wherever the kernel puts it, so that a chain's functions start in
		// parallel.
		if place.packer, err = cpuset.NewPacker(); err != nil {
			log.Warn("CPU packing off", "err", err.Error())
		}
		if place.packer != nil {
			cfg.Stack.OnBurst = place.packer.Burst
		}
	}
	if cfg.Procs > 0 {
		runtime.GOMAXPROCS(cfg.Procs)
	}
	log = log.With("vnf", cfg.Stack.Name, "kind", kind.Name)
	fn, err := kind.New(&cfg)
	if err != nil {
		fmt.Fprintf(r.Stderr, "nfpipe vnf %s: %v\n", kind.Name, err)
		return ExitBadSpec
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	stk, err := netstack.New(ctx, cfg.Stack, log)
	if err != nil {
		fmt.Fprintf(r.Stderr, "nfpipe vnf %s: %v\n", kind.Name, err)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return ExitFailed
		}
		return ExitBadSpec
	}
	defer closeWithin(stk, closeTimeout, log)
	rst := &ruleState{}
	if err := rst.apply(&cfg, stk); err != nil {
		fmt.Fprintf(r.Stderr, "nfpipe vnf %s: rules not installed:\n%v\n", kind.Name, err)
		return ExitBadSpec
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	hupDone := make(chan struct{})
	defer func() { signal.Stop(hup); close(hupDone) }()
	go func() {
		for {
			select {
			case <-hup:
				// A bad file leaves the rules in force untouched.
				if err := rst.apply(&cfg, stk); err != nil {
					log.Error("reload failed; the old rules stay in force", "err", err.Error())
				} else {
					log.Info("rules reloaded")
				}
			case <-hupDone:
				return
			}
		}
	}()
	out := r.Stdout
	if stk.UsesStdout() {
		out = r.Stderr
	}
	env := &Env{Stack: stk, Log: log, Out: out, Config: &cfg}
	for _, ifc := range stk.Interfaces() {
		log.Debug("interface", "if", ifc.Name, "mac", ifc.MAC, "mtu", ifc.MTU, "addrs", ifc.Addrs, "link", ifc.Link, "no_resolution", ifc.OneWay)
	}

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	usr1Done := make(chan struct{})
	defer func() { signal.Stop(usr1); close(usr1Done) }()
	go func() {
		for {
			select {
			case <-usr1:
				writeStats(r.Stderr, "text", &cfg, stk, fn, rst, place)
			case <-usr1Done:
				return
			}
		}
	}()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if s, ok := fn.(Starter); ok {
		if err := s.Start(runCtx, env); err != nil {
			log.Error(err.Error())
			return ExitFailed
		}
	}
	stk.Start()
	result := make(chan error, 1)
	go func() { result <- fn.Run(runCtx, env) }()
	ctl, err := startControl(&cfg, stk, fn, rst, place, stop, log)
	if err != nil {
		log.Error(err.Error())
		stop()
		<-result
		return ExitFailed
	}
	if ctl != nil {
		defer ctl.close()
	}
	trimExecutable(log)
	if place.packer != nil {
		packDone := make(chan struct{})
		packCtx, packStop := context.WithCancel(ctx)
		go func() {
			defer close(packDone)
			if err := place.packer.Run(packCtx); err != nil {
				log.Warn("CPU packing stopped", "err", err.Error())
			}
		}()
		defer func() { packStop(); <-packDone }()
	}

	var inputEnded <-chan struct{}
	if !cfg.Linger {
		inputEnded = stk.Done()
	}
	var fnErr error
	select {
	case fnErr = <-result:
	case <-inputEnded:
		log.Debug("input ended; stopping")
		stop()
		fnErr = <-result
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			log.Info("timeout reached; stopping", "timeout", cfg.Timeout)
		}
		stop()
		fnErr = <-result
	}
	if !stk.Drain(drainTimeout) {
		log.Warn("not every queued frame was written before stopping; the rest is dropped and counted")
	}
	// Every lost frame is counted; say so where a user looks, not only in
	// --stats.
	final := stk.Stats()
	for _, k := range []string{"ip.outgoing_packet_errors", "udp.receive_buffer_errors"} {
		if v := final.Protocols[k]; v > 0 {
			log.Warn("packets dropped in the stack", "counter", k, "packets", v)
		}
	}
	for _, ifc := range final.Interfaces {
		if ifc.Drops > 0 {
			var why []string
			for _, k := range []string{"rx_malformed", "rx_other_host", "rx_dropped", "tx_no_path", "tx_errors", "tx_queue_drops"} {
				if v := ifc.Counters[k]; v > 0 {
					why = append(why, fmt.Sprintf("%s=%d", k, v))
				}
			}
			log.Warn("frames dropped", "if", ifc.Name, "drops", ifc.Drops, "counters", strings.Join(why, " "))
		}
	}
	code := ExitOK
	if fnErr != nil && !errors.Is(fnErr, context.Canceled) {
		log.Error(fnErr.Error())
		code = ExitFailed
	}
	if err := stk.Err(); err != nil {
		log.Error(err.Error())
		code = ExitFailed
	}
	if cfg.Stats != "" {
		writeStats(out, cfg.Stats, &cfg, stk, fn, rst, place)
	}
	return code
}

// placement is where the function runs, for its reports.
type placement struct {
	pinned cpuset.Set     // --cpus LIST
	packer *cpuset.Packer // --cpus auto, on a machine with several CPUs
}

func (p *placement) String() string {
	switch {
	case p.pinned.Count() > 0:
		return "pinned to CPUs " + cpuset.Format(p.pinned)
	case p.packer != nil:
		return p.packer.String()
	}
	return "any CPU (the kernel's choice)"
}

// trimExecutable unmaps the executable's pages that only start-up touched
// (see package exetrim): a running function's RSS then counts the code it
// runs, not the whole binary's set-up. A failure costs nothing but the
// saving, so it is only logged.
func trimExecutable(log *slog.Logger) {
	maps, err := exetrim.Drop()
	if err != nil {
		log.Debug("executable pages not trimmed", "err", err.Error())
		return
	}
	log.Debug("executable pages unmapped after start-up", "kB", exetrim.DroppedKB(maps))
}
