package chain

import (
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
)

// HostPlan is what the runner creates in the host's kernel for the chain's
// tap links, before any function starts: network namespaces, TAP devices
// with their addresses, MTU and routes, IP forwarding where asked, and
// nftables tables. It removes them when the chain stops. Each object is
// written to Record as soon as it exists, so that the next start of the
// chain removes what a killed runner left, and nothing else: objects the
// runner found (an existing namespace, a device named by the spec that
// existed) are used and left in place, only what it added to them is
// removed.
type HostPlan struct {
	// Record is the file in the runtime directory listing what the runner
	// created, in order.
	Record string `json:"record"`
	// Netns are the namespaces the tap links name: those with Create are
	// created (an existing one is an error), the others must exist.
	Netns []NetnsPlan `json:"netns,omitempty"`
	// TAPs are the tap links' devices, in the order of Plan.Links.
	TAPs []TAPPlan `json:"taps"`
	// Forwarding lists the namespaces whose kernel must forward for a
	// tap link (host: forward or masquerade).
	Forwarding []ForwardingPlan `json:"forwarding,omitempty"`
	// NFTables are the chain's nftables tables, one per namespace that
	// needs host rules.
	NFTables []NFTablePlan `json:"nftables,omitempty"`
}

// NetnsPlan is a network namespace a tap link names.
type NetnsPlan struct {
	Name string `json:"name"`
	// Create: the runner creates it (with its loopback up) and deletes it.
	Create bool `json:"create"`
}

// TAPPlan is a tap link's device and its kernel side.
type TAPPlan struct {
	// Link is the index in Plan.Links.
	Link int `json:"link"`
	// Device is the device's name in its namespace; Netns the namespace
	// (empty: the runner's own). The function opens the device in Netns
	// (tap:DEVICE,netns=NETNS), so the runner creates it there.
	Device string `json:"device"`
	Netns  string `json:"netns,omitempty"`
	// Named: the spec named the device (tap: NAME). An existing device of
	// that name is used (a TAP with the link's MTU) and left in place; a
	// missing one is created. A device the runner names is always
	// created, and one that exists already is an error.
	Named bool `json:"named,omitempty"`
	// MTU is the device's MTU: the function interface's.
	MTU uint32 `json:"mtu"`
	// Addrs and Routes are set on the device, which is then brought up.
	Addrs  []netip.Prefix `json:"addrs,omitempty"`
	Routes []HostRoute    `json:"routes,omitempty"`
}

// ForwardingPlan is a namespace whose kernel must forward, for the
// families of its tap links' host addresses (both when they have none).
type ForwardingPlan struct {
	Netns string `json:"netns,omitempty"`
	IPv4  bool   `json:"ipv4"`
	IPv6  bool   `json:"ipv6"`
	// Set: the runner created the namespace and turns forwarding on in
	// it. Otherwise it is a setting of the host's it does not change: it
	// warns if forwarding is off.
	Set bool `json:"set"`
}

// NFTablePlan is one nftables table of the chain's.
type NFTablePlan struct {
	Netns  string `json:"netns,omitempty"`
	Family string `json:"family"`
	Name   string `json:"name"`
	// Chains are base chains with policy accept: the table adds what the
	// chain needs and never drops what other tables let through.
	Chains []NFTChainPlan `json:"chains"`
}

// NFTChainPlan is a base chain of a chain's nftables table.
type NFTChainPlan struct {
	Name     string    `json:"name"`
	Type     string    `json:"type"` // filter or nat
	Hook     string    `json:"hook"` // forward or postrouting
	Priority int       `json:"priority"`
	Rules    []NFTRule `json:"rules"`
}

// NFTRule is one rule: interface matches, a counter and a verdict.
type NFTRule struct {
	// IIF and OIF match the input and output interface names; NotOIF
	// matches any output interface but this one.
	IIF    string `json:"iif,omitempty"`
	OIF    string `json:"oif,omitempty"`
	NotOIF string `json:"not_oif,omitempty"`
	// Verdict is accept or masquerade.
	Verdict string `json:"verdict"`
}

// String returns the rule as `nft list table` shows it.
func (r NFTRule) String() string {
	var f []string
	if r.IIF != "" {
		f = append(f, fmt.Sprintf("iifname %q", r.IIF))
	}
	if r.OIF != "" {
		f = append(f, fmt.Sprintf("oifname %q", r.OIF))
	}
	if r.NotOIF != "" {
		f = append(f, fmt.Sprintf("oifname != %q", r.NotOIF))
	}
	return strings.Join(append(f, "counter", r.Verdict), " ")
}

// hostRecordFile is the name of HostPlan.Record in the runtime directory.
const hostRecordFile = "host.json"

// resolveHost plans the host objects of the spec's tap links; nil when it
// has none.
func resolveHost(s *Spec, p *Plan) *HostPlan {
	h := &HostPlan{Record: filepath.Join(p.Runtime.Dir, hostRecordFile)}
	netns := map[string]int{}
	tables := map[string]int{}
	forwarding := map[string]int{}
	for i, l := range s.Links {
		if l.Transport != TAP || len(l.Ends) != 1 {
			continue
		}
		lp := &p.Links[i]
		if l.Netns != "" {
			j, ok := netns[l.Netns]
			if !ok {
				j = len(h.Netns)
				netns[l.Netns] = j
				h.Netns = append(h.Netns, NetnsPlan{Name: l.Netns})
			}
			h.Netns[j].Create = h.Netns[j].Create || l.NetnsCreate
		}
		tp := TAPPlan{Link: i, Device: lp.TAP, Netns: l.Netns, Named: l.TAPName != "", MTU: endMTU(s, l.Ends[0])}
		hh := l.Host
		if hh != nil {
			tp.Addrs, tp.Routes = hh.Addrs, hh.Routes
		}
		h.TAPs = append(h.TAPs, tp)
		if hh == nil || !hh.Forward && !hh.Masquerade {
			continue
		}
		fw, ok := forwarding[l.Netns]
		if !ok {
			fw = len(h.Forwarding)
			forwarding[l.Netns] = fw
			h.Forwarding = append(h.Forwarding, ForwardingPlan{Netns: l.Netns})
		}
		v4, v6 := len(hh.Addrs) == 0, len(hh.Addrs) == 0
		for _, a := range hh.Addrs {
			v4, v6 = v4 || a.Addr().Is4(), v6 || a.Addr().Is6()
		}
		h.Forwarding[fw].IPv4 = h.Forwarding[fw].IPv4 || v4
		h.Forwarding[fw].IPv6 = h.Forwarding[fw].IPv6 || v6
		j, ok := tables[l.Netns]
		if !ok {
			j = len(h.NFTables)
			tables[l.Netns] = j
			h.NFTables = append(h.NFTables, NFTablePlan{Netns: l.Netns, Family: "inet", Name: NFTablesTable(s.Name)})
		}
		t := &h.NFTables[j]
		if hh.Forward {
			addNFTRules(t, NFTChainPlan{Name: "forward", Type: "filter", Hook: "forward", Priority: 0},
				NFTRule{IIF: tp.Device, Verdict: "accept"}, NFTRule{OIF: tp.Device, Verdict: "accept"})
		}
		if hh.Masquerade {
			addNFTRules(t, NFTChainPlan{Name: "postrouting", Type: "nat", Hook: "postrouting", Priority: 100},
				NFTRule{IIF: tp.Device, NotOIF: tp.Device, Verdict: "masquerade"})
		}
	}
	if len(h.TAPs) == 0 {
		return nil
	}
	for i := range h.Forwarding {
		f := &h.Forwarding[i]
		if j, ok := netns[f.Netns]; ok && f.Netns != "" {
			f.Set = h.Netns[j].Create
		}
	}
	return h
}

// addNFTRules adds rules to the table's chain c, adding the chain first
// if the table has none of that name.
func addNFTRules(t *NFTablePlan, c NFTChainPlan, rules ...NFTRule) {
	for i := range t.Chains {
		if t.Chains[i].Name == c.Name {
			t.Chains[i].Rules = append(t.Chains[i].Rules, rules...)
			return
		}
	}
	c.Rules = rules
	t.Chains = append(t.Chains, c)
}

// endMTU is the MTU of the interface at end e.
func endMTU(s *Spec, e End) uint32 {
	for _, fn := range s.Functions {
		if fn.Name != e.Function {
			continue
		}
		for _, ifc := range fn.Interfaces {
			if ifc.Name == e.Interface {
				return ifc.mtu()
			}
		}
	}
	return 0
}

// writeText writes the host section of `chain check`.
func (h *HostPlan) writeText(w io.Writer, p *Plan) {
	fmt.Fprintf(w, "\nhost (made by `chain up` before the functions start, removed when the chain stops; record %s)\n", h.Record)
	for _, n := range h.Netns {
		what := "must exist"
		if n.Create {
			what = "created"
		}
		fmt.Fprintf(w, "  netns     %s (%s)\n", n.Name, what)
	}
	for _, t := range h.TAPs {
		how := "created"
		if t.Named {
			how = "used if it exists, else created"
		}
		fmt.Fprintf(w, "  tap       %s%s, mtu %d, links[%d] %s (%s)\n", t.Device, nsText(t.Netns), t.MTU, t.Link, p.Links[t.Link].Name, how)
		for _, a := range t.Addrs {
			fmt.Fprintf(w, "    addr    %s\n", a)
		}
		for _, r := range t.Routes {
			fmt.Fprintf(w, "    route   %s dev %s\n", r, t.Device)
		}
	}
	for _, f := range h.Forwarding {
		keys := strings.Join(f.sysctls(), "=1 ") + "=1"
		if f.Set {
			fmt.Fprintf(w, "  sysctl    %s%s\n", keys, nsText(f.Netns))
		} else {
			fmt.Fprintf(w, "  sysctl    %s must be set%s (checked, not changed: a warning if off)\n", keys, nsText(f.Netns))
		}
	}
	for _, t := range h.NFTables {
		fmt.Fprintf(w, "  nftables  table %s %s%s\n", t.Family, t.Name, nsText(t.Netns))
		for _, c := range t.Chains {
			fmt.Fprintf(w, "    chain %s { type %s hook %s priority %d; policy accept; }\n", c.Name, c.Type, c.Hook, c.Priority)
			for _, r := range c.Rules {
				fmt.Fprintf(w, "      %s\n", r)
			}
		}
	}
}

// nsText returns " in netns NAME", or " in the runner's netns".
func nsText(ns string) string {
	if ns == "" {
		return " in the runner's netns"
	}
	return " in netns " + ns
}

// sysctls are the forwarding settings the namespace needs.
func (f ForwardingPlan) sysctls() []string {
	var out []string
	if f.IPv4 {
		out = append(out, "net.ipv4.ip_forward")
	}
	if f.IPv6 {
		out = append(out, "net.ipv6.conf.all.forwarding")
	}
	return out
}
