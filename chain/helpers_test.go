package chain

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/host"
	"github.com/nfpipe/nfpipe/vnf/router"
)

// testRegistry holds router and host only, so that the error messages
// these tests expect do not change when a kind is added.
func testRegistry() *vnf.Registry {
	r := vnf.NewRegistry()
	for _, k := range []vnf.Kind{router.Kind(), host.Kind()} {
		if err := r.Register(k); err != nil {
			panic(err)
		}
	}
	return r
}

// testFlags stands in for the flags of `nfpipe vnf KIND`, which live in
// package main; cmd/nfpipe's tests check every example with the real ones.
func testFlags(reg *vnf.Registry, kind string) *pflag.FlagSet {
	f := pflag.NewFlagSet(kind, pflag.ContinueOnError)
	f.String("name", "", "")
	for _, l := range []string{"if", "ip", "route", "gw", "neigh", "capture", "rules", "rule", "end-on", "conntrack-timeout"} {
		f.StringArray(l, nil, "")
	}
	f.String("stats", "", "")
	f.Lookup("stats").NoOptDefVal = "text"
	f.Bool("linger", false, "")
	f.Duration("timeout", 0, "")
	f.Int("conntrack-max", 262144, "")
	f.String("control", "", "")
	f.String("log-level", "info", "")
	f.String("config", "", "")
	if k, err := reg.Lookup(kind); err == nil {
		for _, p := range k.Params {
			switch {
			case p.Bool:
				f.Bool(p.Name, false, "")
			case p.Repeatable:
				f.StringArray(p.Name, nil, "")
			default:
				f.String(p.Name, "", "")
			}
		}
	}
	if kind == "host" {
		f.StringArray("run", nil, "")
		f.StringArray("serve", nil, "")
		f.Int64("expect", -1, "")
	}
	return f
}

// testBuild stands in for cmd/nfpipe's buildConfig.
func testBuild(reg *vnf.Registry, kind string, args []string) (*vnf.Config, error) {
	f := testFlags(reg, kind)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	cfg := &vnf.Config{Kind: kind, Expect: -1}
	list := func(name string) []string { l, _ := f.GetStringArray(name); return l }
	cfg.Stack.Name, _ = f.GetString("name")
	for _, s := range list("if") {
		n, err := netstack.ParseNIC(s)
		if err != nil {
			return nil, fmt.Errorf("--if: %w", err)
		}
		cfg.Stack.NICs = append(cfg.Stack.NICs, n)
	}
	for _, s := range list("gw") {
		gw := netip.MustParseAddr(s)
		dst := netip.MustParsePrefix("0.0.0.0/0")
		if gw.Is6() {
			dst = netip.MustParsePrefix("::/0")
		}
		cfg.Stack.Routes = append(cfg.Stack.Routes, netstack.Route{Dst: dst, Gateway: gw})
	}
	for _, s := range list("route") {
		r, err := netstack.ParseRoute(s)
		if err != nil {
			return nil, err
		}
		cfg.Stack.Routes = append(cfg.Stack.Routes, r)
	}
	for _, s := range list("neigh") {
		nb, err := netstack.ParseNeighbor(s)
		if err != nil {
			return nil, err
		}
		cfg.Stack.Neighbors = append(cfg.Stack.Neighbors, nb)
	}
	cfg.RuleFiles, cfg.Rules = list("rules"), list("rule")
	cfg.Stack.EndOn = list("end-on")
	cfg.Control, _ = f.GetString("control")
	if kind == "host" {
		cfg.Run, cfg.Serve = list("run"), list("serve")
		cfg.Expect, _ = f.GetInt64("expect")
	}
	if k, err := reg.Lookup(kind); err == nil {
		cfg.Params = map[string][]string{}
		for _, p := range k.Params {
			switch {
			case p.Bool:
				if b, _ := f.GetBool(p.Name); b {
					cfg.Params[p.Name] = []string{"true"}
				}
			case p.Repeatable:
				cfg.Params[p.Name] = list(p.Name)
			default:
				if v, _ := f.GetString(p.Name); v != "" {
					cfg.Params[p.Name] = []string{v}
				}
			}
		}
	}
	if st, _ := f.GetString("stats"); st != "" && st != "text" && st != "json" {
		return nil, fmt.Errorf("--stats=%s: want text or json", st)
	}
	return cfg, nil
}

// testOptions checks specs with router and host only, relative paths
// starting in testdata.
func testOptions() Options { return optionsWith(testRegistry()) }

// optionsWith checks specs with the kinds of reg.
func optionsWith(reg *vnf.Registry) Options {
	return Options{
		Registry:    reg,
		Flags:       func(kind string) *pflag.FlagSet { return testFlags(reg, kind) },
		Build:       func(kind string, args []string) (*vnf.Config, error) { return testBuild(reg, kind, args) },
		RuntimeRoot: "/run/nfpipe",
		Dir:         "testdata",
	}
}

// dedent removes the indentation of a raw string literal's lines, so that
// specs can be written indented in the tests.
func dedent(s string) string {
	lines := strings.Split(strings.TrimPrefix(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if indent > 0 && len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// mustCheck checks a spec that must be valid.
func mustCheck(t *testing.T, src string) *Plan {
	t.Helper()
	p, err := Check("t.yaml", []byte(dedent(src)), testOptions())
	if err != nil {
		t.Fatalf("unexpected errors:\n%v", err)
	}
	return p
}
