package netstack

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/rules"
)

// RuleCounter counts the packets and bytes that reached a rule's target (or
// a chain's policy).
type RuleCounter struct {
	Packets atomic.Uint64
	Bytes   atomic.Uint64
}

func (c *RuleCounter) add(pkt *stack.PacketBuffer) {
	c.Packets.Add(1)
	c.Bytes.Add(uint64(pkt.Size()))
}

// ChainCounters are one chain's counters as installed.
type ChainCounters struct {
	Family rules.Family
	Table  string
	Chain  *rules.Chain
	// Policy counts the packets the chain's policy decided (built-in
	// chains only).
	Policy *RuleCounter
	// Rules holds a counter per rule, in chain order.
	Rules []*RuleCounter
}

// ApplyRules validates rs and installs it in the stack's iptables, replacing
// every table it defines, atomically per table. Nothing is installed when
// an error is returned. It returns the counters of the installed rules.
//
// Supported now: tables filter and nat; matches -p, -s, -d, -i, -o, tcp/udp
// ports and flags, multiport, icmp/icmpv6 types, conntrack/state, comment,
// iprange, length, limit, statistic, mac, mark; targets ACCEPT, DROP,
// RETURN, user chains (-j), REJECT, LOG, MARK, SNAT/DNAT/MASQUERADE/
// REDIRECT with address and port ranges (see natTarget). Anything else is
// an error naming the rule.
func (s *Stack) ApplyRules(rs *rules.Ruleset) ([]*ChainCounters, error) {
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	if len(rs.Tables(rules.IPv4))+len(rs.Tables(rules.IPv6)) > 0 {
		s.userRules.Store(true) // from now on every packet meets them (no fast path)
	}
	if s.gsoPending != nil && len(rs.Tables(rules.IPv4))+len(rs.Tables(rules.IPv6)) > 0 {
		// Rules turn gVisor's iptables on anyway: the GSO marker costs
		// nothing more.
		s.gsoMark.Store(s.gsoPending)
	}
	return s.applyLocked(rs)
}

// applyLocked installs rs. s.rulesMu is held.
func (s *Stack) applyLocked(rs *rules.Ruleset) ([]*ChainCounters, error) {
	type built struct {
		id    stack.TableID
		table stack.Table
		v6    bool
	}
	var tables []built
	var counters []*ChainCounters
	var errs rules.ErrorList
	for _, fam := range []rules.Family{rules.IPv4, rules.IPv6} {
		hasNAT, hasMangle := false, false
		for _, t := range rs.Tables(fam) {
			b := &tableBuilder{s: s, fam: fam, t: t}
			tbl, cc, err := b.build()
			if err != nil {
				errs = append(errs, err...)
				continue
			}
			tables = append(tables, built{b.id, tbl, fam == rules.IPv6})
			counters = append(counters, cc...)
			hasNAT = hasNAT || t.Name == "nat"
			hasMangle = hasMangle || t.Name == "mangle"
		}
		if !hasMangle && s.gsoMark.Load() != nil {
			// A router with GSO links carries the GSO marker (see
			// gsoMarker) in an empty mangle table of its own.
			b := &tableBuilder{s: s, fam: fam, t: emptyTable(fam, "mangle")}
			if tbl, _, err := b.build(); err == nil {
				tables = append(tables, built{b.id, tbl, fam == rules.IPv6})
			}
		}
		if !hasNAT && (len(rs.Tables(rules.IPv4))+len(rs.Tables(rules.IPv6)) > 0 || s.gsoMark.Load() != nil) {
			// Rules switch gVisor's NAT on for every flow; an empty nat
			// table of nfpipe's own carries the port-0 fix (see
			// port0NoopTarget). Its counters are not shown.
			b := &tableBuilder{s: s, fam: fam, t: emptyTable(fam, "nat")}
			if tbl, _, err := b.build(); err == nil {
				tables = append(tables, built{b.id, tbl, fam == rules.IPv6})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	ipt := s.s.IPTables()
	// From the first table on, gVisor tracks connections: bound its table.
	if len(tables) > 0 {
		s.ct.enabled.Store(true)
	}
	for _, t := range tables {
		ipt.ReplaceTable(t.id, t.table, t.v6)
	}
	return counters, nil
}

// tableBuilder lays out one table the way gVisor walks it: each built-in
// chain's rules followed by its policy rule, then each user chain's rules
// followed by a RETURN, then the ERROR rule gVisor expects last.
type tableBuilder struct {
	s     *Stack
	fam   rules.Family
	t     *rules.Table
	id    stack.TableID
	rules []stack.Rule
	errs  rules.ErrorList
}

var tableIDs = map[string]stack.TableID{"filter": stack.FilterID, "nat": stack.NATID, "mangle": stack.MangleID, "raw": stack.RawID}

// evaluatedHooks are the hooks at which gVisor walks each table. Linux's
// mangle table has all five; gVisor's is not consulted at INPUT and FORWARD,
// so rules there are refused rather than silently ignored.
var evaluatedHooks = map[string][]rules.Hook{
	"filter": {rules.Input, rules.Forward, rules.Output},
	"nat":    {rules.Prerouting, rules.Input, rules.Output, rules.Postrouting},
	"mangle": {rules.Prerouting, rules.Output, rules.Postrouting},
	"raw":    {rules.Prerouting, rules.Output},
}

var gvisorHooks = map[rules.Hook]stack.Hook{
	rules.Prerouting: stack.Prerouting, rules.Input: stack.Input, rules.Forward: stack.Forward,
	rules.Output: stack.Output, rules.Postrouting: stack.Postrouting,
}

func (b *tableBuilder) netProto() tcpip.NetworkProtocolNumber {
	if b.fam == rules.IPv6 {
		return header.IPv6ProtocolNumber
	}
	return header.IPv4ProtocolNumber
}

func (b *tableBuilder) emptyFilter() stack.IPHeaderFilter {
	if b.fam == rules.IPv6 {
		return stack.EmptyFilter6()
	}
	return stack.EmptyFilter4()
}

func (b *tableBuilder) build() (stack.Table, []*ChainCounters, rules.ErrorList) {
	id, ok := tableIDs[b.t.Name]
	if !ok {
		return stack.Table{}, nil, rules.ErrorList{{Pos: b.t.Pos, Token: b.t.Name, Msg: fmt.Sprintf("table %s is not supported by nfpipe's stack (filter, nat, mangle and raw are)", b.t.Name)}}
	}
	evaluated := map[rules.Hook]bool{}
	for _, h := range evaluatedHooks[b.t.Name] {
		evaluated[h] = true
	}
	b.id = id
	var tbl stack.Table
	for h := range tbl.BuiltinChains {
		tbl.BuiltinChains[h] = stack.HookUnset
		tbl.Underflows[h] = stack.HookUnset
	}
	// Chain start indexes, so that jumps can be resolved once all are laid out.
	starts := map[string]int{}
	type pendingJump struct {
		rule  int
		chain string
	}
	var jumps []pendingJump
	var counters []*ChainCounters
	var order []*rules.Chain
	for _, c := range builtins(b.t) {
		if evaluated[c.Hook] {
			order = append(order, c)
			continue
		}
		if len(c.Rules) > 0 || c.Policy == rules.Drop {
			pos, tok := b.t.Pos, c.Name
			if len(c.Rules) > 0 {
				pos = c.Rules[0].Pos
			}
			b.errs = append(b.errs, &rules.Error{Pos: pos, Token: tok, Msg: fmt.Sprintf("the %s table's %s chain is not supported by nfpipe's stack (gVisor consults %s only at %s); use the filter table", b.t.Name, c.Name, b.t.Name, hookNames(evaluatedHooks[b.t.Name]))})
		}
	}
	order = append(order, users(b.t)...)
	for _, c := range order {
		cc := &ChainCounters{Family: b.fam, Table: b.t.Name, Chain: c}
		counters = append(counters, cc)
		starts[c.Name] = len(b.rules)
		if c.Builtin {
			tbl.BuiltinChains[gvisorHooks[c.Hook]] = len(b.rules)
			if m := b.s.gsoMark.Load(); m != nil && b.t.Name == "mangle" && c.Hook == rules.Postrouting {
				// First, so that no rule's verdict can skip it; it
				// never matches. Its counters are not shown.
				b.rules = append(b.rules, stack.Rule{Filter: b.emptyFilter(), Matchers: []stack.Matcher{m}, Target: &continueTarget{next: len(b.rules) + 1}})
			}
		}
		for _, r := range c.Rules {
			cnt := &RuleCounter{}
			cc.Rules = append(cc.Rules, cnt)
			sr, jump := b.rule(r, cnt, len(b.rules))
			if jump != "" {
				jumps = append(jumps, pendingJump{len(b.rules), jump})
			}
			b.rules = append(b.rules, sr)
		}
		if c.Builtin {
			if b.t.Name == "nat" && (c.Hook == rules.Postrouting || c.Hook == rules.Input) {
				b.rules = append(b.rules, stack.Rule{Filter: b.emptyFilter(), Matchers: []stack.Matcher{port0Matcher{}}, Target: port0NoopTarget{}})
			}
			cc.Policy = &RuleCounter{}
			var v stack.Target = &stack.AcceptTarget{NetworkProtocol: b.netProto()}
			if c.Policy == rules.Drop {
				v = &stack.DropTarget{NetworkProtocol: b.netProto()}
			}
			tbl.Underflows[gvisorHooks[c.Hook]] = len(b.rules)
			b.rules = append(b.rules, stack.Rule{Filter: b.emptyFilter(), Target: &countingTarget{inner: v, c: cc.Policy}})
		} else {
			b.rules = append(b.rules, stack.Rule{Filter: b.emptyFilter(), Target: &stack.ReturnTarget{NetworkProtocol: b.netProto()}})
		}
	}
	// A hook gVisor consults must lead somewhere, even if the rule set left
	// its chain out.
	for _, h := range evaluatedHooks[b.t.Name] {
		if gh := gvisorHooks[h]; tbl.BuiltinChains[gh] == stack.HookUnset {
			tbl.BuiltinChains[gh], tbl.Underflows[gh] = len(b.rules), len(b.rules)
			b.rules = append(b.rules, stack.Rule{Filter: b.emptyFilter(), Target: &stack.AcceptTarget{NetworkProtocol: b.netProto()}})
		}
	}
	b.rules = append(b.rules, stack.Rule{Filter: b.emptyFilter(), Target: &stack.ErrorTarget{NetworkProtocol: b.netProto()}})
	for _, j := range jumps {
		ct := b.rules[j.rule].Target.(*countingTarget)
		ct.inner.(*jumpTarget).to = starts[j.chain]
	}
	if len(b.errs) > 0 {
		return stack.Table{}, nil, b.errs
	}
	tbl.Rules = b.rules
	return tbl, counters, nil
}

// emptyTable is a table with its built-in chains and no rules.
func emptyTable(fam rules.Family, name string) *rules.Table {
	rs := &rules.Ruleset{}
	rs.AddFile("nfpipe", []byte("*"+name+"\nCOMMIT\n"), rules.ParseOptions{Family: fam})
	return rs.Table(fam, name)
}

func hookNames(hs []rules.Hook) string {
	var out []string
	for _, h := range hs {
		out = append(out, strings.ToUpper(h.String()))
	}
	return strings.Join(out, ", ")
}

func builtins(t *rules.Table) []*rules.Chain {
	var out []*rules.Chain
	for _, c := range t.Chains {
		if c.Builtin {
			out = append(out, c)
		}
	}
	return out
}

func users(t *rules.Table) []*rules.Chain {
	var out []*rules.Chain
	for _, c := range t.Chains {
		if !c.Builtin {
			out = append(out, c)
		}
	}
	return out
}

func (b *tableBuilder) fail(r *rules.Rule, tok, format string, args ...any) {
	b.errs = append(b.errs, &rules.Error{Pos: r.Pos, Token: tok, Msg: fmt.Sprintf(format, args...)})
}

// rule translates one rule; it returns the name of the chain it jumps to.
func (b *tableBuilder) rule(r *rules.Rule, cnt *RuleCounter, idx int) (stack.Rule, string) {
	f := b.emptyFilter()
	var ms []stack.Matcher
	if r.Proto.Num != 0 {
		// gVisor parses IPv6 next headers 253 and 254 (RFC 3692
		// experiments) as extension headers and never sees them as the
		// protocol; Linux does, so match the fixed header's next header.
		experimental := b.fam == rules.IPv6 && r.Proto.Num >= 253
		if r.Proto.Invert || experimental {
			ms = append(ms, &protoMatcher{num: r.Proto.Num, invert: r.Proto.Invert})
		} else {
			f.Protocol, f.CheckProtocol = tcpip.TransportProtocolNumber(r.Proto.Num), true
		}
	}
	if r.Src.Set() {
		f.Src, f.SrcMask = addrMask(r.Src.Prefix)
		f.SrcInvert = r.Src.Invert
	}
	if r.Dst.Set() {
		f.Dst, f.DstMask = addrMask(r.Dst.Prefix)
		f.DstInvert = r.Dst.Invert
	}
	if r.In.Name != "" {
		// gVisor matches a trailing '+' as a prefix itself.
		f.InputInterface, f.InputInterfaceInvert = r.In.Name, r.In.Invert
	}
	if r.Out.Name != "" {
		f.OutputInterface, f.OutputInterfaceInvert = r.Out.Name, r.Out.Invert
	}
	for _, m := range r.Matches {
		if sm := b.matcher(r, m); sm != nil {
			ms = append(ms, sm)
		}
	}
	t, jump := b.target(r, idx)
	return stack.Rule{Filter: f, Matchers: ms, Target: &countingTarget{inner: t, c: cnt}}, jump
}

func addrMask(p netip.Prefix) (addr, mask tcpip.Address) {
	p = p.Masked()
	bits := make([]byte, p.Addr().BitLen()/8)
	for i := 0; i < p.Bits(); i++ {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	return tcpipAddr(p.Addr()), tcpip.AddrFromSlice(bits)
}

func (b *tableBuilder) matcher(r *rules.Rule, m rules.Match) stack.Matcher {
	switch m := m.(type) {
	case *rules.TCP:
		return &portMatcher{proto: header.TCPProtocolNumber, src: m.Src, dst: m.Dst, flags: m.Flags}
	case *rules.UDP:
		return &portMatcher{proto: header.UDPProtocolNumber, src: m.Src, dst: m.Dst}
	case *rules.Multiport:
		return &multiportMatcher{m: *m}
	case *rules.ICMPType:
		return &icmpMatcher{m: *m}
	case *rules.State:
		return &stateMatcher{m: *m}
	case *rules.Comment:
		return nil
	case *rules.IPRange:
		return &iprangeMatcher{m: *m}
	case *rules.Length:
		return &lengthMatcher{m: *m}
	case *rules.Limit:
		return newLimitMatcher(*m)
	case *rules.Statistic:
		return &statisticMatcher{m: *m}
	case *rules.MAC:
		return &macMatcher{m: *m}
	case *rules.Mark:
		return &markMatcher{m: *m}
	}
	b.fail(r, m.Module(), "match -m %s is not supported by nfpipe's stack yet", m.Module())
	return nil
}

func (b *tableBuilder) target(r *rules.Rule, idx int) (stack.Target, string) {
	np := b.netProto()
	switch t := r.Target.(type) {
	case nil:
		return &continueTarget{next: idx + 1}, ""
	case rules.Verdict:
		switch t {
		case rules.Accept:
			return &stack.AcceptTarget{NetworkProtocol: np}, ""
		case rules.Drop:
			return &stack.DropTarget{NetworkProtocol: np}, ""
		case rules.Return:
			return &stack.ReturnTarget{NetworkProtocol: np}, ""
		}
	case *rules.Jump:
		if t.Goto {
			b.fail(r, "-g", "goto (-g) is not supported by nfpipe's stack yet; use -j")
			return &stack.DropTarget{NetworkProtocol: np}, ""
		}
		return &jumpTarget{}, t.Chain
	case *rules.Reject:
		return &undoDNATTarget{inner: b.reject(r, t)}, ""
	case *rules.Log:
		return &logTarget{prefix: t.Prefix, log: b.s.log, next: idx + 1}, ""
	case *rules.SetMark:
		return &markTarget{value: t.Value, mask: t.Mask, next: idx + 1}, ""
	case *rules.NAT:
		return b.nat(r, t), ""
	}
	b.fail(r, r.Target.Name(), "target %s is not supported by nfpipe's stack yet", r.Target.Name())
	return &stack.DropTarget{NetworkProtocol: np}, ""
}

func (b *tableBuilder) reject(r *rules.Rule, t *rules.Reject) stack.Target {
	if b.fam == rules.IPv6 {
		h, _ := b.s.s.NetworkProtocolInstance(header.IPv6ProtocolNumber).(stack.RejectIPv6WithHandler)
		with := map[rules.RejectWith]stack.RejectIPv6WithICMPType{
			rules.ICMP6NoRoute: stack.RejectIPv6WithICMPNoRoute, rules.ICMP6AdmProhibited: stack.RejectIPv6WithICMPAdminProhibited,
			rules.ICMP6AddrUnreachable: stack.RejectIPv6WithICMPAddrUnreachable, rules.ICMP6PortUnreachable: stack.RejectIPv6WithICMPPortUnreachable,
			rules.TCPReset: stack.RejectIPv6WithTCPReset, 0: stack.RejectIPv6WithICMPPortUnreachable,
		}[t.With]
		if with == 0 || h == nil {
			b.fail(r, "--reject-with", "this --reject-with is not supported by nfpipe's IPv6 stack")
		}
		return &stack.RejectIPv6Target{Handler: h, RejectWith: with}
	}
	h, _ := b.s.s.NetworkProtocolInstance(header.IPv4ProtocolNumber).(stack.RejectIPv4WithHandler)
	with := map[rules.RejectWith]stack.RejectIPv4WithICMPType{
		rules.ICMPNetUnreachable: stack.RejectIPv4WithICMPNetUnreachable, rules.ICMPHostUnreachable: stack.RejectIPv4WithICMPHostUnreachable,
		rules.ICMPPortUnreachable: stack.RejectIPv4WithICMPPortUnreachable, rules.ICMPNetProhibited: stack.RejectIPv4WithICMPNetProhibited,
		rules.ICMPHostProhibited: stack.RejectIPv4WithICMPHostProhibited, rules.ICMPAdminProhibited: stack.RejectIPv4WithICMPAdminProhibited,
		rules.TCPReset: stack.RejectIPv4WithTCPReset, 0: stack.RejectIPv4WithICMPPortUnreachable,
	}[t.With]
	if with == 0 || h == nil {
		b.fail(r, "--reject-with", "this --reject-with is not supported by nfpipe's IPv4 stack (gVisor has no proto-unreachable)")
	}
	return &stack.RejectIPv4Target{Handler: h, RejectWith: with}
}

func (b *tableBuilder) nat(_ *rules.Rule, t *rules.NAT) stack.Target {
	return &natTarget{kind: t.Kind, min: t.Range.MinAddr, max: t.Range.MaxAddr, ports: t.Range.Ports}
}

// undoDNATTarget restores a packet's original destination before the
// REJECT target answers it, so that the TCP reset or ICMP error comes from
// the address and port the client sent to, as Linux's conntrack makes it
// (gVisor answers from the DNAT destination, which the client cannot match
// to its connection). The packet is dropped after REJECT anyway.
type undoDNATTarget struct{ inner stack.Target }

func (t *undoDNATTarget) Action(pkt *stack.PacketBuffer, h stack.Hook, r *stack.Route, ep stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	undoDNAT(pkt)
	return t.inner.Action(pkt, h, r, ep)
}

func undoDNAT(pkt *stack.PacketBuffer) {
	var info stack.ConnTrackInfo
	if pkt.IsReplyPacket() || !pkt.FillConnTrackInfo(stack.ConnTrackInfoOpts{}, &info) {
		return
	}
	nh, th := pkt.NetworkHeader().Slice(), pkt.TransportHeader().Slice()
	var cur tcpip.Address
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
		if len(nh) < header.IPv4MinimumSize {
			return
		}
		cur = header.IPv4(nh).DestinationAddress()
		if cur != info.DstAddr {
			header.IPv4(nh).SetDestinationAddressWithChecksumUpdate(info.DstAddr)
		}
	case header.IPv6ProtocolNumber:
		if len(nh) < header.IPv6MinimumSize {
			return
		}
		cur = header.IPv6(nh).DestinationAddress()
		if cur != info.DstAddr {
			header.IPv6(nh).SetDestinationAddress(info.DstAddr)
		}
	default:
		return
	}
	switch pkt.TransportProtocolNumber {
	case header.TCPProtocolNumber:
		if len(th) >= header.TCPMinimumSize {
			tcp := header.TCP(th)
			if cur != info.DstAddr {
				tcp.UpdateChecksumPseudoHeaderAddress(cur, info.DstAddr, true)
			}
			if tcp.DestinationPort() != info.DstPort {
				tcp.SetDestinationPortWithChecksumUpdate(info.DstPort)
			}
		}
	case header.UDPProtocolNumber:
		if len(th) >= header.UDPMinimumSize {
			udp := header.UDP(th)
			if cur != info.DstAddr && udp.Checksum() != 0 {
				udp.UpdateChecksumPseudoHeaderAddress(cur, info.DstAddr, true)
			}
			switch {
			case udp.DestinationPort() == info.DstPort:
			case udp.Checksum() == 0: // IPv4 without a checksum
				udp.SetDestinationPort(info.DstPort)
			default:
				udp.SetDestinationPortWithChecksumUpdate(info.DstPort)
			}
		}
	}
}

// countingTarget counts the packets that reach a rule's target.
type countingTarget struct {
	inner stack.Target
	c     *RuleCounter
}

func (t *countingTarget) Action(pkt *stack.PacketBuffer, h stack.Hook, r *stack.Route, ep stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	t.c.add(pkt)
	return t.inner.Action(pkt, h, r, ep)
}

// continueTarget is a rule without a target: it counts and moves on.
type continueTarget struct{ next int }

func (t *continueTarget) Action(*stack.PacketBuffer, stack.Hook, *stack.Route, stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	return stack.RuleJump, t.next
}

// jumpTarget calls a user chain; gVisor returns here when it returns.
type jumpTarget struct{ to int }

func (t *jumpTarget) Action(*stack.PacketBuffer, stack.Hook, *stack.Route, stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	return stack.RuleJump, t.to
}

// logTarget logs the packet to the function's log and continues.
type logTarget struct {
	prefix string
	log    *slog.Logger
	next   int
}

func (t *logTarget) Action(pkt *stack.PacketBuffer, h stack.Hook, _ *stack.Route, _ stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	src, dst, proto := packetAddrs(pkt)
	t.log.Info("iptables LOG", "prefix", t.prefix, "hook", fmt.Sprint(h), "src", src, "dst", dst, "proto", proto, "len", pkt.Size())
	return stack.RuleJump, t.next // LOG does not decide: on to the next rule
}

// markTarget sets the packet mark (iptables' --set-xmark semantics).
type markTarget struct {
	value, mask uint32
	next        int
}

func (t *markTarget) Action(pkt *stack.PacketBuffer, _ stack.Hook, _ *stack.Route, _ stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	pkt.Mark = (pkt.Mark &^ t.mask) ^ t.value
	return stack.RuleJump, t.next
}

func packetAddrs(pkt *stack.PacketBuffer) (src, dst netip.Addr, proto uint8) {
	nh := pkt.NetworkHeader().Slice()
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
		if len(nh) >= header.IPv4MinimumSize {
			h := header.IPv4(nh)
			return netipAddr(h.SourceAddress()), netipAddr(h.DestinationAddress()), h.Protocol()
		}
	case header.IPv6ProtocolNumber:
		if len(nh) >= header.IPv6MinimumSize {
			h := header.IPv6(nh)
			return netipAddr(h.SourceAddress()), netipAddr(h.DestinationAddress()), uint8(h.TransportProtocol())
		}
	}
	return netip.Addr{}, netip.Addr{}, 0
}

// transportProto returns the packet's transport protocol number.
func transportProto(pkt *stack.PacketBuffer) uint8 {
	_, _, p := packetAddrs(pkt)
	return p
}

type protoMatcher struct {
	num    uint8
	invert bool
}

func (m *protoMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	return (transportProto(pkt) == m.num) != m.invert, false
}

func inRange(p uint16, r rules.PortRange) bool { return p >= r.Min && p <= r.Max }

type portMatcher struct {
	proto    tcpip.TransportProtocolNumber
	src, dst *rules.PortMatch
	flags    *rules.TCPFlags
}

func (m *portMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	th := pkt.TransportHeader().Slice()
	var sp, dp uint16
	var flags uint8
	switch m.proto {
	case header.TCPProtocolNumber:
		if len(th) < header.TCPMinimumSize {
			return false, len(th) > 0 // a truncated header is dropped, as Linux does
		}
		h := header.TCP(th)
		sp, dp, flags = h.SourcePort(), h.DestinationPort(), uint8(h.Flags())
	default:
		if len(th) < header.UDPMinimumSize {
			return false, len(th) > 0
		}
		h := header.UDP(th)
		sp, dp = h.SourcePort(), h.DestinationPort()
	}
	if m.src != nil && inRange(sp, m.src.Range) == m.src.Invert {
		return false, false
	}
	if m.dst != nil && inRange(dp, m.dst.Range) == m.dst.Invert {
		return false, false
	}
	if f := m.flags; f != nil && ((flags&f.Mask) == f.Comp) == f.Invert {
		return false, false
	}
	return true, false
}

type multiportMatcher struct{ m rules.Multiport }

func (m *multiportMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	th := pkt.TransportHeader().Slice()
	if len(th) < 4 {
		return false, false
	}
	sp, dp := uint16(th[0])<<8|uint16(th[1]), uint16(th[2])<<8|uint16(th[3])
	hit := false
	for _, r := range m.m.Ports {
		switch m.m.Dir {
		case rules.SourcePorts:
			hit = hit || inRange(sp, r)
		case rules.DestinationPorts:
			hit = hit || inRange(dp, r)
		default:
			hit = hit || inRange(sp, r) || inRange(dp, r)
		}
	}
	return hit != m.m.Invert, false
}

type icmpMatcher struct{ m rules.ICMPType }

func (m *icmpMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	th := pkt.TransportHeader().Slice()
	if len(th) < 2 {
		return false, false
	}
	if m.m.Any() {
		return !m.m.Invert, false
	}
	hit := th[0] == m.m.Type && th[1] >= m.m.CodeMin && th[1] <= m.m.CodeMax
	return hit != m.m.Invert, false
}

type stateMatcher struct{ m rules.State }

func (m *stateMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	return (m.m.States&ctState(pkt) != 0) != m.m.Invert, false
}

// ctState is the packet's connection-tracking state as Linux names it.
// gVisor knows NEW, ESTABLISHED and INVALID; an ICMP error that gVisor
// matched to a connection is RELATED, a reply is ESTABLISHED (gVisor says
// NEW until the TCP handshake completes), and packets gVisor cannot track
// are INVALID, except NDP/MLD (UNTRACKED, as in Linux) and protocols
// without a tracker (NEW, like Linux's generic tracker).
func ctState(pkt *stack.PacketBuffer) rules.States {
	var info stack.ConnTrackInfo
	if !pkt.FillConnTrackInfo(stack.ConnTrackInfoOpts{FillState: true}, &info) {
		switch proto := transportProto(pkt); proto {
		case uint8(header.TCPProtocolNumber), uint8(header.UDPProtocolNumber), uint8(header.ICMPv4ProtocolNumber):
			return rules.StateInvalid
		case uint8(header.ICMPv6ProtocolNumber):
			if th := pkt.TransportHeader().Slice(); len(th) > 0 && (th[0] >= 130 && th[0] <= 137 || th[0] == 143) {
				return rules.StateUntracked
			}
			return rules.StateInvalid
		}
		return rules.StateNew
	}
	switch {
	case isICMPError(pkt):
		return rules.StateRelated
	case info.State == stack.ConnTrackStateInvalid:
		return rules.StateInvalid
	case pkt.IsReplyPacket():
		return rules.StateEstablished
	case info.State == stack.ConnTrackStateNew:
		if !validNewTCP(pkt) {
			return rules.StateInvalid
		}
		return rules.StateNew
	}
	return rules.StateEstablished
}

// validNewTCP reports whether a packet of a connection nothing has answered
// yet may be one: Linux's TCP tracker starts a connection only with a SYN,
// or (nf_conntrack_tcp_loose) a mid-stream ACK; a SYN-ACK, RST, FIN or
// flagless segment without a connection is INVALID. gVisor tracks them all
// as NEW.
func validNewTCP(pkt *stack.PacketBuffer) bool {
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return true
	}
	th := pkt.TransportHeader().Slice()
	if len(th) < header.TCPMinimumSize {
		return false
	}
	f := header.TCP(th).Flags()
	switch {
	case f.Contains(header.TCPFlagRst):
		return false
	case f.Contains(header.TCPFlagSyn):
		return !f.Contains(header.TCPFlagAck)
	case f.Contains(header.TCPFlagFin):
		return false
	}
	return f.Contains(header.TCPFlagAck)
}

// isICMPError reports whether pkt is an ICMP or ICMPv6 error message.
func isICMPError(pkt *stack.PacketBuffer) bool {
	th := pkt.TransportHeader().Slice()
	if len(th) == 0 {
		return false
	}
	switch transportProto(pkt) {
	case uint8(header.ICMPv4ProtocolNumber):
		t := header.ICMPv4Type(th[0])
		return t == header.ICMPv4DstUnreachable || t == header.ICMPv4TimeExceeded || t == header.ICMPv4ParamProblem || t == header.ICMPv4SrcQuench || t == header.ICMPv4Redirect
	case uint8(header.ICMPv6ProtocolNumber):
		return th[0] < 128 // ICMPv6 errors are types 0-127
	}
	return false
}

type iprangeMatcher struct{ m rules.IPRange }

func (m *iprangeMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	src, dst, _ := packetAddrs(pkt)
	check := func(r *rules.AddrRange, a netip.Addr) bool {
		if r == nil {
			return true
		}
		in := a.IsValid() && a.Compare(r.Min) >= 0 && a.Compare(r.Max) <= 0
		return in != r.Invert
	}
	return check(m.m.Src, src) && check(m.m.Dst, dst), false
}

type lengthMatcher struct{ m rules.Length }

func (m *lengthMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	n := pkt.Size() - len(pkt.LinkHeader().Slice())
	in := n >= int(m.m.Min) && n <= int(m.m.Max)
	return in != m.m.Invert, false
}

type macMatcher struct{ m rules.MAC }

func (m *macMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	lh := pkt.LinkHeader().Slice()
	if len(lh) < header.EthernetMinimumSize {
		return false, false
	}
	src := header.Ethernet(lh).SourceAddress()
	return (src == tcpip.LinkAddress(m.m.Addr[:])) != m.m.Invert, false
}

type markMatcher struct{ m rules.Mark }

func (m *markMatcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	return ((pkt.Mark & m.m.Mask) == m.m.Value) != m.m.Invert, false
}

type statisticMatcher struct {
	m rules.Statistic
	n atomic.Uint32
}

func (m *statisticMatcher) Match(_ stack.Hook, _ *stack.PacketBuffer, _, _ string) (bool, bool) {
	var hit bool
	if m.m.Mode == rules.StatRandom {
		hit = rand.Float64() < m.m.Probability
	} else {
		hit = (m.n.Add(1)-1)%m.m.Every == m.m.Packet
	}
	return hit != m.m.Invert, false
}

// limitMatcher is a token bucket, like xt_limit.
type limitMatcher struct {
	mu     sync.Mutex
	every  time.Duration
	burst  float64
	tokens float64
	last   time.Time
}

func newLimitMatcher(l rules.Limit) *limitMatcher {
	return &limitMatcher{every: l.Per / time.Duration(l.Rate), burst: float64(l.Burst), tokens: float64(l.Burst)}
}

func (m *limitMatcher) Match(_ stack.Hook, _ *stack.PacketBuffer, _, _ string) (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !m.last.IsZero() {
		m.tokens = min(m.burst, m.tokens+float64(now.Sub(m.last))/float64(m.every))
	}
	m.last = now
	if m.tokens >= 1 {
		m.tokens--
		return true, false
	}
	return false, false
}
