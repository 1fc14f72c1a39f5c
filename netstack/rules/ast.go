package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// Family is an address family: IPv4 rules are iptables rules, IPv6 rules are
// ip6tables rules. The zero value means "not said".
type Family int

// Address families.
const (
	IPv4 Family = iota + 1
	IPv6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// Pos is where something was written: a file and a line, or a command-line
// source such as "--rule[2]" (Line 0).
type Pos struct {
	Source string
	Line   int
}

// String returns "nat.rules:3", or the bare source when there is no line.
func (p Pos) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.Source, p.Line)
	}
	return p.Source
}

// Hook is a netfilter hook: the point in a packet's path where a built-in
// chain runs.
type Hook int

// Netfilter hooks, in packet order.
const (
	Prerouting Hook = iota
	Input
	Forward
	Output
	Postrouting
	numHooks
)

var hookNames = [numHooks]string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// String returns the name of the built-in chain of the hook, e.g. "INPUT".
func (h Hook) String() string {
	if h >= 0 && h < numHooks {
		return hookNames[h]
	}
	return fmt.Sprintf("Hook(%d)", int(h))
}

// tableHooks lists the built-in chains of each supported table, in hook
// order, as on Linux.
var tableHooks = map[string][]Hook{
	"filter": {Input, Forward, Output},
	"nat":    {Prerouting, Input, Output, Postrouting},
	"mangle": {Prerouting, Input, Forward, Output, Postrouting},
	"raw":    {Prerouting, Output},
}

// tableOrder is the order in which Tables and Save list tables.
var tableOrder = []string{"filter", "nat", "mangle", "raw"}

// Table is one iptables table of one family: its built-in chains in hook
// order, then its user chains in the order they were created.
type Table struct {
	Name   string
	Family Family
	Chains []*Chain
	// Pos is where the table was first named.
	Pos Pos
}

// Chain returns the chain called name, or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Chain is a built-in or user-defined chain.
type Chain struct {
	Name    string
	Builtin bool
	// Hook is the hook a built-in chain runs at; meaningless for user chains.
	Hook Hook
	// Policy is Accept or Drop for built-in chains and Return (the implicit
	// end of a user chain) for user chains.
	Policy Verdict
	Rules  []*Rule
	// Pos is where the chain was created (-N or ":CHAIN") or, for a built-in
	// chain, where its table was first named.
	Pos Pos
}

// Rule is one rule. The zero values of Proto, Src, Dst, In and Out match
// everything; Matches must all match; Target nil makes a counting rule that
// only counts packets and lets them go on.
type Rule struct {
	Pos Pos
	// Text is the line or command the rule came from, as written. A command
	// with comma-separated addresses yields several rules with one Text.
	Text     string
	Proto    Proto
	Src, Dst Addr
	In, Out  Iface
	Matches  []Match
	Target   Target
}

// Proto matches the IP protocol (-p). Num 0 means any protocol.
type Proto struct {
	Num    uint8
	Invert bool
}

// Protocol numbers with names in this package.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoDCCP    = 33
	ProtoGRE     = 47
	ProtoESP     = 50
	ProtoAH      = 51
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// is reports whether the rule requires protocol num (and not its inverse).
func (p Proto) is(num uint8) bool { return p.Num == num && !p.Invert }

// Addr matches a source or destination prefix (-s, -d). The zero value
// (an invalid Prefix) matches every address.
type Addr struct {
	Prefix netip.Prefix
	Invert bool
}

// Set reports whether the rule restricts this address.
func (a Addr) Set() bool { return a.Prefix.IsValid() }

// Iface matches an interface name (-i, -o). A trailing "+" matches every
// name with that prefix. The empty name matches every interface.
type Iface struct {
	Name   string
	Invert bool
}

// Spec returns the rule in iptables' canonical form, without "-A CHAIN":
// the rule-spec that iptables-save would print.
func (r *Rule) Spec() string {
	var b strings.Builder
	r.appendSpec(&b)
	return strings.TrimPrefix(b.String(), " ")
}

func (r *Rule) appendSpec(b *strings.Builder) {
	inv := func(v bool) {
		if v {
			b.WriteString(" !")
		}
	}
	if r.Src.Set() {
		inv(r.Src.Invert)
		b.WriteString(" -s " + r.Src.Prefix.String())
	}
	if r.Dst.Set() {
		inv(r.Dst.Invert)
		b.WriteString(" -d " + r.Dst.Prefix.String())
	}
	if r.In.Name != "" {
		inv(r.In.Invert)
		b.WriteString(" -i " + r.In.Name)
	}
	if r.Out.Name != "" {
		inv(r.Out.Invert)
		b.WriteString(" -o " + r.Out.Name)
	}
	if r.Proto.Num != 0 || r.Proto.Invert {
		inv(r.Proto.Invert)
		b.WriteString(" -p " + protoName(r.Proto.Num))
	}
	for _, m := range r.Matches {
		b.WriteString(" -m " + m.Module())
		m.appendOptions(b)
	}
	switch t := r.Target.(type) {
	case nil:
	case *Jump:
		if t.Goto {
			b.WriteString(" -g " + t.Chain)
		} else {
			b.WriteString(" -j " + t.Chain)
		}
	default:
		b.WriteString(" -j " + t.Name())
		t.appendOptions(b)
	}
}

// clone returns a copy of the rule that shares its matches and target,
// which are never modified after parsing.
func (r *Rule) clone() *Rule {
	c := *r
	c.Matches = append([]Match(nil), r.Matches...)
	return &c
}
