package main

import (
	"context"
	"fmt"
	"net/netip"
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
	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
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
  tap:NAME                 a Linux TAP device (needs CAP_NET_ADMIN)
  none                     no such side

With RX|TX the first endpoint receives and the second sends:
eth0=fifo:/tmp/in|fifo:/tmp/out. stdin alone only receives, stdout alone only
sends. Keys: format=qemu|vde|pcap|hex (framing on byte streams, default qemu),
ip=ADDR/LEN (repeatable), mac=MAC, mtu=N, peer=MAC|broadcast,
timing=original (pcap replay pace), capture=PATH.

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
var listFlags = []string{"if", "ip", "route", "gw", "neigh", "capture", "run", "serve", "rules", "rule", "conntrack-timeout", "end-on"}

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
	f := cmd.Flags()
	f.String("name", "", "function name (logs, default MACs); default: the kind")
	f.StringArray("if", nil, "interface NAME=ENDPOINT[|ENDPOINT][,key=value...] (repeatable)")
	f.StringArray("ip", nil, "address [NAME=]ADDR/LEN; NAME may be left out with one interface (repeatable)")
	f.StringArray("route", nil, "static route 'PREFIX|default [via GW] [dev NAME]' (repeatable)")
	f.StringArray("gw", nil, "default gateway ADDR, IPv4 or IPv6 (repeatable)")
	f.StringArray("neigh", nil, "static neighbour 'ADDR lladdr MAC [dev NAME]' (repeatable)")
	f.StringArray("capture", nil, "write a pcap of interface NAME to PATH (file or FIFO): NAME=PATH (repeatable)")
	f.StringArray("rules", nil, "iptables rules file (iptables-save format or one command per line), applied to this stack; re-read on SIGHUP (repeatable)")
	f.StringArray("rule", nil, "one iptables rule, e.g. '-A FORWARD -p tcp --dport 23 -j DROP' (repeatable)")
	f.Int("conntrack-max", netstack.DefaultConntrackMax, "most connections tracked at once once rules are installed; new flows beyond are dropped and counted")
	f.StringArray("conntrack-timeout", nil, "idle timeout NAME=DURATION, names as Linux's nf_conntrack_*_timeout: tcp_syn_sent, tcp_established, tcp_fin_wait, tcp_close, udp, udp_stream, icmp (repeatable)")
	f.String("stats", "", "print counters on exit: text or json")
	f.Lookup("stats").NoOptDefVal = "text"
	f.Bool("linger", false, "keep running after the input ends")
	f.StringArray("end-on", nil, "end when the input of these interfaces ends (default: of every interface whose input can end) (repeatable)")
	f.Duration("timeout", 0, "stop after this long (e.g. 30s); 0 = never")
	f.Duration("connect-timeout", netstack.DefaultConnectTimeout, "how long unix: interfaces wait for their listener")
	f.String("control", "", "serve status, stats, reload, stop and live capture on this unix socket while running")
	f.String("config", "", "read settings from this YAML/JSON/TOML file (flags win)")
	f.String("log-level", "info", "debug, info, warn or error")
	for _, p := range k.Params {
		switch {
		case p.Bool:
			f.Bool(p.Name, false, p.Usage)
		case p.Repeatable:
			f.StringArray(p.Name, nil, p.Usage+" (repeatable)")
		default:
			f.String(p.Name, "", p.Usage)
		}
	}
	if k.Name == "host" {
		f.StringArray("run", nil, "run a client application, in order (repeatable); see below")
		f.StringArray("serve", nil, "serve an application until the function stops (repeatable); see below")
		f.Int64("expect", -1, "the sink must receive exactly this many UDP packets (TCP: bytes), or exit 1")
	}
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
	cfg, err := buildConfig(cmd, v, k)
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

// stringList reads a repeatable setting. Flags come straight from pflag:
// viper would split their values on commas, and interface specs have commas.
// In an NFPIPE_* variable, items are separated by ';' or newlines.
func stringList(cmd *cobra.Command, v *viper.Viper, key string) ([]string, error) {
	if f := cmd.Flags().Lookup(key); f != nil && f.Changed {
		return cmd.Flags().GetStringArray(key)
	}
	switch val := v.Get(key).(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, s := range strings.FieldsFunc(val, func(r rune) bool { return r == ';' || r == '\n' }) {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	case []string:
		return val, nil
	case []any:
		var out []string
		for _, x := range val {
			out = append(out, fmt.Sprint(x))
		}
		return out, nil
	default:
		return nil, fmt.Errorf("setting %q: want a list of strings, got %T", key, val)
	}
}

func buildConfig(cmd *cobra.Command, v *viper.Viper, k *vnf.Kind) (vnf.Config, error) {
	cfg := vnf.Config{Kind: k.Name, Expect: -1}
	lists := map[string][]string{}
	for _, key := range listFlags {
		if cmd.Flags().Lookup(key) == nil {
			continue
		}
		l, err := stringList(cmd, v, key)
		if err != nil {
			return cfg, err
		}
		lists[key] = l
	}
	cfg.Stack.Name = v.GetString("name")
	cfg.Stack.ConnectTimeout = v.GetDuration("connect-timeout")
	for _, s := range lists["if"] {
		n, err := netstack.ParseNIC(s)
		if err != nil {
			return cfg, fmt.Errorf("--if: %w", err)
		}
		cfg.Stack.NICs = append(cfg.Stack.NICs, n)
	}
	nic := func(flag, name string) (*netstack.NICConfig, error) {
		if name == "" {
			if len(cfg.Stack.NICs) != 1 {
				return nil, fmt.Errorf("%s: say which interface (NAME=...) when there are %d", flag, len(cfg.Stack.NICs))
			}
			return &cfg.Stack.NICs[0], nil
		}
		for i := range cfg.Stack.NICs {
			if cfg.Stack.NICs[i].Name == name {
				return &cfg.Stack.NICs[i], nil
			}
		}
		return nil, fmt.Errorf("%s: no interface %q (give it with --if %s=...)", flag, name, name)
	}
	for _, s := range lists["ip"] {
		name, addr, ok := strings.Cut(s, "=")
		if !ok {
			name, addr = "", s
		}
		p, err := netstack.ParsePrefix(addr)
		if err != nil {
			return cfg, fmt.Errorf("--ip %s: %w", s, err)
		}
		n, err := nic("--ip "+s, name)
		if err != nil {
			return cfg, err
		}
		n.Addrs = append(n.Addrs, p)
	}
	for _, s := range lists["capture"] {
		name, path, ok := strings.Cut(s, "=")
		if !ok || path == "" {
			return cfg, fmt.Errorf("--capture %s: want NAME=PATH", s)
		}
		n, err := nic("--capture "+s, name)
		if err != nil {
			return cfg, err
		}
		n.Capture = path
	}
	for _, s := range lists["gw"] {
		gw, err := netip.ParseAddr(s)
		if err != nil {
			return cfg, fmt.Errorf("--gw %s: not an IP address", s)
		}
		dst := netip.MustParsePrefix("0.0.0.0/0")
		if gw.Is6() {
			dst = netip.MustParsePrefix("::/0")
		}
		cfg.Stack.Routes = append(cfg.Stack.Routes, netstack.Route{Dst: dst, Gateway: gw})
	}
	for _, s := range lists["route"] {
		r, err := netstack.ParseRoute(s)
		if err != nil {
			return cfg, fmt.Errorf("--route: %w", err)
		}
		cfg.Stack.Routes = append(cfg.Stack.Routes, r)
	}
	for _, s := range lists["neigh"] {
		nb, err := netstack.ParseNeighbor(s)
		if err != nil {
			return cfg, fmt.Errorf("--neigh: %w", err)
		}
		cfg.Stack.Neighbors = append(cfg.Stack.Neighbors, nb)
	}
	cfg.Run, cfg.Serve = lists["run"], lists["serve"]
	cfg.RuleFiles, cfg.Rules = lists["rules"], lists["rule"]
	cfg.Stack.EndOn = lists["end-on"]
	for _, p := range k.Params {
		if cfg.Params == nil {
			cfg.Params = map[string][]string{}
		}
		if p.Bool {
			if v.GetBool(p.Name) {
				cfg.Params[p.Name] = []string{"true"}
			}
		} else if p.Repeatable {
			l, err := stringList(cmd, v, p.Name)
			if err != nil {
				return cfg, err
			}
			cfg.Params[p.Name] = l
		} else if s := v.GetString(p.Name); s != "" {
			cfg.Params[p.Name] = []string{s}
		}
	}
	cfg.Stack.Conntrack.Max = v.GetInt("conntrack-max")
	if cfg.Stack.Conntrack.Max <= 0 {
		return cfg, fmt.Errorf("--conntrack-max %d: must be at least 1", cfg.Stack.Conntrack.Max)
	}
	for _, s := range lists["conntrack-timeout"] {
		if err := cfg.Stack.Conntrack.Timeouts.Set(s); err != nil {
			return cfg, fmt.Errorf("--conntrack-timeout: %w", err)
		}
	}
	if cmd.Flags().Lookup("expect") != nil {
		cfg.Expect = v.GetInt64("expect")
	}
	cfg.Linger = v.GetBool("linger")
	cfg.Control = v.GetString("control")
	cfg.Timeout = v.GetDuration("timeout")
	switch st := v.GetString("stats"); st {
	case "", "text", "json":
		cfg.Stats = st
	default:
		return cfg, fmt.Errorf("--stats=%s: want text or json", st)
	}
	return cfg, nil
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
