// Package vnf defines network-function kinds and runs one function in this
// process: it builds the function's own stack from a Config, lets the kind
// do its work on it, and handles the lifecycle every kind shares (start,
// end of input, signals, draining, counters, exit status).
package vnf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nfpipe/nfpipe/internal/cpuset"
	"github.com/nfpipe/nfpipe/netstack"
)

// Config is everything a function is told, whatever its kind.
type Config struct {
	// Kind names the function kind (router, host, ...).
	Kind string
	// Stack describes the function's stack: NICs, routes, neighbours. Its
	// Name is the function's name; Forwarding is set from the kind.
	Stack netstack.Config
	// Run and Serve are the host applications to run (clients, in order)
	// and to serve (until the function stops).
	Run, Serve []string
	// Expect is the number of packets (UDP) or bytes (TCP) a host's sink
	// must receive; -1 when not set.
	Expect int64
	// Linger keeps the function running after its input ends.
	Linger bool
	// Timeout stops the function after this long; zero means never.
	Timeout time.Duration
	// Procs is how many CPUs may run the function's Go code at once
	// (GOMAXPROCS); 0 leaves the Go runtime's choice (all CPUs, or the
	// GOMAXPROCS variable).
	Procs int
	// CPUs, when not empty, are the CPUs every thread of the function is
	// pinned to (--cpus LIST), before its stack starts.
	CPUs cpuset.Set
	// PackCPUs, with CPUs empty, keeps the function on one CPU while it is
	// lightly loaded and lets it out onto every CPU under load (--cpus
	// auto, the command line's default; see cpuset.Packer). False leaves
	// placement to the kernel.
	PackCPUs bool
	// Stats selects the counters printed on exit: "", "text" or "json".
	Stats string
	// RuleFiles are iptables rule files (iptables-save format or one
	// command per line); Rules are rules given one by one (--rule). Both
	// are applied to the function's own stack, and re-read on SIGHUP.
	RuleFiles, Rules []string
	// Params holds the values of the kind's own flags (Kind.Params), by
	// flag name.
	Params map[string][]string
	// Control, when set, is the path of a unix socket on which the running
	// function answers status, stats, reload, stop and capture requests
	// (see control.go).
	Control string
	// PresetRules are rules a kind installs by itself (nat, firewall), as
	// iptables commands, before RuleFiles and Rules. Kind.New sets them.
	PresetRules []string
}

// Param is a flag of one kind only (nat --outside, firewall --allow).
type Param struct {
	Name  string
	Usage string
	// Repeatable params may be given several times; Bool ones are
	// switches (their value is "true" when given).
	Repeatable, Bool bool
}

// Param returns the last value of a kind flag, or "".
func (c *Config) Param(name string) string {
	if v := c.Params[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// Function is a running network function of some kind.
type Function interface {
	// Run does the function's work until it is finished or ctx is
	// cancelled. A non-nil error makes the process exit non-zero.
	Run(ctx context.Context, env *Env) error
}

// Starter is implemented by functions that must prepare before frames flow
// (bind their servers), so that no early packet finds nobody listening.
type Starter interface {
	Start(ctx context.Context, env *Env) error
}

// Reporter is implemented by functions with counters of their own (host
// applications); Report returns a JSON-marshalable value.
type Reporter interface {
	Report() any
}

// Env is what a function gets to work with.
type Env struct {
	Stack *netstack.Stack
	Log   *slog.Logger
	// Out receives human-readable results (ping lines, summaries). It is
	// standard output, or standard error when frames go to standard output.
	Out io.Writer
	// Config is the function's configuration.
	Config *Config
}

// Kind is a kind of network function.
type Kind struct {
	// Name is what `nfpipe vnf NAME` is called with.
	Name string
	// Summary is the one line `nfpipe vnf --list` prints.
	Summary string
	// Doc is the kind's help text: what it does, its options, examples.
	Doc string
	// Forwarding makes the kind's stack forward packets between its NICs.
	Forwarding bool
	// Params are the kind's own flags.
	Params []Param
	// New validates cfg for this kind and returns the function.
	New func(cfg *Config) (Function, error)
}

// Registry holds the known kinds.
type Registry struct {
	kinds map[string]*Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]*Kind{}} }

// Register adds a kind; registering a name twice is an error.
func (r *Registry) Register(k Kind) error {
	if k.Name == "" || k.New == nil {
		return fmt.Errorf("register kind %q: needs a name and a constructor", k.Name)
	}
	if _, dup := r.kinds[k.Name]; dup {
		return fmt.Errorf("register kind %q: already registered", k.Name)
	}
	r.kinds[k.Name] = &k
	return nil
}

// Lookup returns the kind called name; the error lists the known kinds.
func (r *Registry) Lookup(name string) (*Kind, error) {
	if k, ok := r.kinds[name]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown kind %q (known kinds: %s)", name, strings.Join(r.Names(), ", "))
}

// Names returns the kind names, sorted.
func (r *Registry) Names() []string {
	var names []string
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Kinds returns the kinds sorted by name.
func (r *Registry) Kinds() []*Kind {
	var out []*Kind
	for _, n := range r.Names() {
		out = append(out, r.kinds[n])
	}
	return out
}
