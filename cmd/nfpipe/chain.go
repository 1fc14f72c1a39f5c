package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/nfpipe/nfpipe/chain"
	"github.com/nfpipe/nfpipe/configs"
	"github.com/nfpipe/nfpipe/vnf"
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
		Short: "describe functions and links in a YAML file: check it, draw it (running it is coming)",
		Long: `A chain spec describes network functions, their interfaces and the links
between them; nfpipe resolves it into a plan: one 'nfpipe vnf KIND' child
per function, with the exact command line and the descriptors it inherits.

  nfpipe chain check [FILE]     validate, print the resolved plan (--json)
  nfpipe chain graph [FILE]     draw the topology (--format ascii|dot|mermaid)

Without FILE, the built-in quickstart chain (configs/quickstart.yaml) is
used; '-' reads the spec from standard input. 'nfpipe chain up' (running a
chain) is coming. The spec format is in docs/chain.md.`,
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
	return cmd
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
			return newKindCommand(reg, k).Flags()
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
			cfg, err := buildConfig(c, v, k)
			return &cfg, err
		},
	}
}
