package vnf

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/nfpipe/nfpipe/netstack"
)

// StatsReport is the JSON form of a function's counters (--stats=json).
type StatsReport struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Procs is the function's GOMAXPROCS (see --procs).
	Procs int `json:"procs"`
	// CPUs says where the function runs (see --cpus): pinned, packed on
	// one CPU while idle, or spread.
	CPUs string         `json:"cpus"`
	Net  netstack.Stats `json:"stack"`
	// Apps holds what the function's own applications counted.
	Apps any `json:"apps,omitempty"`
	// Rules holds per-chain policy and per-rule counters.
	Rules []RuleStats `json:"rules,omitempty"`
}

func statsReport(cfg *Config, stk *netstack.Stack, fn Function, rst *ruleState, place fmt.Stringer) StatsReport {
	rep := StatsReport{Name: cfg.Stack.Name, Kind: cfg.Kind, Procs: runtime.GOMAXPROCS(0), CPUs: place.String(), Net: stk.Stats(), Rules: rst.snapshot()}
	if r, ok := fn.(Reporter); ok {
		rep.Apps = r.Report()
	}
	return rep
}

func writeStats(w io.Writer, format string, cfg *Config, stk *netstack.Stack, fn Function, rst *ruleState, place fmt.Stringer) {
	rep := statsReport(cfg, stk, fn, rst, place)
	if format == "json" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	WriteText(w, &rep)
}

// WriteText prints a report as --stats does: the counters as a table per
// interface, then the non-zero stack counters, the way `ip -s link` and
// `netstat -s` readers expect, then the rule counters.
func WriteText(w io.Writer, rep *StatsReport) {
	fmt.Fprintf(w, "== %s (%s) counters ==\n", rep.Name, rep.Kind)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IFACE\tRX-FRAMES\tRX-BYTES\tTX-FRAMES\tTX-BYTES\tDROPS\tLINK")
	for _, ifc := range rep.Net.Interfaces {
		c := ifc.Counters
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", ifc.Name, c["rx_frames"], c["rx_bytes"], c["tx_frames"], c["tx_bytes"], ifc.Drops, ifc.Link)
	}
	tw.Flush()
	var notes []string
	for _, ifc := range rep.Net.Interfaces {
		for _, k := range []string{"rx_malformed", "rx_other_host", "rx_dropped", "rx_ttl_expired", "tx_no_path", "tx_errors", "tx_queue_drops", "tx_oversize", "tx_waits", "tx_large", "tx_split"} {
			if v := ifc.Counters[k]; v > 0 {
				notes = append(notes, fmt.Sprintf("%s.%s=%d", ifc.Name, k, v))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "link events: %s\n", strings.Join(notes, " "))
	}
	var keys []string
	for k, v := range rep.Net.Protocols {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Fprintln(w, "stack counters (non-zero):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%d\n", k, rep.Net.Protocols[k])
		}
		tw.Flush()
	}
	if ct := rep.Net.Conntrack; ct != nil {
		fmt.Fprintf(w, "conntrack: %d of %d entries, %d new flows dropped (table full), %d inserted, %d expired\n", ct.Count, ct.Max, ct.Dropped, ct.Inserted, ct.Expired)
	}
	writeRules(w, rep.Rules)
	if rep.Apps != nil {
		b, _ := json.Marshal(rep.Apps)
		fmt.Fprintf(w, "apps: %s\n", b)
	}
}

// writeRules prints the rule counters the way `iptables -L -v -n` does.
func writeRules(w io.Writer, chains []RuleStats) {
	for _, c := range chains {
		if c.Policy != "" {
			fmt.Fprintf(w, "Chain %s (%s %s, policy %s %d packets, %d bytes)\n", c.Chain, c.Family, c.Table, c.Policy, c.Packets, c.Bytes)
		} else {
			fmt.Fprintf(w, "Chain %s (%s %s)\n", c.Chain, c.Family, c.Table)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, " pkts\tbytes\ttarget\trule")
		for _, r := range c.Rules {
			fmt.Fprintf(tw, " %d\t%d\t%s\t%s\n", r.Packets, r.Bytes, r.Target, r.Rule)
		}
		tw.Flush()
	}
}
