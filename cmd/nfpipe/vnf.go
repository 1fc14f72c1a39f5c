package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/nfpipe/nfpipe/internal/suggest"
	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/kindflags"
)

const vnfLong = `Run one network function, on its own TCP/IP stack, in this process.

Each --if gives the function an interface and says where its Ethernet
frames come from and go to:

  --if NAME=ENDPOINT[|ENDPOINT][,key=value...]

  stdin, stdout, stdio     the process's standard input/output
  fd:N                     an inherited file descriptor (byte stream)
  fifo:PATH                a named pipe (created if missing; one-way)
  file:PATH, pcap:PATH     a file: replayed when receiving, written when sending
  unix:PATH                connect to a unix stream socket (retried until it exists)
  unix-listen:PATH         listen on a unix stream socket; peers may reconnect
  seqpacket:N              an inherited SOCK_SEQPACKET fd, one frame per message
                           (pack=on: several, each after its 2-byte length)
  tap:NAME                 a Linux TAP device (needs CAP_NET_ADMIN); netns=NS
                           opens it in network namespace NS (/run/netns/NS)
  none                     no such side

With RX|TX the first endpoint receives and the second sends:
eth0=fifo:/tmp/in|fifo:/tmp/out. stdin alone only receives, stdout alone only
sends. Keys: format=qemu|vde|pcap|hex (framing on byte streams, default qemu),
ip=ADDR/LEN (repeatable), mac=MAC, mtu=N, peer=MAC|broadcast,
timing=original (pcap replay pace), capture=PATH, netns=NS (tap),
gso=on|off (TCP segments up to 64 KiB cross the link whole: the peer must be
nfpipe; on by default for tap, with the kernel's offloads; elsewhere large
segments are split to the MTU), pack=on|off (seqpacket: several frames per
message when they queue up; both ends must agree).

Formats: qemu = 4-byte big-endian length + frame (QEMU -netdev stream, passt);
vde = 2-byte length + frame (vde_plug); pcap = libpcap stream (tcpdump -r -,
tcpdump -w -); hex = one frame per line, "DSTMAC SRCMAC TYPE XX XX ...",
for grep, sed and awk.

One-way links (a shell pipe: stdin alone or stdout alone) cannot resolve
neighbours, so such interfaces send every frame to the broadcast MAC (or to
peer=MAC) and receive frames sent to broadcast; a function whose only
interface is one-way also gets an on-link default route. Two-way links use
ARP and NDP; static entries come from --neigh.

The function ends when all its receive sides reach end of input (after
writing out what is queued), when its clients finish, on SIGINT/SIGTERM, or
after --timeout. SIGUSR1 prints its counters. Exit status: 0 ok, 1 the
function failed (ping loss, sink count mismatch, bad input), 2 bad options.`

const vnfExamples = `  # forward-only shell pipeline: host | router | host
  nfpipe vnf host --if eth0=stdout --ip 192.0.2.10/24 --run 'gen udp 198.51.100.7:9000 count=1000 size=200' \
   | nfpipe vnf router --if eth0=stdin,ip=192.0.2.1/24 --if eth1=stdout,ip=198.51.100.1/24 \
   | nfpipe vnf host --if eth0=stdin --ip 198.51.100.7/24 --serve 'sink udp:9000' --expect 1000

  # look at the packets
  nfpipe vnf host --if eth0=stdout,format=pcap --ip 192.0.2.10/24 --run 'gen udp 198.51.100.7:9000 count=5' | tcpdump -nr -

  # filter with grep: drop the flow to port 8080 (0x1F90)
  nfpipe vnf host --if eth0=stdout,format=hex --ip 192.0.2.10/24 --run 'gen udp 192.0.2.7:8080 count=10' --run 'gen udp 192.0.2.7:9000 count=10' \
   | grep --line-buffered -v ' 1F 90 ' \
   | nfpipe vnf host --if eth0=stdin,format=hex --ip 192.0.2.7/24 --serve 'sink udp:9000' --expect 10

  # two hosts, both ways, over a unix socket
  nfpipe vnf host --if 'eth0=unix-listen:/tmp/l.sock' --ip 192.0.2.2/24 --serve 'echo tcp:7' --serve 'http :80' --serve bulk &
  nfpipe vnf host --if 'eth0=unix:/tmp/l.sock' --ip 192.0.2.1/24 --run 'ping 192.0.2.2 count=5' --run 'http get http://192.0.2.2/' --run 'bulk 192.0.2.2 seconds=3'

  # the same over a FIFO pair
  nfpipe vnf host --if 'eth0=fifo:/tmp/ab|fifo:/tmp/ba' --ip 192.0.2.2/24 --serve 'echo tcp:7' &
  nfpipe vnf host --if 'eth0=fifo:/tmp/ba|fifo:/tmp/ab' --ip 192.0.2.1/24 --run 'echo tcp 192.0.2.2:7'`

// baseContext is the context functions run under; tests replace it to stop
// functions they run in-process.
var baseContext = context.Background

// vnfFlags are the settings of `nfpipe vnf KIND`; each can also come from
// --config FILE or an NFPIPE_* environment variable.

func newVNFCommand(reg *vnf.Registry) *cobra.Command {
	list := false
	cmd := &cobra.Command{
		Use:     "vnf KIND [flags]",
		Short:   "run one network function (router, host, ...) on its own stack",
		Long:    vnfLong,
		Example: vnfExamples,
		// A word that is not a kind reaches RunE (with whatever flags
		// follow it), so that the error names it and lists the kinds.
		Args:               cobra.ArbitraryArgs,
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				_, err := reg.Lookup(args[0])
				return err
			}
			if list {
				for _, k := range reg.Kinds() {
					fmt.Fprintf(cmd.OutOrStdout(), "%-10s %s\n", k.Name, k.Summary)
				}
				return nil
			}
			return cmd.Help()
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the kinds of network function")
	for _, k := range reg.Kinds() {
		cmd.AddCommand(newKindCommand(reg, k))
	}
	var kindList strings.Builder
	for _, k := range reg.Kinds() {
		fmt.Fprintf(&kindList, "  %-10s %s\n", k.Name, k.Summary)
	}
	cmd.Long += "\n\nKinds:\n" + kindList.String()
	return cmd
}

func newKindCommand(reg *vnf.Registry, k *vnf.Kind) *cobra.Command {
	cmd := &cobra.Command{
		Use:   k.Name + " [flags]",
		Short: k.Summary,
		Long:  k.Doc + "\n\nSee 'nfpipe vnf --help' for interfaces, formats and one-way links.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKind(cmd, reg, k)
		},
	}
	kindflags.Define(cmd.Flags(), k)
	return cmd
}

func runKind(cmd *cobra.Command, reg *vnf.Registry, k *vnf.Kind) error {
	v, err := loadSettings(cmd)
	if err != nil {
		return err
	}
	log, err := newLogger(v.GetString("log-level"))
	if err != nil {
		return err
	}
	cfg, err := kindflags.Build(cmd.Flags(), v, k)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(baseContext(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A reader that goes away (`| head`) is a write error on its
	// interface, counted, not a silent death by SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	r := &vnf.Runner{Registry: reg, Log: log, Stdout: os.Stdout, Stderr: os.Stderr}
	if code := r.Run(ctx, cfg); code != 0 {
		return exitError{code}
	}
	return nil
}

// loadSettings layers the settings: flags over NFPIPE_* variables over the
// --config file.
func loadSettings(cmd *cobra.Command) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("NFPIPE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(cmd.Flags()); err != nil {
		return nil, err
	}
	if path := v.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		var known []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) { known = append(known, f.Name) })
		lines := yamlKeyLines(path)
		for _, key := range v.AllKeys() {
			if cmd.Flags().Lookup(key) == nil && key != "config" {
				place := path
				if l, ok := lines[key]; ok {
					place = fmt.Sprintf("%s:%d:%d", path, l[0], l[1])
				}
				return nil, fmt.Errorf("config %s: unknown setting %q%s (settings are the flags of 'nfpipe vnf %s', without dashes)", place, key, suggest.DidYouMean(key, known), cmd.Name())
			}
		}
	}
	return v, nil
}

// yamlKeyLines maps the top-level keys of a YAML settings file to their
// line and column, so that an error about a key can point at it. It returns
// nothing for files that are not YAML.
func yamlKeyLines(path string) map[string][2]int {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".yaml" && ext != ".yml" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	out := map[string][2]int{}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		out[strings.ToLower(k.Value)] = [2]int{k.Line, k.Column}
	}
	return out
}
