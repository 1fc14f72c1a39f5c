package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// optDef describes one option of a match or target.
type optDef struct {
	// names are the spellings; the first is canonical.
	names []string
	// nargs is the number of arguments: 0, 1 or 2.
	nargs int
	// invert is set when the option may follow a "!".
	invert bool
	// slot groups options that exclude each other; "" means names[0].
	slot string
	// unsupported, when set, marks an option iptables has and nfpipe does
	// not; it is appended to "OPTION is not supported".
	unsupported string
}

// extDef describes a match module or a target.
type extDef struct {
	name     string
	isTarget bool
	// fam is the set of families the extension exists in, and famHint
	// what to use in the other family.
	fam     famMask
	famHint string
	opts    []optDef
	// proto, for the match a protocol implies (-p tcp implies -m tcp),
	// is that protocol, and protoName its name after -p.
	proto     uint8
	protoName string
	// needProto, when set, says whether a match accepts the rule's -p,
	// and protoMsg what it needs.
	needProto func(Proto) bool
	protoMsg  string
	newMatch  func() matchParser
	newTarget func() targetParser
}

func (d *extDef) find(name string) *optDef {
	for i := range d.opts {
		for _, n := range d.opts[i].names {
			if n == name {
				return &d.opts[i]
			}
		}
	}
	return nil
}

// extInst is a match or target being parsed.
type extInst struct {
	def *extDef
	// tok is the word that loaded it, for messages.
	tok string
	// seen maps each slot used to the canonical option that used it.
	seen map[string]string
	// completed is set once a later -m loads the same module: options then
	// go to the new instance.
	completed bool
	mp        matchParser
	tp        targetParser
}

// matchParser builds one match from its options. option reports problems
// with p.fail; finish returns nil after a p.fail.
type matchParser interface {
	option(p *ruleParser, opt string, args []string, inv bool)
	finish(p *ruleParser, tok string) Match
}

// targetParser builds one target from its options, like matchParser.
type targetParser interface {
	option(p *ruleParser, opt string, args []string, inv bool)
	finish(p *ruleParser, tok string) Target
}

// Endings of "OPTION is not supported".
const (
	byNfpipe    = " by nfpipe"
	onlyCtstate = ": only --ctstate of -m conntrack is"
)

var (
	matchDefs  = map[string]*extDef{}
	targetDefs = map[string]*extDef{}
	// optionOwners maps an option to the extensions that have it.
	optionOwners = map[string][]*extDef{}
	// allOptions lists every option name, for suggestions.
	allOptions []string
)

// isPortProto reports whether the rule's protocol has ports the multiport
// match can read, as the kernel checks it (a "!" before -p does not count).
func isPortProto(p Proto) bool {
	switch p.Num {
	case ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoSCTP, ProtoDCCP:
		return !p.Invert
	}
	return false
}

func init() {
	portOpts := []optDef{
		{names: []string{"--sport", "--source-port"}, nargs: 1, invert: true},
		{names: []string{"--dport", "--destination-port"}, nargs: 1, invert: true},
	}
	tcpOpts := append(append([]optDef(nil), portOpts...),
		optDef{names: []string{"--tcp-flags"}, nargs: 2, invert: true, slot: "flags"},
		optDef{names: []string{"--syn"}, invert: true, slot: "flags"},
		optDef{names: []string{"--tcp-option"}, nargs: 1, invert: true, unsupported: byNfpipe},
	)
	matches := []*extDef{
		{name: "tcp", fam: maskBoth, opts: tcpOpts, proto: ProtoTCP, protoName: "tcp",
			needProto: func(p Proto) bool { return p.is(ProtoTCP) }, protoMsg: "-p tcp",
			newMatch: func() matchParser { return &tcpParser{} }},
		{name: "udp", fam: maskBoth, opts: portOpts, proto: ProtoUDP, protoName: "udp",
			needProto: func(p Proto) bool { return p.is(ProtoUDP) }, protoMsg: "-p udp",
			newMatch: func() matchParser { return &udpParser{} }},
		{name: "multiport", fam: maskBoth, opts: []optDef{
			{names: []string{"--sports", "--source-ports"}, nargs: 1, invert: true, slot: "ports"},
			{names: []string{"--dports", "--destination-ports"}, nargs: 1, invert: true, slot: "ports"},
			{names: []string{"--ports"}, nargs: 1, invert: true, slot: "ports"},
		}, needProto: isPortProto, protoMsg: "-p tcp, -p udp, -p udplite, -p sctp or -p dccp",
			newMatch: func() matchParser { return &multiportParser{} }},
		{name: "state", fam: maskBoth, opts: []optDef{{names: []string{"--state"}, nargs: 1, invert: true}},
			newMatch: func() matchParser { return &stateParser{} }},
		{name: "conntrack", fam: maskBoth, opts: []optDef{
			{names: []string{"--ctstate"}, nargs: 1, invert: true},
			{names: []string{"--ctproto"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctorigsrc"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctorigdst"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctreplsrc"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctrepldst"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctorigsrcport"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctorigdstport"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctreplsrcport"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctrepldstport"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctstatus"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctexpire"}, nargs: 1, invert: true, unsupported: onlyCtstate},
			{names: []string{"--ctdir"}, nargs: 1, unsupported: onlyCtstate},
		}, newMatch: func() matchParser { return &stateParser{conntrack: true} }},
		{name: "icmp", fam: maskV4, famHint: " (use -m icmp6)",
			opts:  []optDef{{names: []string{"--icmp-type"}, nargs: 1, invert: true}},
			proto: ProtoICMP, protoName: "icmp",
			needProto: func(p Proto) bool { return p.is(ProtoICMP) }, protoMsg: "-p icmp",
			newMatch: func() matchParser { return &icmpParser{} }},
		{name: "icmp6", fam: maskV6, famHint: " (use -m icmp)",
			opts:  []optDef{{names: []string{"--icmpv6-type"}, nargs: 1, invert: true}},
			proto: ProtoICMPv6, protoName: "icmpv6",
			needProto: func(p Proto) bool { return p.is(ProtoICMPv6) }, protoMsg: "-p icmpv6",
			newMatch: func() matchParser { return &icmpParser{v6: true} }},
		{name: "comment", fam: maskBoth, opts: []optDef{{names: []string{"--comment"}, nargs: 1}},
			newMatch: func() matchParser { return &commentParser{} }},
		{name: "limit", fam: maskBoth, opts: []optDef{
			{names: []string{"--limit"}, nargs: 1},
			{names: []string{"--limit-burst"}, nargs: 1},
		}, newMatch: func() matchParser { return &limitParser{} }},
		{name: "statistic", fam: maskBoth, opts: []optDef{
			{names: []string{"--mode"}, nargs: 1},
			{names: []string{"--probability"}, nargs: 1, invert: true},
			{names: []string{"--every"}, nargs: 1, invert: true},
			{names: []string{"--packet"}, nargs: 1},
		}, newMatch: func() matchParser { return &statisticParser{} }},
		{name: "iprange", fam: maskBoth, opts: []optDef{
			{names: []string{"--src-range"}, nargs: 1, invert: true},
			{names: []string{"--dst-range"}, nargs: 1, invert: true},
		}, newMatch: func() matchParser { return &iprangeParser{} }},
		{name: "mac", fam: maskBoth, opts: []optDef{{names: []string{"--mac-source"}, nargs: 1, invert: true}},
			newMatch: func() matchParser { return &macParser{} }},
		{name: "length", fam: maskBoth, opts: []optDef{{names: []string{"--length"}, nargs: 1, invert: true}},
			newMatch: func() matchParser { return &lengthParser{} }},
		{name: "mark", fam: maskBoth, opts: []optDef{{names: []string{"--mark"}, nargs: 1, invert: true}},
			newMatch: func() matchParser { return &markParser{} }},
	}
	markOpt := func(name string) optDef { return optDef{names: []string{name}, nargs: 1, slot: "mark"} }
	targets := []*extDef{
		{name: "REJECT", opts: []optDef{{names: []string{"--reject-with"}, nargs: 1}},
			newTarget: func() targetParser { return &rejectParser{} }},
		{name: "LOG", opts: []optDef{
			{names: []string{"--log-prefix"}, nargs: 1},
			{names: []string{"--log-level"}, nargs: 1},
			{names: []string{"--log-tcp-sequence"}, unsupported: byNfpipe},
			{names: []string{"--log-tcp-options"}, unsupported: byNfpipe},
			{names: []string{"--log-ip-options"}, unsupported: byNfpipe},
			{names: []string{"--log-uid"}, unsupported: byNfpipe},
			{names: []string{"--log-macdecode"}, unsupported: byNfpipe},
		}, newTarget: func() targetParser { return &logParser{} }},
		{name: "SNAT", opts: []optDef{
			{names: []string{"--to-source"}, nargs: 1},
			{names: []string{"--random"}},
			{names: []string{"--random-fully"}, unsupported: byNfpipe},
			{names: []string{"--persistent"}, unsupported: byNfpipe},
		}, newTarget: func() targetParser { return &natParser{kind: SNAT} }},
		{name: "DNAT", opts: []optDef{
			{names: []string{"--to-destination"}, nargs: 1},
			{names: []string{"--random"}},
			{names: []string{"--persistent"}, unsupported: byNfpipe},
		}, newTarget: func() targetParser { return &natParser{kind: DNAT} }},
		{name: "MASQUERADE", opts: []optDef{
			{names: []string{"--to-ports"}, nargs: 1},
			{names: []string{"--random"}},
			{names: []string{"--random-fully"}, unsupported: byNfpipe},
		}, newTarget: func() targetParser { return &natParser{kind: Masquerade} }},
		{name: "REDIRECT", opts: []optDef{
			{names: []string{"--to-ports"}, nargs: 1},
			{names: []string{"--random"}},
		}, newTarget: func() targetParser { return &natParser{kind: Redirect} }},
		{name: "MARK", opts: []optDef{
			markOpt("--set-xmark"), markOpt("--set-mark"), markOpt("--and-mark"),
			markOpt("--or-mark"), markOpt("--xor-mark"),
		}, newTarget: func() targetParser { return &markTargetParser{} }},
	}
	seen := map[string]bool{}
	add := func(d *extDef) {
		for _, od := range d.opts {
			for _, n := range od.names {
				optionOwners[n] = append(optionOwners[n], d)
				if !seen[n] {
					seen[n] = true
					allOptions = append(allOptions, n)
				}
			}
		}
	}
	for _, d := range matches {
		matchDefs[d.name] = d
		if d.proto != 0 {
			protoMatch[d.proto] = d
		}
		add(d)
	}
	for _, d := range targets {
		d.isTarget, d.fam = true, maskBoth
		targetDefs[d.name] = d
		add(d)
	}
	allOptions = append(allOptions, genericOptions...)
}

// portOption parses --sport/--dport into *src or *dst.
func portOption(p *ruleParser, opt string, arg string, inv bool, src, dst **PortMatch) {
	r, err := parsePortRange(arg)
	if err != nil {
		p.failValue(arg, err)
		return
	}
	pm := &PortMatch{Range: r, Invert: inv}
	if opt == "--sport" {
		*src = pm
	} else {
		*dst = pm
	}
}

type tcpParser struct{ m TCP }

func (t *tcpParser) option(p *ruleParser, opt string, args []string, inv bool) {
	switch opt {
	case "--sport", "--dport":
		portOption(p, opt, args[0], inv, &t.m.Src, &t.m.Dst)
	case "--tcp-flags":
		mask, ok1 := parseTCPFlags(p, args[0])
		comp, ok2 := parseTCPFlags(p, args[1])
		if ok1 && ok2 {
			t.m.Flags = &TCPFlags{Mask: mask, Comp: comp, Invert: inv}
		}
	case "--syn":
		t.m.Flags = &TCPFlags{Mask: FlagFIN | FlagSYN | FlagRST | FlagACK, Comp: FlagSYN, Invert: inv}
	}
}

func (t *tcpParser) finish(*ruleParser, string) Match { m := t.m; return &m }

func parseTCPFlags(p *ruleParser, s string) (uint8, bool) {
	var bits uint8
	names := make([]string, len(tcpFlagNames))
	for i, f := range tcpFlagNames {
		names[i] = f.name
	}
	for _, part := range strings.Split(s, ",") {
		found := false
		for _, f := range tcpFlagNames {
			if strings.EqualFold(f.name, part) {
				bits |= f.bits
				found = true
				break
			}
		}
		if !found {
			p.fail(s, "%s: unknown TCP flag %q%s (want SYN, ACK, FIN, RST, URG, PSH, ALL or NONE)", p.curOpt, part, didYouMean(strings.ToUpper(part), names))
			return 0, false
		}
	}
	return bits, true
}

type udpParser struct{ m UDP }

func (u *udpParser) option(p *ruleParser, opt string, args []string, inv bool) {
	portOption(p, opt, args[0], inv, &u.m.Src, &u.m.Dst)
}

func (u *udpParser) finish(*ruleParser, string) Match { m := u.m; return &m }

type multiportParser struct{ m *Multiport }

func (mp *multiportParser) option(p *ruleParser, opt string, args []string, inv bool) {
	ports, err := parseMultiports(args[0])
	if err != nil {
		p.failValue(args[0], err)
		return
	}
	dir := map[string]PortDir{"--sports": SourcePorts, "--dports": DestinationPorts, "--ports": EitherPort}[opt]
	mp.m = &Multiport{Dir: dir, Ports: ports, Invert: inv}
}

func (mp *multiportParser) finish(p *ruleParser, tok string) Match {
	if mp.m == nil {
		p.fail(tok, "-m multiport needs --sports, --dports or --ports")
		return nil
	}
	return mp.m
}

type stateParser struct {
	conntrack bool
	m         *State
}

func (s *stateParser) option(p *ruleParser, opt string, args []string, inv bool) {
	var states States
	names := make([]string, len(stateNames))
	for i, n := range stateNames {
		names[i] = n.name
	}
	for _, part := range strings.Split(args[0], ",") {
		found := false
		for _, n := range stateNames {
			if strings.EqualFold(n.name, part) {
				states |= n.bit
				found = true
			}
		}
		if !found {
			p.fail(args[0], "%s: unknown state %q%s (want NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED)", opt, part, didYouMean(strings.ToUpper(part), names))
			return
		}
	}
	s.m = &State{Conntrack: s.conntrack, States: states, Invert: inv}
}

func (s *stateParser) finish(p *ruleParser, tok string) Match {
	if s.m == nil {
		if s.conntrack {
			p.fail(tok, "-m conntrack needs --ctstate")
		} else {
			p.fail(tok, "-m state needs --state")
		}
		return nil
	}
	return s.m
}

type icmpParser struct {
	v6 bool
	m  *ICMPType
}

func (ip *icmpParser) option(p *ruleParser, opt string, args []string, inv bool) {
	names := icmpNames
	if ip.v6 {
		names = icmpv6Names
	}
	typ, cmin, cmax, err := parseICMPType(args[0], names)
	if err != nil {
		p.failValue(args[0], err)
		return
	}
	ip.m = &ICMPType{V6: ip.v6, Type: typ, CodeMin: cmin, CodeMax: cmax, Invert: inv}
}

func (ip *icmpParser) finish(p *ruleParser, tok string) Match {
	if ip.m == nil {
		if ip.v6 {
			p.fail(tok, "-m icmp6 needs --icmpv6-type")
		} else {
			p.fail(tok, "-m icmp needs --icmp-type")
		}
		return nil
	}
	return ip.m
}

// maxComment is the longest comment the kernel keeps.
const maxComment = 255

type commentParser struct{ m *Comment }

func (c *commentParser) option(p *ruleParser, _ string, args []string, _ bool) {
	if err := checkText(args[0], maxComment); err != nil {
		p.failValue(args[0], err)
		return
	}
	c.m = &Comment{Text: args[0]}
}

func (c *commentParser) finish(p *ruleParser, tok string) Match {
	if c.m == nil {
		p.fail(tok, "-m comment needs --comment")
		return nil
	}
	return c.m
}

// maxBurst is the largest --limit-burst iptables accepts.
const maxBurst = 10000

type limitParser struct {
	rate, burst uint32
	per         time.Duration
}

func (l *limitParser) option(p *ruleParser, opt string, args []string, _ bool) {
	switch opt {
	case "--limit":
		r, per, err := parseLimitRate(args[0])
		if err != nil {
			p.failValue(args[0], err)
			return
		}
		l.rate, l.per = r, per
	case "--limit-burst":
		n, ok := parseNum(args[0], maxBurst)
		if !ok || n == 0 {
			p.fail(args[0], "%s: %q is not a number from 1 to %d", p.curOpt, args[0], maxBurst)
			return
		}
		l.burst = uint32(n)
	}
}

func (l *limitParser) finish(p *ruleParser, tok string) Match {
	m := &Limit{Rate: 3, Per: time.Hour, Burst: defaultBurst} // iptables' defaults
	if l.rate != 0 {
		m.Rate, m.Per = l.rate, l.per
	}
	if l.burst != 0 {
		m.Burst = l.burst
	}
	if limitOverflows(m) {
		p.fail(tok, "-m limit: --limit %d/%s with --limit-burst %d overflows the kernel's token bucket (Linux refuses it): lower the burst or raise the rate",
			m.Rate, limitUnit(m.Per), m.Burst)
		return nil
	}
	return m
}

// limitOverflows mirrors xt_limit's check when a table is loaded: the
// average interval times the burst, in 1/10000 s, must not overflow the
// kernel's 32-bit credit arithmetic. HZ*CREDITS_PER_JIFFY is 32000 for
// HZ=250 and HZ=1000 (25600 and 38400 for the rarer HZ=100 and HZ=300).
func limitOverflows(m *Limit) bool {
	const scale, k = 10000, 32000
	avg := uint32(scale * uint64(m.Per/time.Second) / uint64(m.Rate))
	credits := func(u uint32) uint32 {
		if u > math.MaxUint32/k {
			return (u / scale) * k // wraps in the kernel too
		}
		return u * k / scale
	}
	return credits(avg*m.Burst) < credits(avg)
}

type statisticParser struct {
	mode                string
	m                   Statistic
	prob, every, packet bool
}

func (s *statisticParser) option(p *ruleParser, opt string, args []string, inv bool) {
	a := args[0]
	switch opt {
	case "--mode":
		if a != "random" && a != "nth" {
			p.fail(a, "--mode: unknown mode %q (want random or nth)", a)
			return
		}
		s.mode = a
	case "--probability":
		f, err := strconv.ParseFloat(a, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			p.fail(a, "--probability: %q is not a number from 0 to 1", a)
			return
		}
		// The kernel keeps the probability in 31 bits.
		s.m.Probability = math.Round(f*(1<<31)) / (1 << 31)
		s.m.Invert = s.m.Invert || inv
		s.prob = true
	case "--every":
		n, ok := parseNum(a, math.MaxUint32)
		if !ok || n == 0 {
			p.fail(a, "--every: %q is not a number from 1 to %d", a, uint32(math.MaxUint32))
			return
		}
		s.m.Every = uint32(n)
		s.m.Invert = s.m.Invert || inv
		s.every = true
	case "--packet":
		n, ok := parseNum(a, math.MaxUint32)
		if !ok {
			p.fail(a, "--packet: %q is not a number", a)
			return
		}
		s.m.Packet = uint32(n)
		s.packet = true
	}
}

func (s *statisticParser) finish(p *ruleParser, tok string) Match {
	switch s.mode {
	case "":
		p.fail(tok, "-m statistic needs --mode random or --mode nth")
	case "random":
		switch {
		case s.every || s.packet:
			p.fail(tok, "--every and --packet need --mode nth")
		case !s.prob:
			p.fail(tok, "--mode random needs --probability")
		}
		s.m.Mode = StatRandom
	case "nth":
		switch {
		case s.prob:
			p.fail(tok, "--probability needs --mode random")
		case !s.every || !s.packet:
			// iptables requires both, though the kernel would take 0.
			p.fail(tok, "--mode nth needs --every and --packet")
		case s.m.Packet >= s.m.Every:
			p.fail(tok, "--packet %d must be less than --every %d", s.m.Packet, s.m.Every)
		}
		s.m.Mode = StatNth
	}
	if p.err != nil {
		return nil
	}
	m := s.m
	return &m
}

type iprangeParser struct{ m IPRange }

func (r *iprangeParser) option(p *ruleParser, opt string, args []string, inv bool) {
	ar, err := parseAddrRange(args[0])
	if err != nil {
		p.failValue(args[0], err)
		return
	}
	if !p.restrictAddr(ar.Min, args[0]) {
		return
	}
	ar.Invert = inv
	if opt == "--src-range" {
		r.m.Src = &ar
	} else {
		r.m.Dst = &ar
	}
}

func (r *iprangeParser) finish(p *ruleParser, tok string) Match {
	if r.m.Src == nil && r.m.Dst == nil {
		p.fail(tok, "-m iprange needs --src-range or --dst-range")
		return nil
	}
	m := r.m
	return &m
}

type macParser struct{ m *MAC }

func (mp *macParser) option(p *ruleParser, _ string, args []string, inv bool) {
	a, err := parseMAC(args[0])
	if err != nil {
		p.failValue(args[0], err)
		return
	}
	mp.m = &MAC{Addr: a, Invert: inv}
}

func (mp *macParser) finish(p *ruleParser, tok string) Match {
	if mp.m == nil {
		p.fail(tok, "-m mac needs --mac-source")
		return nil
	}
	return mp.m
}

type lengthParser struct{ m *Length }

func (l *lengthParser) option(p *ruleParser, _ string, args []string, inv bool) {
	r, err := parsePortRange(args[0])
	if err != nil {
		p.failValue(args[0], fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "port", "length")))
		return
	}
	l.m = &Length{Min: r.Min, Max: r.Max, Invert: inv}
}

func (l *lengthParser) finish(p *ruleParser, tok string) Match {
	if l.m == nil {
		p.fail(tok, "-m length needs --length")
		return nil
	}
	return l.m
}

type markParser struct{ m *Mark }

func (mp *markParser) option(p *ruleParser, _ string, args []string, inv bool) {
	v, mask, err := parseMarkMask(args[0])
	if err != nil {
		p.failValue(args[0], err)
		return
	}
	mp.m = &Mark{Value: v, Mask: mask, Invert: inv}
}

func (mp *markParser) finish(p *ruleParser, tok string) Match {
	if mp.m == nil {
		p.fail(tok, "-m mark needs --mark")
		return nil
	}
	return mp.m
}

type rejectParser struct {
	with RejectWith
	tok  string
}

func (r *rejectParser) option(p *ruleParser, _ string, args []string, _ bool) {
	a := args[0]
	r.tok = a
	var fits []RejectWith
	var other RejectWith
	for w := ICMPNetUnreachable; w <= TCPReset; w++ {
		n := rejectNames[w]
		if !strings.EqualFold(n.name, a) && !strings.EqualFold(n.alias, a) {
			continue
		}
		if n.fam&p.fam != 0 {
			fits = append(fits, w)
		} else {
			other = w
		}
	}
	switch {
	case len(fits) == 1:
		r.with = fits[0]
		p.restrict(rejectNames[r.with].fam, a, "", "")
	case len(fits) > 1:
		// "port-unreach" names a reply of each family: a rule for both
		// gets each family's, when it is parsed for that family.
	case other != 0:
		p.restrict(rejectNames[other].fam, a, "--reject-with "+a, "")
	default:
		var names []string
		for w := ICMPNetUnreachable; w <= TCPReset; w++ {
			if rejectNames[w].fam&p.fam != 0 {
				names = append(names, rejectNames[w].name)
			}
		}
		p.fail(a, "--reject-with: unknown reply %q%s (want %s)", a, didYouMean(a, names), strings.Join(names, ", "))
	}
}

func (r *rejectParser) finish(p *ruleParser, _ string) Target {
	w := r.with
	if w == 0 {
		switch p.fam {
		case maskV4:
			w = ICMPPortUnreachable
		case maskV6:
			w = ICMP6PortUnreachable
		}
	}
	if w == TCPReset && !p.proto.is(ProtoTCP) {
		p.fail(r.tok, "--reject-with tcp-reset needs -p tcp")
		return nil
	}
	return &Reject{With: w}
}

// maxLogPrefix is the longest LOG prefix the kernel keeps.
const maxLogPrefix = 29

type logParser struct {
	m        Log
	levelSet bool
}

func (l *logParser) option(p *ruleParser, opt string, args []string, _ bool) {
	a := args[0]
	switch opt {
	case "--log-prefix":
		if a == "" {
			p.fail(a, "--log-prefix: empty prefix")
			return
		}
		if err := checkText(a, maxLogPrefix); err != nil {
			p.failValue(a, err)
			return
		}
		l.m.Prefix = a
	case "--log-level":
		lv, err := parseLogLevel(a)
		if err != nil {
			p.failValue(a, err)
			return
		}
		l.m.Level, l.levelSet = lv, true
	}
}

func (l *logParser) finish(*ruleParser, string) Target {
	m := l.m
	if !l.levelSet {
		m.Level = defaultLogLevel
	}
	return &m
}

type natParser struct {
	kind               NATKind
	m                  NAT
	hasTo              bool
	portsOpt, portsTok string
}

func (n *natParser) option(p *ruleParser, opt string, args []string, _ bool) {
	switch opt {
	case "--to-source", "--to-destination":
		a := args[0]
		r, err := parseNATRange(a)
		if err != nil {
			p.failValue(a, err)
			return
		}
		if r.MinAddr.IsValid() && !p.restrictAddr(r.MinAddr, a) {
			return
		}
		n.m.Range, n.hasTo = r, true
		if r.Ports != nil {
			n.portsOpt, n.portsTok = p.curOpt, a
		}
	case "--to-ports":
		a := args[0]
		r, err := parseNATPorts(a)
		if err != nil {
			p.failValue(a, err)
			return
		}
		n.m.Range.Ports, n.portsOpt, n.portsTok = &r, p.curOpt, a
	case "--random":
		n.m.Random = true
	}
}

func (n *natParser) finish(p *ruleParser, tok string) Target {
	switch {
	case n.kind == SNAT && !n.hasTo:
		p.fail(tok, "-j SNAT needs --to-source")
		return nil
	case n.kind == DNAT && !n.hasTo:
		p.fail(tok, "-j DNAT needs --to-destination")
		return nil
	}
	// iptables' own test (it ignores a "!" before -p, and so do we).
	switch p.proto.Num {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoDCCP, ProtoICMP:
	default:
		if n.m.Range.Ports != nil {
			p.fail(n.portsTok, "%s %s: mapping ports needs -p tcp, -p udp, -p sctp, -p dccp or -p icmp", n.portsOpt, n.portsTok)
			return nil
		}
	}
	m := n.m
	m.Kind = n.kind
	return &m
}

type markTargetParser struct {
	m   *SetMark
	tok string
}

func (t *markTargetParser) option(p *ruleParser, opt string, args []string, _ bool) {
	a := args[0]
	switch opt {
	case "--set-xmark", "--set-mark":
		v, mask, err := parseMarkMask(a)
		if err != nil {
			p.failValue(a, err)
			return
		}
		if opt == "--set-mark" {
			// Clear the mask's bits, then set the value's: as an xmark,
			// the value's bits join the mask.
			mask |= v
		}
		t.m = &SetMark{Value: v, Mask: mask}
	default:
		n, ok := parseNum(a, math.MaxUint32)
		if !ok {
			p.fail(a, "%s: %q is not a 32-bit number", opt, a)
			return
		}
		v := uint32(n)
		switch opt {
		case "--and-mark":
			t.m = &SetMark{Value: 0, Mask: ^v}
		case "--or-mark":
			t.m = &SetMark{Value: v, Mask: v}
		case "--xor-mark":
			t.m = &SetMark{Value: v, Mask: 0}
		}
	}
}

func (t *markTargetParser) finish(p *ruleParser, tok string) Target {
	if t.m == nil {
		p.fail(tok, "-j MARK needs --set-mark, --set-xmark, --and-mark, --or-mark or --xor-mark")
		return nil
	}
	return t.m
}
