package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/kinds"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit status out of a cobra command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func execute(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(os.Stderr, "nfpipe: %v\n", err)
		return vnf.ExitBadSpec
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "nfpipe",
		Short: "network functions on their own user-space stacks, wired like Unix programs",
		Long: `nfpipe runs network functions (routers, hosts, ...) that each have their own
gVisor TCP/IP stack in their own process and reach the world only through
files and streams: stdin/stdout, FIFOs, unix sockets, pcap files, TAP devices.
Functions compose like Unix programs:

  nfpipe vnf host ... | nfpipe vnf router ... | nfpipe vnf host ...

Start with 'nfpipe demo', then 'nfpipe vnf --help'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	reg := kinds.Registry()
	root.AddCommand(newVNFCommand(reg), newChainCommand(reg), newDemoCommand())
	return root
}

// newLogger builds the process's logger on stderr.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
