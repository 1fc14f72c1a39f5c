package chain

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/host"
	"github.com/nfpipe/nfpipe/vnf/kindflags"
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

// testFlags returns the real flags of `nfpipe vnf KIND`.
func testFlags(reg *vnf.Registry, kind string) *pflag.FlagSet {
	k, err := reg.Lookup(kind)
	if err != nil {
		return nil
	}
	f := pflag.NewFlagSet(kind, pflag.ContinueOnError)
	kindflags.Define(f, k)
	return f
}

// testBuild builds a Config from a generated command line as `nfpipe vnf
// KIND` does, without environment or config file.
func testBuild(reg *vnf.Registry, kind string, args []string) (*vnf.Config, error) {
	k, err := reg.Lookup(kind)
	if err != nil {
		return nil, err
	}
	f := testFlags(reg, kind)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	if rest := f.Args(); len(rest) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", rest[0])
	}
	v := viper.New()
	if err := v.BindPFlags(f); err != nil {
		return nil, err
	}
	cfg, err := kindflags.Build(f, v, k)
	return &cfg, err
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
