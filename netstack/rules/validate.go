package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// hookSet is a set of hooks.
type hookSet uint8

func hookBit(h Hook) hookSet { return 1 << h }

// first returns the first hook in the set, in packet order.
func (s hookSet) first() Hook {
	for h := Prerouting; h < numHooks; h++ {
		if s&hookBit(h) != 0 {
			return h
		}
	}
	return numHooks
}

// placement is where Linux allows a target or match: in one table (or any
// when table is ""), at some hooks.
type placement struct {
	table string
	hooks hookSet
	msg   string
}

var (
	natInPlace = placement{"nat", hookBit(Postrouting) | hookBit(Input),
		"SNAT is only valid in the nat table's POSTROUTING and INPUT chains (and chains called from them)"}
	masqPlace = placement{"nat", hookBit(Postrouting),
		"MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)"}
	dnatPlace = placement{"nat", hookBit(Prerouting) | hookBit(Output),
		"DNAT is only valid in the nat table's PREROUTING and OUTPUT chains (and chains called from them)"}
	redirectPlace = placement{"nat", hookBit(Prerouting) | hookBit(Output),
		"REDIRECT is only valid in the nat table's PREROUTING and OUTPUT chains (and chains called from them)"}
	rejectPlace = placement{"filter", hookBit(Input) | hookBit(Forward) | hookBit(Output),
		"REJECT is only valid in the filter table's INPUT, FORWARD and OUTPUT chains (and chains called from them)"}
	macPlace = placement{"", hookBit(Prerouting) | hookBit(Input) | hookBit(Forward),
		"-m mac is only valid in the PREROUTING, INPUT and FORWARD chains (and chains called from them)"}
)

// targetPlacement returns where Linux allows t (the xt_target's .table and
// .hooks), or nil when it is allowed everywhere. MARK is: its revision 2,
// which iptables uses, has no table restriction.
func targetPlacement(t Target) *placement {
	switch t := t.(type) {
	case *NAT:
		switch t.Kind {
		case SNAT:
			return &natInPlace
		case Masquerade:
			return &masqPlace
		case DNAT:
			return &dnatPlace
		case Redirect:
			return &redirectPlace
		}
	case *Reject:
		return &rejectPlace
	}
	return nil
}

// Validate runs the checks that need the whole rule set, as Linux runs them
// when a table is loaded: for each user chain it computes the built-in hooks
// that reach it through jumps and checks the chain's targets and matches
// against each (SNAT: nat POSTROUTING and INPUT; MASQUERADE: nat
// POSTROUTING; DNAT and REDIRECT: nat PREROUTING and OUTPUT; REJECT: filter
// INPUT, FORWARD and OUTPUT; -m mac: PREROUTING, INPUT and FORWARD); it
// refuses jump loops reachable from a built-in chain, jumps to missing
// chains, and DROP in the nat table. Like Linux, it lets MARK be used in
// any table, and checks -i and -o only in the built-in chain a rule is
// added to (iptables does that when the rule is added).
//
// It returns an ErrorList of every problem found so far — those AddFile and
// AddCommands returned, and its own — sorted into input order, or nil. A
// caller may ignore the errors of the Add calls and report Validate's.
func (rs *Ruleset) Validate() error {
	errs := slices.Clone(rs.errs)
	for _, f := range []Family{IPv4, IPv6} {
		for _, t := range rs.Tables(f) {
			errs = append(errs, validateTable(t)...)
		}
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(rs.order[a.Pos.Source], rs.order[b.Pos.Source]), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
	// A rule for both families fails the same way in each: say it once.
	seen := map[Error]bool{}
	errs = slices.DeleteFunc(errs, func(e *Error) bool {
		dup := seen[*e]
		seen[*e] = true
		return dup
	})
	return errs.err()
}

// reach records the hooks that reach a user chain and, per hook, the first
// jump into the chain on the way.
type reach struct {
	hooks hookSet
	via   [numHooks]Pos
}

// computeReach finds, for each chain of t, the built-in hooks from which
// jumps (and gotos) lead to it.
func computeReach(t *Table) map[*Chain]*reach {
	chains := map[string]*Chain{}
	for _, c := range t.Chains {
		chains[c.Name] = c
	}
	reached := map[*Chain]*reach{}
	for _, c := range t.Chains {
		reached[c] = &reach{}
	}
	for _, b := range t.Chains {
		if !b.Builtin {
			continue
		}
		h := b.Hook
		reached[b].hooks |= hookBit(h)
		seen := map[*Chain]bool{b: true}
		stack := []*Chain{b}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, r := range x.Rules {
				j, ok := r.Target.(*Jump)
				if !ok {
					continue
				}
				y := chains[j.Chain]
				if y == nil || y.Builtin || seen[y] {
					continue
				}
				seen[y] = true
				reached[y].hooks |= hookBit(h)
				reached[y].via[h] = r.Pos
				stack = append(stack, y)
			}
		}
	}
	return reached
}

// ReachingHooks returns the hooks whose packets can traverse chain c of
// table t: its own hook for a built-in chain, and for a user chain every
// hook whose built-in chain leads to it through jumps and gotos (none for
// a chain nothing jumps to). Validate checks targets and matches against
// these; a backend with fewer hooks than Linux can check its own limits
// with them.
func (t *Table) ReachingHooks(c *Chain) []Hook {
	var hooks []Hook
	set := computeReach(t)[c]
	if set == nil {
		return nil
	}
	for h := Prerouting; h < numHooks; h++ {
		if set.hooks&hookBit(h) != 0 {
			hooks = append(hooks, h)
		}
	}
	return hooks
}

func validateTable(t *Table) []*Error {
	var errs []*Error
	chains := map[string]*Chain{}
	for _, c := range t.Chains {
		chains[c.Name] = c
	}
	jumpTo := func(r *Rule) *Chain {
		if j, ok := r.Target.(*Jump); ok {
			return chains[j.Chain]
		}
		return nil
	}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if j, ok := r.Target.(*Jump); ok && chains[j.Chain] == nil {
				errs = append(errs, newError(r.Pos, j.Chain, "no chain %q in table %q to jump to", j.Chain, t.Name))
			}
		}
	}

	reached := computeReach(t)

	errs = append(errs, findLoops(t, jumpTo)...)

	for _, c := range t.Chains {
		hooks := reached[c].hooks
		where := func(bad hookSet) string {
			if c.Builtin {
				return ""
			}
			h := bad.first()
			return fmt.Sprintf("; chain %q is reached from %s (jump at %s)", c.Name, h, reached[c].via[h])
		}
		check := func(r *Rule, pl *placement, tok string) {
			switch {
			case pl.table != "" && t.Name != pl.table:
				errs = append(errs, newError(r.Pos, tok, "%s", pl.msg))
			case hooks&^pl.hooks != 0:
				errs = append(errs, newError(r.Pos, tok, "%s%s", pl.msg, where(hooks&^pl.hooks)))
			}
		}
		for _, r := range c.Rules {
			for _, m := range r.Matches {
				if _, ok := m.(*MAC); ok {
					check(r, &macPlace, "mac")
				}
			}
			if r.Target == Drop && t.Name == "nat" {
				errs = append(errs, newError(r.Pos, "DROP", "%s", natDropMsg))
			}
			if pl := targetPlacement(r.Target); pl != nil {
				check(r, pl, r.Target.Name())
			}
		}
	}
	return errs
}

// findLoops reports jumps that close a loop among the chains reachable
// from the built-in chains (Linux refuses them: "Too many links").
func findLoops(t *Table, jumpTo func(*Rule) *Chain) []*Error {
	const (
		white = iota
		grey
		black
	)
	var (
		errs  []*Error
		color = map[*Chain]int{}
		path  []*Chain
		visit func(c *Chain)
	)
	visit = func(c *Chain) {
		color[c] = grey
		path = append(path, c)
		for _, r := range c.Rules {
			y := jumpTo(r)
			if y == nil || y.Builtin {
				continue
			}
			switch color[y] {
			case grey:
				i := slices.Index(path, y)
				names := make([]string, 0, len(path)-i+1)
				for _, x := range path[i:] {
					names = append(names, x.Name)
				}
				names = append(names, y.Name)
				errs = append(errs, newError(r.Pos, y.Name, "jump to chain %q closes a loop: %s", y.Name, strings.Join(names, " -> ")))
			case white:
				visit(y)
			}
		}
		path = path[:len(path)-1]
		color[c] = black
	}
	for _, c := range t.Chains {
		if c.Builtin {
			visit(c)
		}
	}
	return errs
}
