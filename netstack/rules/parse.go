package rules

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// command is one parsed iptables command, before it is applied.
type command struct {
	op    string // "-A", "-I", "-D", "-P", "-N", "-F", "-X" or "-Z"
	opTok string // the command as written, e.g. "--append"
	chain string
	num   int // -I/-D rule number (1-based); 0 when not given
	// policy is -P's policy.
	policy string
	table  string // "" means filter
	// ruleTok is the first rule-spec option, for "can't be used with -N".
	ruleTok string
	// rule is the rule of -A, -I and -D without its addresses (see srcs
	// and dsts) and, when jump is set, without its target.
	rule       *Rule
	srcs, dsts []netip.Prefix
	srcInv     bool
	dstInv     bool
	// jump is a -j/-g name that is neither a verdict nor a target: it must
	// name a user chain of the table, which only applying the command can
	// tell.
	jump, jumpTok string
	gotoJump      bool
	// skip is set for a -4/-6 line in a save file of the other family,
	// which iptables-restore ignores.
	skip bool
}

// ruleParser parses the words of one command. It stops at the first
// problem, as iptables does: later words can't be trusted after one.
type ruleParser struct {
	rs   *Ruleset
	pos  Pos
	args []string
	i    int

	// fileFam is the family of the save file being read (0 for commands).
	fileFam famMask
	// detect makes -4 and -6 no hints: a headerless save file's family
	// comes from addresses and protocols only.
	detect bool
	// fam is the set of families the rule may still belong to; addresses
	// and family-specific options narrow it.
	fam famMask
	err *Error
	cmd *command
	// curOpt is the option being parsed, as written, for messages.
	curOpt string

	proto     Proto
	protoSet  bool
	protoUsed bool // the protocol's match was loaded implicitly once
	in, out   Iface
	matches   []*extInst
	target    *extInst
	verdict   Verdict
	seen      map[string]string
}

// parseCommand parses the words of one command for the families in fam.
// In a save file (fileFam != 0) the table is given and -t is refused.
func parseCommand(rs *Ruleset, pos Pos, args []string, fam, fileFam famMask, table string, detect bool) (*command, famMask, *Error) {
	p := &ruleParser{
		rs: rs, pos: pos, args: args, fileFam: fileFam, detect: detect, fam: fam,
		cmd:  &command{table: table},
		seen: map[string]string{},
	}
	p.parse()
	return p.cmd, p.fam, p.err
}

func (p *ruleParser) fail(tok, format string, args ...any) {
	if p.err == nil {
		p.err = newError(p.pos, tok, format, args...)
	}
}

// failValue reports a bad value of the current option.
func (p *ruleParser) failValue(val string, err error) { p.fail(val, "%s: %v", p.curOpt, err) }

// restrict narrows the rule to the families in m because of tok.
func (p *ruleParser) restrict(m famMask, tok, what, hint string) bool {
	if p.fam&m == 0 {
		p.fail(tok, "%s in an %s rule%s", what, famName(p.fam), hint)
		return false
	}
	p.fam &= m
	return true
}

func (p *ruleParser) restrictAddr(a netip.Addr, tok string) bool {
	return p.restrict(addrMask(a), tok, fmt.Sprintf("%s address %q", famName(addrMask(a)), a), "")
}

func (p *ruleParser) parse() {
	inv := false
	for p.err == nil && p.i < len(p.args) {
		tok := p.args[p.i]
		p.i++
		if tok == "!" {
			if inv {
				p.fail(tok, `"!" given twice`)
				break
			}
			inv = true
			continue
		}
		name, inline, hasInline := tok, "", false
		if strings.HasPrefix(tok, "--") {
			if k := strings.IndexByte(tok, '='); k > 2 {
				name, inline, hasInline = tok[:k], tok[k+1:], true
			}
		}
		if len(name) < 2 || name[0] != '-' || name == "--" {
			p.fail(tok, "unexpected argument %q", tok)
			break
		}
		p.curOpt = name
		p.option(name, inline, hasInline, inv)
		inv = false
		if p.cmd.skip {
			return
		}
	}
	if p.err == nil && inv {
		p.fail("!", `"!" must be followed by an option`)
	}
	if p.err == nil {
		p.finish()
	}
}

// arg returns the argument of option name: its inline "=value" or the next
// word. what describes the argument for the error when there is none.
func (p *ruleParser) arg(name, inline string, hasInline bool, what string) (string, bool) {
	if hasInline {
		return inline, true
	}
	if p.i >= len(p.args) {
		p.fail(name, "%s needs %s", name, what)
		return "", false
	}
	p.i++
	return p.args[p.i-1], true
}

// optionalArg returns the next word if it is not an option, as iptables
// takes -I's rule number or -F's chain.
func (p *ruleParser) optionalArg() (string, bool) {
	if p.i < len(p.args) && p.args[p.i] != "!" && !strings.HasPrefix(p.args[p.i], "-") {
		p.i++
		return p.args[p.i-1], true
	}
	return "", false
}

// notIntra refuses the old "-s ! ADDR" form, which iptables deprecated in
// favour of "! -s ADDR".
func (p *ruleParser) notIntra(name, arg, what string) bool {
	if arg == "!" {
		p.fail(arg, `%s: put "!" before the option: "! %s %s"`, name, name, what)
		return false
	}
	return true
}

// once records a generic option and refuses it the second time.
func (p *ruleParser) once(canon, name string) bool {
	if prev, ok := p.seen[canon]; ok {
		if prev == canon {
			p.fail(name, "%s given twice", name)
		} else {
			p.fail(name, "%s and %s can't be used together", prev, canon)
		}
		return false
	}
	p.seen[canon] = canon
	return true
}

// ruleOpt notes a rule-spec option.
func (p *ruleParser) ruleOpt(name string) {
	if p.cmd.ruleTok == "" {
		p.cmd.ruleTok = name
	}
}

func (p *ruleParser) noInvert(name string, inv bool) bool {
	if inv {
		p.fail("!", `"!" can't be used with %s`, name)
		return false
	}
	return true
}

// commands maps each spelling of a command to its short form.
var commands = map[string]string{
	"-A": "-A", "--append": "-A", "-I": "-I", "--insert": "-I",
	"-D": "-D", "--delete": "-D", "-P": "-P", "--policy": "-P",
	"-N": "-N", "--new-chain": "-N", "-F": "-F", "--flush": "-F",
	"-X": "-X", "--delete-chain": "-X", "-Z": "-Z", "--zero": "-Z",
}

// otherCommands are iptables commands that make no sense in a rules file.
var otherCommands = map[string]string{
	"-R": "replace", "--replace": "replace", "-L": "list", "--list": "list",
	"-S": "list-rules", "--list-rules": "list-rules", "-C": "check", "--check": "check",
	"-E": "rename-chain", "--rename-chain": "rename-chain", "-h": "help", "--help": "help",
}

// genericOptions are the options that are not part of a match or target,
// for suggestions.
var genericOptions = []string{
	"--append", "--insert", "--delete", "--policy", "--new-chain", "--flush",
	"--delete-chain", "--zero", "--table", "--ipv4", "--ipv6", "--wait", "--verbose",
	"--numeric", "--set-counters", "--protocol", "--source", "--src", "--destination",
	"--dst", "--in-interface", "--out-interface", "--match", "--jump", "--goto",
}

func (p *ruleParser) option(name, inline string, hasInline, inv bool) {
	c := p.cmd
	if op, ok := commands[name]; ok {
		if !p.noInvert(name, inv) {
			return
		}
		if c.op != "" {
			p.fail(name, "%s: one command per line (this one already has %s)", name, c.opTok)
			return
		}
		c.op, c.opTok = op, name
		p.commandArgs(name, inline, hasInline)
		return
	}
	if what, ok := otherCommands[name]; ok {
		p.fail(name, "%s (%s) is not supported: only -A, -I, -D, -P, -N, -F, -X and -Z change rules", name, what)
		return
	}
	switch name {
	case "-t", "--table":
		if !p.noInvert(name, inv) || !p.once("-t", name) {
			return
		}
		if p.fileFam != 0 {
			p.fail(name, "%s can't be used in an iptables-save file: the table comes from the *table line", name)
			return
		}
		t, ok := p.arg(name, inline, hasInline, "a table name")
		if !ok {
			return
		}
		if _, ok := tableHooks[t]; !ok {
			p.fail(t, "unknown table %q%s (supported: filter, mangle, nat, raw)", t, didYouMean(t, tableOrder))
			return
		}
		c.table = t
	case "-4", "--ipv4", "-6", "--ipv6":
		if !p.noInvert(name, inv) {
			return
		}
		m := maskV4
		if name == "-6" || name == "--ipv6" {
			m = maskV6
		}
		switch {
		case p.detect:
		case p.fileFam != 0:
			// iptables-restore skips a rule for the other family: that is
			// how one file serves both.
			if m != p.fileFam {
				c.skip = true
			}
		default:
			p.restrict(m, name, name, "")
		}
	case "-w", "--wait":
		if !p.noInvert(name, inv) {
			return
		}
		if hasInline {
			if _, ok := parseNum(inline, math.MaxInt32); !ok {
				p.fail(inline, "%s: %q is not a number of seconds", name, inline)
			}
		} else if s, ok := p.optionalArg(); ok {
			if _, ok := parseNum(s, math.MaxInt32); !ok {
				p.fail(s, "%s: %q is not a number of seconds", name, s)
			}
		}
	case "-v", "--verbose", "-n", "--numeric":
		p.noInvert(name, inv)
	case "-c", "--set-counters":
		// Initial counters: accepted and ignored, the stack counts from 0.
		if !p.noInvert(name, inv) || !p.once("-c", name) {
			return
		}
		for range 2 {
			s, ok := p.arg(name, inline, hasInline, "packet and byte counts")
			if !ok {
				return
			}
			hasInline = false
			if _, ok := parseNum(s, math.MaxUint64); !ok {
				p.fail(s, "%s: %q is not a number", name, s)
				return
			}
		}
	case "-p", "--protocol":
		p.ruleOpt(name)
		if !p.once("-p", name) {
			return
		}
		s, ok := p.arg(name, inline, hasInline, "a protocol")
		if !ok || !p.notIntra(name, s, "PROTO") {
			return
		}
		n, err := parseProto(s)
		if err != nil {
			p.fail(s, "%s: %v", name, err)
			return
		}
		if n == 0 && inv {
			p.fail(s, "! -p %s would never match", s)
			return
		}
		switch n {
		case ProtoICMP:
			p.restrict(maskV4, s, "-p "+s, ": ICMP for IPv6 is -p icmpv6")
		case ProtoICMPv6:
			p.restrict(maskV6, s, "-p "+s, ": ICMP for IPv4 is -p icmp")
		}
		p.proto, p.protoSet = Proto{Num: n, Invert: inv}, true
	case "-s", "--source", "--src", "-d", "--destination", "--dst":
		p.ruleOpt(name)
		canon := "-s"
		if name == "-d" || name == "--destination" || name == "--dst" {
			canon = "-d"
		}
		if !p.once(canon, name) {
			return
		}
		s, ok := p.arg(name, inline, hasInline, "an address")
		if !ok || !p.notIntra(name, s, "ADDR") {
			return
		}
		parts := strings.Split(s, ",")
		if inv && len(parts) > 1 {
			p.fail(s, `"!" can't be used with several addresses in %s`, name)
			return
		}
		var prefixes []netip.Prefix
		for _, part := range parts {
			pf, err := parsePrefix(part)
			if err != nil {
				p.fail(part, "%s: %v", name, err)
				return
			}
			if !p.restrictAddr(pf.Addr(), part) {
				return
			}
			prefixes = append(prefixes, pf)
		}
		if canon == "-s" {
			c.srcs, c.srcInv = prefixes, inv
		} else {
			c.dsts, c.dstInv = prefixes, inv
		}
	case "-i", "--in-interface", "-o", "--out-interface":
		p.ruleOpt(name)
		canon := "-i"
		if name == "-o" || name == "--out-interface" {
			canon = "-o"
		}
		if !p.once(canon, name) {
			return
		}
		s, ok := p.arg(name, inline, hasInline, "an interface name")
		if !ok || !p.notIntra(name, s, "NAME") {
			return
		}
		if err := checkIfName(s); err != nil {
			p.fail(s, "%s: %v", name, err)
			return
		}
		if canon == "-i" {
			p.in = Iface{Name: s, Invert: inv}
		} else {
			p.out = Iface{Name: s, Invert: inv}
		}
	case "-f", "--fragment":
		p.fail(name, "%s is not supported", name)
	case "-m", "--match":
		p.ruleOpt(name)
		if !p.noInvert(name, inv) {
			return
		}
		s, ok := p.arg(name, inline, hasInline, "a match module name")
		if !ok {
			return
		}
		def := matchDefs[s]
		if def == nil {
			names := sortedKeys(matchDefs)
			p.fail(s, "unsupported match module %q%s; supported: %s", s, didYouMean(s, names), strings.Join(names, ", "))
			return
		}
		if def.fam != maskBoth && !p.restrict(def.fam, s, "-m "+s, def.famHint) {
			return
		}
		p.addMatch(def, s)
	case "-j", "--jump", "-g", "--goto":
		p.ruleOpt(name)
		isGoto := name == "-g" || name == "--goto"
		canon := "-j"
		if isGoto {
			canon = "-g"
		}
		if !p.noInvert(name, inv) {
			return
		}
		if prev, ok := p.seen["-j"]; ok {
			if prev == canon {
				p.fail(name, "%s given twice", name)
			} else {
				p.fail(name, "%s and %s can't be used together", prev, canon)
			}
			return
		}
		p.seen["-j"] = canon
		s, ok := p.arg(name, inline, hasInline, "a target")
		if !ok {
			return
		}
		v, isVerdict := verdicts[s]
		def := targetDefs[s]
		switch {
		case isGoto && (isVerdict || def != nil):
			p.fail(s, "%s needs a user-defined chain, not %s", name, s)
		case isVerdict:
			p.verdict = v
		case def != nil:
			p.target = &extInst{def: def, tok: s, seen: map[string]string{}, tp: def.newTarget()}
		case s == "":
			p.fail(s, "%s needs a target", name)
		default:
			c.jump, c.jumpTok, c.gotoJump = s, s, isGoto
		}
	default:
		p.ruleOpt(name)
		p.extOption(name, inline, hasInline, inv)
	}
}

// commandArgs reads the arguments of the command just seen.
func (p *ruleParser) commandArgs(name, inline string, hasInline bool) {
	c := p.cmd
	ruleNum := func() {
		s, ok := p.optionalArg()
		if !ok {
			return
		}
		n, ok := parseNum(s, math.MaxInt32)
		if !ok || n == 0 {
			p.fail(s, "%s: invalid rule number %q (rules count from 1)", name, s)
			return
		}
		c.num = int(n)
	}
	switch c.op {
	case "-A", "-I", "-D", "-P", "-N":
		s, ok := p.arg(name, inline, hasInline, "a chain name")
		if !ok {
			return
		}
		if s == "" {
			p.fail(s, "%s: empty chain name", name)
			return
		}
		c.chain = s
		switch c.op {
		case "-I", "-D":
			ruleNum()
		case "-P":
			c.policy, _ = p.arg(name, "", false, "a chain name and a policy")
		}
	case "-F", "-X", "-Z":
		if hasInline {
			c.chain = inline
		} else {
			c.chain, _ = p.optionalArg()
		}
		if c.op == "-Z" && c.chain != "" {
			ruleNum()
		}
	}
}

// sortedKeys returns a map's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var verdicts = map[string]Verdict{"ACCEPT": Accept, "DROP": Drop, "RETURN": Return}

// isTargetName reports whether s names a verdict or a supported target, or
// a well-known Linux target: such names can't be chain names.
func isTargetName(s string) bool {
	_, v := verdicts[s]
	return v || targetDefs[s] != nil || s == "QUEUE" || s == "NFQUEUE" || s == "CT" || s == "NOTRACK" ||
		s == "TCPMSS" || s == "CONNMARK" || s == "NFLOG" || s == "TPROXY" || s == "CLASSIFY" || s == "DSCP" ||
		s == "TOS" || s == "TTL" || s == "HL" || s == "NETMAP" || s == "TEE" || s == "TRACE" || s == "CHECKSUM" ||
		s == "SECMARK" || s == "CONNSECMARK" || s == "AUDIT" || s == "ERROR"
}

func (p *ruleParser) addMatch(def *extDef, tok string) *extInst {
	// A new instance of a module takes the module's options from now on,
	// as in iptables.
	for _, mi := range p.matches {
		if mi.def == def {
			mi.completed = true
		}
	}
	mi := &extInst{def: def, tok: tok, seen: map[string]string{}, mp: def.newMatch()}
	p.matches = append(p.matches, mi)
	return mi
}

// extOption hands an option to the target, a loaded match or the match
// of the protocol, in iptables' order.
func (p *ruleParser) extOption(name, inline string, hasInline, inv bool) {
	if t := p.target; t != nil {
		if od := t.def.find(name); od != nil {
			p.applyOption(t, od, name, inline, hasInline, inv)
			return
		}
	}
	for _, mi := range p.matches {
		if mi.completed {
			continue
		}
		if od := mi.def.find(name); od != nil {
			p.applyOption(mi, od, name, inline, hasInline, inv)
			return
		}
	}
	// -p tcp implies -m tcp at the first option of the tcp match, once.
	if p.protoSet && !p.proto.Invert && !p.protoUsed {
		if def := protoMatch[p.proto.Num]; def != nil && def.fam&p.fam != 0 {
			if od := def.find(name); od != nil {
				p.protoUsed = true
				p.applyOption(p.addMatch(def, name), od, name, inline, hasInline, inv)
				return
			}
		}
	}
	p.unknownOption(name)
}

// protoMatch is the match each protocol implies.
var protoMatch = map[uint8]*extDef{}

func (p *ruleParser) unknownOption(name string) {
	c := p.cmd
	// Options after -j of a target nfpipe lacks are that target's: saying
	// so beats "unknown option".
	if c.jump != "" && !p.rs.chainAnywhere(c.jump, p.fam) {
		p.fail(c.jumpTok, "%s", unknownTargetMsg(c.jump, "", nil))
		return
	}
	var protos, mods, tgts []string
	for _, d := range optionOwners[name] {
		switch {
		case d.isTarget:
			tgts = append(tgts, "-j "+d.name)
		case d.proto != 0:
			protos = append(protos, "-p "+d.protoName)
		default:
			mods = append(mods, "-m "+d.name)
		}
	}
	switch {
	case len(protos) > 0:
		p.fail(name, "%s needs %s before it", name, strings.Join(protos, " or "))
	case len(mods) > 0:
		p.fail(name, "%s needs %s before it", name, strings.Join(mods, " or "))
	case len(tgts) > 0:
		p.fail(name, "%s is an option of %s", name, strings.Join(tgts, " or "))
	case len(name) > 2:
		p.fail(name, "unknown option %q%s", name, didYouMean(name, allOptions))
	default:
		p.fail(name, "unknown option %q", name)
	}
}

// unknownTargetMsg explains a -j name that is neither a target nor a chain.
func unknownTargetMsg(name, table string, chains []string) string {
	targets := append(sortedKeys(targetDefs), "ACCEPT", "DROP", "RETURN")
	slices.Sort(targets)
	in := ""
	if table != "" {
		in = fmt.Sprintf(" in table %q", table)
	}
	return fmt.Sprintf("no chain or supported target named %q%s%s; targets: %s", name, in,
		didYouMean(name, append(chains, targets...)), strings.Join(targets, ", "))
}

// applyOption parses one option of a match or target instance.
func (p *ruleParser) applyOption(x *extInst, od *optDef, name, inline string, hasInline, inv bool) {
	if od.unsupported != "" {
		p.fail(name, "%s is not supported%s", name, od.unsupported)
		return
	}
	if inv && !od.invert {
		p.fail("!", `"!" can't be used with %s`, name)
		return
	}
	canon := od.names[0]
	slot := od.slot
	if slot == "" {
		slot = canon
	}
	if prev, ok := x.seen[slot]; ok {
		if prev == canon {
			p.fail(name, "%s given twice", name)
		} else {
			p.fail(name, "%s and %s can't be used together", prev, canon)
		}
		return
	}
	x.seen[slot] = canon
	var args []string
	switch od.nargs {
	case 0:
		if hasInline {
			p.fail(name, "%s takes no argument", name)
			return
		}
	case 1:
		s, ok := p.arg(name, inline, hasInline, "an argument")
		if !ok {
			return
		}
		args = []string{s}
	case 2:
		s, ok := p.arg(name, inline, hasInline, "two arguments")
		if !ok {
			return
		}
		t, ok := p.arg(name, "", false, "two arguments")
		if !ok {
			return
		}
		args = []string{s, t}
	}
	if od.invert && len(args) > 0 && !p.notIntra(name, args[0], "VALUE") {
		return
	}
	if x.mp != nil {
		x.mp.option(p, canon, args, inv)
	} else {
		x.tp.option(p, canon, args, inv)
	}
}

// finish checks the command as a whole and builds its rule.
func (p *ruleParser) finish() {
	c := p.cmd
	if c.op == "" {
		p.fail("", "no command: want -A, -I, -D, -P, -N, -F, -X or -Z")
		return
	}
	takesRule := c.op == "-A" || c.op == "-I" || c.op == "-D" && c.num == 0
	if !takesRule {
		if c.ruleTok != "" {
			p.fail(c.ruleTok, "%s can't be used with %s", c.ruleTok, c.opTok)
		}
		if c.op == "-P" && c.policy == "" {
			p.fail(c.opTok, "%s needs a chain name and a policy", c.opTok)
		}
		return
	}
	r := &Rule{Proto: p.proto, In: p.in, Out: p.out}
	for _, mi := range p.matches {
		m := mi.mp.finish(p, mi.tok)
		if p.err != nil {
			return
		}
		if mi.def.needProto != nil && !mi.def.needProto(p.proto) {
			p.fail(mi.tok, "-m %s needs %s", mi.def.name, mi.def.protoMsg)
			return
		}
		r.Matches = append(r.Matches, m)
	}
	switch {
	case p.target != nil:
		r.Target = p.target.tp.finish(p, p.target.tok)
	case p.verdict != 0:
		r.Target = p.verdict
	}
	c.rule = r
}
