package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/nfpipe/nfpipe/chain"
	"github.com/nfpipe/nfpipe/configs"
	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/kindflags"
)

// builtinSpec names the embedded quickstart chain in messages.
const builtinSpec = "<built-in quickstart.yaml>"

func newChainCommand(reg *vnf.Registry) *cobra.Command {
	v := viper.New()
	v.SetEnvPrefix("NFPIPE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	cmd := &cobra.Command{
		Use:   "chain",
		Short: "run a chain of network functions described in a YAML file: up, status, stats, capture, reload, down",
		Long: `A chain spec describes network functions, their interfaces and the links
between them; nfpipe resolves it into a plan (one 'nfpipe vnf KIND' child per
function, with its exact command line and the descriptors it inherits) and
runs it: each function its own process and its own stack, wired by the
runner, supervised and restarted as the spec says.

  nfpipe chain up [FILE]          run until the clients finish or Ctrl-C
  nfpipe chain check [FILE]       validate, print the resolved plan (--json)
  nfpipe chain graph [FILE]       draw the topology (--format ascii|dot|mermaid)
  nfpipe chain status [CHAIN]     functions, states, restarts (--json)
  nfpipe chain stats [CHAIN]      every function's counters (--json)
  nfpipe chain capture [CHAIN] FN:IF | tcpdump -nr -    live pcap of a link
  nfpipe chain reload [CHAIN] [FN]  re-read rules in place
  nfpipe chain down [CHAIN]       stop it

Without FILE, the built-in quickstart chain (configs/quickstart.yaml) is
used; '-' reads the spec from standard input. CHAIN may be left out when one
chain is running. The spec format is in docs/chain.md.`,
	}
	cmd.PersistentFlags().String("runtime-dir", "", "where chains keep their runtime directories (default $XDG_RUNTIME_DIR/nfpipe or /tmp/nfpipe-UID; env NFPIPE_RUNTIME_DIR)")
	if err := v.BindPFlag("runtime-dir", cmd.PersistentFlags().Lookup("runtime-dir")); err != nil {
		panic(err)
	}
	plan := func(cmd *cobra.Command, args []string) (*chain.Plan, error) {
		opts := chainOptions(reg)
		opts.RuntimeRoot = v.GetString("runtime-dir")
		name, data, err := readSpec(cmd.InOrStdin(), args)
		if err != nil {
			return nil, err
		}
		if name == builtinSpec {
			opts.Dir = "."
		}
		p, err := chain.Check(name, data, opts)
		var list chain.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(cmd.ErrOrStderr(), e)
			}
			s := "s"
			if len(list) == 1 {
				s = ""
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "nfpipe: %d problem%s in %s\n", len(list), s, name)
			return nil, exitError{vnf.ExitBadSpec}
		}
		return p, err
	}

	asJSON := false
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "validate a chain spec and print its resolved plan",
		Long: `Validate a chain spec — every problem is reported at once, as
FILE:LINE:COL: path.to.field: message — and print the resolved plan: for each
function its interfaces, the descriptors it inherits and its exact command
line; the links and mirrors; the chain's runtime directory. Exit status 2 if
the spec has problems.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := plan(cmd, args)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetEscapeHTML(false)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			return p.WriteText(cmd.OutOrStdout())
		},
	}
	check.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")

	format := "ascii"
	graph := &cobra.Command{
		Use:   "graph [FILE]",
		Short: "draw a chain's topology",
		Long: `Draw a chain's functions and links: as text for a terminal (ascii, the
default), for Graphviz (dot: nfpipe chain graph --format dot F | dot -Tsvg >
chain.svg) or for Mermaid (mermaid: paste into a ` + "```mermaid" + ` block).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			p, err := plan(cmd, args)
			if err != nil {
				return err
			}
			return p.WriteGraph(cmd.OutOrStdout(), format)
		},
	}
	graph.Flags().StringVar(&format, "format", format, "ascii, dot or mermaid")
	cmd.AddCommand(check, graph)
	root := func() string {
		if r := v.GetString("runtime-dir"); r != "" {
			return r
		}
		return chain.DefaultRuntimeRoot()
	}
	cmd.AddCommand(newChainUp(plan))
	cmd.AddCommand(newChainControl(root)...)
	return cmd
}

func newChainUp(plan func(*cobra.Command, []string) (*chain.Plan, error)) *cobra.Command {
	var grace, ready time.Duration
	up := &cobra.Command{
		Use:   "up [FILE]",
		Short: "run a chain until its clients finish, Ctrl-C or `chain down`",
		Long: `Run a chain: create its links, start every function as a child process
(servers and middleboxes first, then clients), merge their output with a
per-function prefix, restart functions as their restart policy says, and
serve status, stats, capture, reload and down on the chain's control socket.

A chain with clients (hosts that --run something) ends when they finish: the
others are stopped, a summary table is printed, and the exit status is 0
only if every client passed and every function's own checks (a sink's
expect) held. A chain without clients runs until Ctrl-C or 'chain down'.
Exit status 2: the chain could not be set up.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := plan(cmd, args)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the nfpipe binary: %w", err)
			}
			out := cmd.OutOrStdout()
			for _, f := range p.Functions {
				for _, d := range f.FDs {
					if d.Object == chain.FDStdout {
						out = cmd.ErrOrStderr() // frames go to stdout
					}
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			code := chain.Up(ctx, p, chain.RunOptions{Exe: exe, Out: out, Err: cmd.ErrOrStderr(),
				Color: isTerminal(out), Grace: grace, ReadyTimeout: ready})
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	up.Flags().DurationVar(&grace, "grace", 5*time.Second, "how long stopping functions get before SIGKILL")
	up.Flags().DurationVar(&ready, "ready-timeout", 15*time.Second, "how long a function may take to come up")
	return up
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// chainDir finds the runtime directory of the chain named in args[0], or
// of the only running chain.
func chainDir(root string, args []string) (string, []string, error) {
	running := chain.Running(root)
	if len(args) > 0 && slices.Contains(running, args[0]) {
		return filepath.Join(root, args[0]), args[1:], nil
	}
	if len(args) > 0 && !strings.Contains(args[0], ":") {
		if _, err := os.Stat(filepath.Join(root, args[0])); err == nil || len(running) != 1 {
			return "", nil, fmt.Errorf("chain %q is not running (running: %s)", args[0], listOrNone(running))
		}
	}
	switch len(running) {
	case 0:
		return "", nil, fmt.Errorf("no chain is running (under %s)", root)
	case 1:
		return filepath.Join(root, running[0]), args, nil
	}
	return "", nil, fmt.Errorf("several chains are running: say which (%s)", strings.Join(running, ", "))
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func newChainControl(root func() string) []*cobra.Command {
	asJSON := false
	ctx := func(cmd *cobra.Command) (context.Context, context.CancelFunc) {
		return context.WithTimeout(cmd.Context(), 15*time.Second)
	}
	status := &cobra.Command{
		Use:   "status [CHAIN]",
		Short: "show a running chain's functions: state, pid, restarts",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _, err := chainDir(root(), args)
			if err != nil {
				return err
			}
			c, cancel := ctx(cmd)
			defer cancel()
			var st chain.ChainStatus
			if err := chain.Call(c, dir, chain.ControlRequest{Op: "status"}, &st); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "chain %s (runner pid %d, up %v, %s)\n", st.Chain, st.PID, time.Since(st.Started).Round(time.Second), st.Spec)
			fmt.Fprintln(w, "FUNCTION\tKIND\tSTATE\tPID\tRESTARTS\tNOTE")
			for _, f := range st.Functions {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", f.Name, f.Kind, f.State, f.PID, f.Restarts, f.Reason)
			}
			return w.Flush()
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	statsJSON := false
	stats := &cobra.Command{
		Use:   "stats [CHAIN] [FUNCTION]",
		Short: "print every function's counters: per interface, per protocol, per rule",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, rest, err := chainDir(root(), args)
			if err != nil {
				return err
			}
			req := chain.ControlRequest{Op: "stats"}
			if len(rest) > 0 {
				req.Function = rest[0]
			}
			c, cancel := ctx(cmd)
			defer cancel()
			var st chain.ChainStats
			if err := chain.Call(c, dir, req, &st); err != nil {
				return err
			}
			if statsJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
			}
			var names []string
			for n := range st.Functions {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				var rep vnf.StatsReport
				if err := json.Unmarshal(st.Functions[n], &rep); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				vnf.WriteText(cmd.OutOrStdout(), &rep)
				fmt.Fprintln(cmd.OutOrStdout())
			}
			for n, e := range st.Errors {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", n, e)
			}
			return nil
		},
	}
	stats.Flags().BoolVar(&statsJSON, "json", false, "print JSON")

	capture := &cobra.Command{
		Use:   "capture [CHAIN] FUNCTION:INTERFACE",
		Short: "write a live pcap of one interface to stdout (| tcpdump -nr -)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, rest, err := chainDir(root(), args)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return fmt.Errorf("say which interface: FUNCTION:INTERFACE")
			}
			fn, ifc, ok := strings.Cut(rest[0], ":")
			if !ok || fn == "" || ifc == "" {
				return fmt.Errorf("%q: want FUNCTION:INTERFACE, e.g. fw:eth1", rest[0])
			}
			c, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rc, err := chain.Capture(c, dir, fn, ifc)
			if err != nil {
				return err
			}
			go func() { <-c.Done(); rc.Close() }()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			rc.Close()
			if c.Err() != nil || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		},
	}

	reload := &cobra.Command{
		Use:   "reload [CHAIN] [FUNCTION]",
		Short: "make functions re-read their rules (all, or one)",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, rest, err := chainDir(root(), args)
			if err != nil {
				return err
			}
			req := chain.ControlRequest{Op: "reload"}
			if len(rest) > 0 {
				req.Function = rest[0]
			}
			c, cancel := ctx(cmd)
			defer cancel()
			var r vnf.ControlReply
			if err := chain.Call(c, dir, req, &r); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "rules reloaded")
			return nil
		},
	}

	down := &cobra.Command{
		Use:   "down [CHAIN]",
		Short: "stop a running chain and wait until it is gone",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _, err := chainDir(root(), args)
			if err != nil {
				return err
			}
			c, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			var r vnf.ControlReply
			if err := chain.Call(c, dir, chain.ControlRequest{Op: "down"}, &r); err != nil {
				return err
			}
			pidFile := filepath.Join(dir, "runner.pid")
			for {
				if _, err := os.Stat(pidFile); err != nil {
					return nil
				}
				select {
				case <-c.Done():
					return fmt.Errorf("the chain did not stop within a minute (%s)", dir)
				case <-time.After(20 * time.Millisecond):
				}
			}
		},
	}
	return []*cobra.Command{status, stats, capture, reload, down}
}

func checkFormat(f string) error {
	for _, g := range chain.GraphFormats {
		if f == g {
			return nil
		}
	}
	return fmt.Errorf("--format %s: want %s", f, strings.Join(chain.GraphFormats, ", "))
}

// readSpec returns the spec named by args: a file, "-" for standard
// input, or the built-in quickstart chain.
func readSpec(stdin io.Reader, args []string) (string, []byte, error) {
	switch {
	case len(args) == 0:
		return builtinSpec, configs.Quickstart, nil
	case args[0] == "-":
		b, err := io.ReadAll(stdin)
		return "<stdin>", b, err
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return "", nil, fmt.Errorf("chain spec: %w", err)
	}
	return args[0], b, nil
}

// chainOptions connects the chain package to the real `nfpipe vnf KIND`
// flags, so that kind parameters and generated command lines are checked
// by the code that will run them.
func chainOptions(reg *vnf.Registry) chain.Options {
	return chain.Options{
		Registry: reg,
		Flags: func(kind string) *pflag.FlagSet {
			k, err := reg.Lookup(kind)
			if err != nil {
				return nil
			}
			f := pflag.NewFlagSet(kind, pflag.ContinueOnError)
			kindflags.Define(f, k)
			return f
		},
		Build: func(kind string, args []string) (*vnf.Config, error) {
			k, err := reg.Lookup(kind)
			if err != nil {
				return nil, err
			}
			c := newKindCommand(reg, k)
			if err := c.ParseFlags(args); err != nil {
				return nil, err
			}
			if rest := c.Flags().Args(); len(rest) > 0 {
				return nil, fmt.Errorf("unexpected argument %q", rest[0])
			}
			// No environment, no config file: the command line alone, as
			// the runner will start the child.
			v := viper.New()
			if err := v.BindPFlags(c.Flags()); err != nil {
				return nil, err
			}
			cfg, err := kindflags.Build(c.Flags(), v, k)
			return &cfg, err
		},
	}
}
