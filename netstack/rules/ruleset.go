package rules

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// ParseOptions tunes how input is read.
type ParseOptions struct {
	// Family is the family of input that does not say: a save file without
	// an "ip6tables-save" or "iptables-save" header comment and whose rules
	// imply no family (by an address, ICMP or a REJECT reply), and a
	// command without iptables, ip6tables, -4 or -6 whose rule implies
	// none. When it is zero, such a save file is IPv4 (as for
	// iptables-restore) and such a command applies to both families.
	Family Family
}

// Ruleset is the iptables state built from files and commands: per family,
// per table, chains with their policies and rules, in order. The zero value
// is an empty Ruleset ready to use. A Ruleset is not safe for concurrent
// use.
type Ruleset struct {
	tables [2]map[string]*Table
	// errs are the errors of all Add calls so far.
	errs ErrorList
	// order numbers the sources, for sorting errors into input order.
	order map[string]int
}

func (rs *Ruleset) register(source string) {
	if rs.order == nil {
		rs.order = map[string]int{}
	}
	if _, ok := rs.order[source]; !ok {
		rs.order[source] = len(rs.order)
	}
}

func famIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

// Tables returns the tables of family f that have been named, in the order
// filter, nat, mangle, raw.
func (rs *Ruleset) Tables(f Family) []*Table {
	var ts []*Table
	for _, name := range tableOrder {
		if t := rs.tables[famIndex(f)][name]; t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// Table returns table name of family f, or nil if it has not been named.
func (rs *Ruleset) Table(f Family, name string) *Table {
	return rs.tables[famIndex(f)][name]
}

// table returns table name of family f, creating it with its built-in
// chains (policy ACCEPT) the first time.
func (rs *Ruleset) table(f Family, name string, pos Pos) *Table {
	i := famIndex(f)
	if rs.tables[i] == nil {
		rs.tables[i] = map[string]*Table{}
	}
	t := rs.tables[i][name]
	if t == nil {
		t = &Table{Name: name, Family: f, Pos: pos}
		for _, h := range tableHooks[name] {
			t.Chains = append(t.Chains, &Chain{Name: h.String(), Builtin: true, Hook: h, Policy: Accept, Pos: pos})
		}
		rs.tables[i][name] = t
	}
	return t
}

// chainAnywhere reports whether a chain called name exists in any table of
// the families in m.
func (rs *Ruleset) chainAnywhere(name string, m famMask) bool {
	for _, f := range m.families() {
		for _, t := range rs.tables[famIndex(f)] {
			if t.Chain(name) != nil {
				return true
			}
		}
	}
	return false
}

// AddFile reads a rules file, in iptables-save or command form (detected
// from its first line that is not blank or a comment), and applies it.
// name is used in error positions. It returns an ErrorList of the file's
// problems; the lines without problems are applied regardless.
func (rs *Ruleset) AddFile(name string, data []byte, opts ParseOptions) error {
	rs.register(name)
	lines := strings.Split(string(data), "\n")
	var errs ErrorList
	if isSaveFormat(lines) {
		errs = rs.addSave(name, lines, opts)
	} else {
		errs = rs.addCommandLines(name, lines, opts)
	}
	rs.errs = append(rs.errs, errs...)
	return errs.err()
}

// AddCommands applies iptables commands given one per string, as on a
// command line (--rule '-t nat -A POSTROUTING -o eth1 -j MASQUERADE').
// Command i is reported as source[i]. It returns an ErrorList of the
// commands' problems.
func (rs *Ruleset) AddCommands(source string, cmds []string, opts ParseOptions) error {
	var errs ErrorList
	for i, cmd := range cmds {
		pos := Pos{Source: fmt.Sprintf("%s[%d]", source, i)}
		rs.register(pos.Source)
		if strings.TrimSpace(cmd) == "" {
			errs = append(errs, newError(pos, "", "empty command"))
			continue
		}
		errs = append(errs, rs.addCommandLine(pos, cmd, opts)...)
	}
	rs.errs = append(rs.errs, errs...)
	return errs.err()
}

// isSaveFormat reports whether the first significant line is a "*table".
func isSaveFormat(lines []string) bool {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		return l[0] == '*'
	}
	return false
}

// addCommandLines applies a file of commands, joining lines that end in a
// backslash.
func (rs *Ruleset) addCommandLines(name string, lines []string, opts ParseOptions) ErrorList {
	var errs ErrorList
	for i := 0; i < len(lines); i++ {
		pos := Pos{Source: name, Line: i + 1}
		line := strings.TrimRight(lines[i], "\r")
		for strings.HasSuffix(line, "\\") && (len(line)-len(strings.TrimRight(line, "\\")))%2 == 1 && i+1 < len(lines) {
			i++
			line = strings.TrimRight(line[:len(line)-1], " \t") + " " + strings.TrimSpace(lines[i])
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if t[0] == '*' || t[0] == ':' || t == "COMMIT" {
			errs = append(errs, newError(pos, t, "%q belongs to iptables-save format, but this file's first line is a command", t))
			continue
		}
		errs = append(errs, rs.addCommandLine(pos, t, opts)...)
	}
	return errs
}

// commandNames are the program names a command line may start with.
var commandNames = map[string]famMask{
	"iptables": maskV4, "iptables-legacy": maskV4, "iptables-nft": maskV4,
	"ip6tables": maskV6, "ip6tables-legacy": maskV6, "ip6tables-nft": maskV6,
}

// addCommandLine applies one command line.
func (rs *Ruleset) addCommandLine(pos Pos, line string, opts ParseOptions) []*Error {
	text := strings.TrimSpace(line)
	words, err := splitShell(text)
	if err != nil {
		return []*Error{newError(pos, "", "%v", err)}
	}
	if len(words) == 0 {
		return nil
	}
	fam, dflt := maskBoth, maskOf(opts.Family)
	if m, ok := commandNames[path.Base(words[0])]; ok {
		fam, dflt = m, m
		words = words[1:]
	} else if w := words[0]; w != "!" && !strings.HasPrefix(w, "-") {
		return []*Error{newError(pos, w, "%q is not an iptables command: want iptables, ip6tables or an option such as -A%s",
			w, didYouMean(w, []string{"iptables", "ip6tables"}))}
	}
	return rs.run(pos, text, words, fam, dflt, 0, "")
}

// run parses one command and applies it to each of its families: those
// its words allow (fam) and imply, or dflt when they imply none. A command
// first parsed for both families is parsed again for each, since defaults
// (REJECT's reply) differ.
func (rs *Ruleset) run(pos Pos, text string, words []string, fam, dflt, fileFam famMask, table string) []*Error {
	c, got, perr := parseCommand(rs, pos, words, fam, fileFam, table, false)
	if perr != nil {
		return []*Error{perr}
	}
	if c.skip {
		return nil
	}
	if got == maskBoth {
		got = dflt
	}
	fams := got.families()
	errs := make([]*Error, len(fams))
	for i, f := range fams {
		if fam != maskOf(f) {
			c, _, perr = parseCommand(rs, pos, words, maskOf(f), fileFam, table, false)
			if perr != nil {
				errs[i] = perr
				continue
			}
		}
		errs[i] = rs.exec(f, c, pos, text)
	}
	switch {
	case len(errs) == 1:
		if errs[0] != nil {
			return errs
		}
		return nil
	case errs[0] != nil && errs[1] != nil && errs[0].Msg == errs[1].Msg:
		return errs[:1]
	}
	var out []*Error
	for i, e := range errs {
		if e != nil {
			e.Msg += " (" + fams[i].String() + ")"
			out = append(out, e)
		}
	}
	return out
}

// exec applies a parsed command to family f.
func (rs *Ruleset) exec(f Family, c *command, pos Pos, text string) *Error {
	tname := c.table
	if tname == "" {
		tname = "filter"
	}
	t := rs.table(f, tname, pos)
	var ch *Chain
	if c.chain != "" && c.op != "-N" {
		if ch = t.Chain(c.chain); ch == nil {
			return newError(pos, c.chain, "no chain %q in table %q%s", c.chain, tname, didYouMean(c.chain, chainNames(t)))
		}
	}
	switch c.op {
	case "-N":
		if err := checkChainName(c.chain); err != nil {
			return newError(pos, c.chain, "%s: %v", c.opTok, err)
		}
		if t.Chain(c.chain) != nil {
			return newError(pos, c.chain, "chain %q already exists in table %q", c.chain, tname)
		}
		t.Chains = append(t.Chains, &Chain{Name: c.chain, Policy: Return, Pos: pos})
	case "-P":
		return setPolicy(t, ch, c.policy, pos)
	case "-F":
		for _, x := range t.Chains {
			if ch == nil || x == ch {
				x.Rules = nil
			}
		}
	case "-X":
		if ch != nil {
			return deleteChain(t, ch, pos)
		}
		for _, x := range slices.Clone(t.Chains) {
			if !x.Builtin {
				if err := deleteChain(t, x, pos); err != nil {
					return err
				}
			}
		}
	case "-Z":
		// Counters start at zero anyway.
	case "-A", "-I", "-D":
		if c.op == "-D" && c.num > 0 {
			if c.num > len(ch.Rules) {
				return newError(pos, fmt.Sprint(c.num), "%s %s %d: chain %q has only %s", c.opTok, c.chain, c.num, c.chain, nRules(len(ch.Rules)))
			}
			ch.Rules = slices.Delete(ch.Rules, c.num-1, c.num)
			return nil
		}
		rules, err := buildRules(t, ch, c, pos, text)
		if err != nil {
			return err
		}
		switch c.op {
		case "-A":
			ch.Rules = append(ch.Rules, rules...)
		case "-I":
			n := max(c.num, 1)
			if n > len(ch.Rules)+1 {
				return newError(pos, fmt.Sprint(c.num), "%s %s %d: chain %q has only %s", c.opTok, c.chain, c.num, c.chain, nRules(len(ch.Rules)))
			}
			// Like iptables, insert each expansion at the same place.
			for _, r := range rules {
				ch.Rules = slices.Insert(ch.Rules, n-1, r)
			}
		case "-D":
			for _, r := range rules {
				spec := r.Spec()
				i := slices.IndexFunc(ch.Rules, func(x *Rule) bool { return x.Spec() == spec })
				if i < 0 {
					return newError(pos, c.opTok, "%s: no rule %q in chain %q", c.opTok, spec, c.chain)
				}
				ch.Rules = slices.Delete(ch.Rules, i, i+1)
			}
		}
	}
	return nil
}

// nRules returns "1 rule" or "N rules".
func nRules(n int) string {
	if n == 1 {
		return "1 rule"
	}
	return fmt.Sprintf("%d rules", n)
}

func chainNames(t *Table) []string {
	names := make([]string, len(t.Chains))
	for i, c := range t.Chains {
		names[i] = c.Name
	}
	return names
}

func setPolicy(t *Table, ch *Chain, policy string, pos Pos) *Error {
	if !ch.Builtin {
		return newError(pos, ch.Name, "chain %q is a user chain: only built-in chains have a policy", ch.Name)
	}
	v, ok := verdicts[policy]
	if !ok || v == Return {
		return newError(pos, policy, "invalid policy %q for chain %q: want ACCEPT or DROP%s", policy, ch.Name,
			didYouMean(policy, []string{"ACCEPT", "DROP"}))
	}
	if v == Drop && t.Name == "nat" {
		return newError(pos, policy, "%s", natDropMsg)
	}
	ch.Policy = v
	return nil
}

// natDropMsg is iptables' refusal of DROP in the nat table.
const natDropMsg = "DROP is not allowed in the nat table: it is not intended for filtering (use the filter table)"

func deleteChain(t *Table, ch *Chain, pos Pos) *Error {
	if ch.Builtin {
		return newError(pos, ch.Name, "can't delete built-in chain %q", ch.Name)
	}
	for _, x := range t.Chains {
		for _, r := range x.Rules {
			if j, ok := r.Target.(*Jump); ok && j.Chain == ch.Name {
				return newError(pos, ch.Name, "can't delete chain %q: the rule at %s in chain %q jumps to it", ch.Name, r.Pos, x.Name)
			}
		}
	}
	if len(ch.Rules) > 0 {
		return newError(pos, ch.Name, "can't delete chain %q: it is not empty (flush it first with -F %s)", ch.Name, ch.Name)
	}
	t.Chains = slices.DeleteFunc(t.Chains, func(x *Chain) bool { return x == ch })
	return nil
}

// maxExpansion bounds the rules one command's address lists may make:
// iptables has no limit, but a few lines must not make millions of rules.
const maxExpansion = 1024

// buildRules makes the rules of -A, -I or -D in chain ch: it resolves a
// jump, checks -i and -o against a built-in chain, and expands lists of
// addresses into one rule per source and destination, as iptables does.
func buildRules(t *Table, ch *Chain, c *command, pos Pos, text string) ([]*Rule, *Error) {
	r := c.rule.clone()
	r.Pos, r.Text = pos, text
	if c.jump != "" {
		to := t.Chain(c.jump)
		switch {
		case to == nil:
			var user []string
			for _, x := range t.Chains {
				if !x.Builtin {
					user = append(user, x.Name)
				}
			}
			return nil, newError(pos, c.jumpTok, "%s", unknownTargetMsg(c.jump, t.Name, user))
		case to.Builtin:
			return nil, newError(pos, c.jumpTok, "can't jump to built-in chain %q", c.jump)
		}
		r.Target = &Jump{Chain: c.jump, Goto: c.gotoJump}
	}
	// iptables checks these by the chain's name, even for a user chain
	// called like a built-in chain of another table.
	switch {
	case r.Out.Name != "" && (ch.Name == "PREROUTING" || ch.Name == "INPUT"):
		return nil, newError(pos, "-o", "-o can't be used in the %s chain: packets there have no output interface yet", ch.Name)
	case r.In.Name != "" && (ch.Name == "OUTPUT" || ch.Name == "POSTROUTING"):
		return nil, newError(pos, "-i", "-i can't be used in the %s chain: Linux gives packets there no input interface", ch.Name)
	}
	if n := max(len(c.srcs), 1) * max(len(c.dsts), 1); n > maxExpansion {
		return nil, newError(pos, "", "the -s and -d lists make %d rules: at most %d per command", n, maxExpansion)
	}
	srcs := c.srcs
	if len(srcs) == 0 {
		srcs = make([]netip.Prefix, 1)
	}
	dsts := c.dsts
	if len(dsts) == 0 {
		dsts = make([]netip.Prefix, 1)
	}
	var rules []*Rule
	for _, s := range srcs {
		for _, d := range dsts {
			x := r.clone()
			if s.IsValid() {
				x.Src = Addr{Prefix: s, Invert: c.srcInv}
			}
			if d.IsValid() {
				x.Dst = Addr{Prefix: d, Invert: c.dstInv}
			}
			rules = append(rules, x)
		}
	}
	return rules, nil
}
