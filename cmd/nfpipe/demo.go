package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nfpipe/nfpipe/internal/demo"
)

func newDemoCommand() *cobra.Command {
	seconds := 3
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run the built-in demo: hosts and a router as separate processes, two-way and one-way",
		Long: `Run nfpipe's built-in demo, no files needed. It starts network functions as
child processes of this binary and prints what each reports:

  two-way:  client --unix socket--> router --unix socket--> server
            ping (IPv4, IPv6), TCP echo, HTTP over IPv6, bulk TCP throughput
  one-way:  gen | router | sink over OS pipes, 1000 UDP packets, none lost

It exits 0 when every check passed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if code := demo.Run(ctx, demo.Options{Exe: exe, Seconds: seconds, Out: cmd.OutOrStdout()}); code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", seconds, "length of the bulk TCP transfer")
	return cmd
}
