// Package kindflags defines the flags of `nfpipe vnf KIND` and turns their
// values into a vnf.Config. The command line and the chain runner's checks
// (which parse every generated command line) share it, so they cannot drift
// apart.
package kindflags

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/nfpipe/nfpipe/internal/cpuset"
	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
)

// ListFlags are the repeatable flags: read with StringList.
var ListFlags = []string{"if", "ip", "route", "gw", "neigh", "capture", "run", "serve", "rules", "rule", "conntrack-timeout", "end-on"}

// Define adds kind k's flags to f.
func Define(f *pflag.FlagSet, k *vnf.Kind) {
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
	f.Int("procs", 1, "CPUs that may run this function at once (GOMAXPROCS); 0 = all (or the GOMAXPROCS variable). One is faster when functions outnumber CPUs, as in most chains")
	f.String("cpus", "auto", "where the function runs: auto (on one CPU, shared with the other functions, while lightly loaded; on every CPU under load), all (the kernel's choice), or a CPU list such as 0 or 0-1,3 (pinned, as taskset -c)")
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
}

// StringList reads a repeatable setting. Flags come straight from pflag:
// viper would split their values on commas, and interface specs have commas.
// In an NFPIPE_* variable, items are separated by ';' or newlines.
func StringList(fs *pflag.FlagSet, v *viper.Viper, key string) ([]string, error) {
	if f := fs.Lookup(key); f != nil && f.Changed {
		return fs.GetStringArray(key)
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

// Build turns the settings (flags in fs, layered by v over the environment
// and a config file) into a function's Config.
func Build(fs *pflag.FlagSet, v *viper.Viper, k *vnf.Kind) (vnf.Config, error) {
	cfg := vnf.Config{Kind: k.Name, Expect: -1}
	lists := map[string][]string{}
	for _, key := range ListFlags {
		if fs.Lookup(key) == nil {
			continue
		}
		l, err := StringList(fs, v, key)
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
			l, err := StringList(fs, v, p.Name)
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
	if fs.Lookup("expect") != nil {
		cfg.Expect = v.GetInt64("expect")
	}
	cfg.Linger = v.GetBool("linger")
	cfg.Control = v.GetString("control")
	cfg.Timeout = v.GetDuration("timeout")
	cfg.Procs = v.GetInt("procs")
	if cfg.Procs < 0 {
		return cfg, fmt.Errorf("--procs %d: want 0 (all CPUs) or more", cfg.Procs)
	}
	if os.Getenv("GOMAXPROCS") != "" && !fs.Changed("procs") && os.Getenv("NFPIPE_PROCS") == "" && !v.InConfig("procs") {
		cfg.Procs = 0 // the GOMAXPROCS variable, set on purpose, wins over the default
	}
	switch c := strings.TrimSpace(v.GetString("cpus")); c {
	case "", "auto":
		cfg.PackCPUs = true
	case "all":
	default:
		set, err := cpuset.Parse(c)
		if err != nil {
			return cfg, fmt.Errorf("--cpus: %w (or auto, or all)", err)
		}
		cfg.CPUs = set
	}
	switch st := v.GetString("stats"); st {
	case "", "text", "json":
		cfg.Stats = st
	default:
		return cfg, fmt.Errorf("--stats=%s: want text or json", st)
	}
	return cfg, nil
}
