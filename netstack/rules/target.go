package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// Target is what a rule does with a matching packet ("-j NAME options").
// The set of implementations is closed: Verdict, *Jump, *Reject, *Log, *NAT
// and *SetMark. A rule without a target has Target nil.
type Target interface {
	// Name returns the name after -j (or -g), e.g. "ACCEPT" or a chain.
	Name() string
	// appendOptions appends the target's options in iptables-save form,
	// each preceded by a space.
	appendOptions(b *strings.Builder)
}

// Interface guards.
var (
	_ Target = Verdict(0)
	_ Target = (*Jump)(nil)
	_ Target = (*Reject)(nil)
	_ Target = (*Log)(nil)
	_ Target = (*NAT)(nil)
	_ Target = (*SetMark)(nil)
)

// Verdict is a built-in verdict; it is also the policy of a chain.
type Verdict int

// Verdicts.
const (
	Accept Verdict = iota + 1
	Drop
	Return
)

// Name implements Target.
func (v Verdict) Name() string {
	switch v {
	case Accept:
		return "ACCEPT"
	case Drop:
		return "DROP"
	case Return:
		return "RETURN"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// String returns the verdict's name, e.g. "ACCEPT".
func (v Verdict) String() string { return v.Name() }

func (Verdict) appendOptions(*strings.Builder) {}

// Jump continues in a user chain: -j CHAIN comes back after it, -g CHAIN
// (Goto) does not.
type Jump struct {
	Chain string
	Goto  bool
}

// Name implements Target.
func (j *Jump) Name() string { return j.Chain }

func (*Jump) appendOptions(*strings.Builder) {}

// RejectWith is the reply a REJECT target sends.
type RejectWith int

// REJECT replies. The ICMP ones belong to IPv4, the ICMP6 ones to IPv6;
// TCPReset (a TCP RST) to both.
const (
	ICMPNetUnreachable RejectWith = iota + 1
	ICMPHostUnreachable
	ICMPProtoUnreachable
	ICMPPortUnreachable
	ICMPNetProhibited
	ICMPHostProhibited
	ICMPAdminProhibited
	ICMP6NoRoute
	ICMP6AdmProhibited
	ICMP6AddrUnreachable
	ICMP6PortUnreachable
	TCPReset
)

// rejectNames holds iptables' name and short alias of each reply, and its
// families.
var rejectNames = map[RejectWith]struct {
	name, alias string
	fam         famMask
}{
	ICMPNetUnreachable:   {"icmp-net-unreachable", "net-unreach", maskV4},
	ICMPHostUnreachable:  {"icmp-host-unreachable", "host-unreach", maskV4},
	ICMPProtoUnreachable: {"icmp-proto-unreachable", "proto-unreach", maskV4},
	ICMPPortUnreachable:  {"icmp-port-unreachable", "port-unreach", maskV4},
	ICMPNetProhibited:    {"icmp-net-prohibited", "net-prohib", maskV4},
	ICMPHostProhibited:   {"icmp-host-prohibited", "host-prohib", maskV4},
	ICMPAdminProhibited:  {"icmp-admin-prohibited", "admin-prohib", maskV4},
	ICMP6NoRoute:         {"icmp6-no-route", "no-route", maskV6},
	ICMP6AdmProhibited:   {"icmp6-adm-prohibited", "adm-prohibited", maskV6},
	ICMP6AddrUnreachable: {"icmp6-addr-unreachable", "addr-unreach", maskV6},
	ICMP6PortUnreachable: {"icmp6-port-unreachable", "port-unreach", maskV6},
	TCPReset:             {"tcp-reset", "tcp-rst", maskBoth},
}

// String returns iptables' name for the reply, e.g. "icmp-port-unreachable".
func (w RejectWith) String() string {
	if n, ok := rejectNames[w]; ok {
		return n.name
	}
	return fmt.Sprintf("RejectWith(%d)", int(w))
}

// Reject drops the packet and answers it.
type Reject struct{ With RejectWith }

// Name implements Target.
func (*Reject) Name() string { return "REJECT" }

func (t *Reject) appendOptions(b *strings.Builder) {
	b.WriteString(" --reject-with " + t.With.String())
}

// Log logs the packet (with Prefix, at syslog Level 0-7) and goes on.
type Log struct {
	Prefix string
	Level  uint8
}

// defaultLogLevel is LOG's default: warning.
const defaultLogLevel = 4

// Name implements Target.
func (*Log) Name() string { return "LOG" }

func (t *Log) appendOptions(b *strings.Builder) {
	if t.Prefix != "" {
		b.WriteString(" --log-prefix " + saveQuote(t.Prefix))
	}
	if t.Level != defaultLogLevel {
		fmt.Fprintf(b, " --log-level %d", t.Level)
	}
}

// NATKind says which NAT target a NAT is.
type NATKind int

// NAT targets.
const (
	SNAT       NATKind = iota + 1 // rewrite the source to Range
	DNAT                          // rewrite the destination to Range
	Masquerade                    // SNAT to the outgoing interface's address
	Redirect                      // DNAT to the host itself
)

var natNames = map[NATKind]string{SNAT: "SNAT", DNAT: "DNAT", Masquerade: "MASQUERADE", Redirect: "REDIRECT"}

// String returns the target's name, e.g. "MASQUERADE".
func (k NATKind) String() string { return natNames[k] }

// NATRange is where a NAT target maps to. MinAddr and MaxAddr are invalid
// when only ports are mapped (always so for MASQUERADE and REDIRECT); Ports
// is nil when ports are kept.
type NATRange struct {
	MinAddr, MaxAddr netip.Addr
	Ports            *PortRange
}

// NAT is an SNAT, DNAT, MASQUERADE or REDIRECT target.
type NAT struct {
	Kind  NATKind
	Range NATRange
	// Random randomises the port mapping (--random).
	Random bool
}

// Name implements Target.
func (t *NAT) Name() string { return t.Kind.String() }

func (t *NAT) appendOptions(b *strings.Builder) {
	r := t.Range
	switch t.Kind {
	case SNAT, DNAT:
		opt := " --to-source "
		if t.Kind == DNAT {
			opt = " --to-destination "
		}
		var s strings.Builder
		if r.MinAddr.IsValid() {
			brackets := r.MinAddr.Is6() && r.Ports != nil
			if brackets {
				s.WriteString("[")
			}
			s.WriteString(r.MinAddr.String())
			if r.MaxAddr != r.MinAddr {
				s.WriteString("-" + r.MaxAddr.String())
			}
			if brackets {
				s.WriteString("]")
			}
		}
		if r.Ports != nil {
			s.WriteString(":" + r.Ports.format("-"))
		}
		if s.Len() > 0 {
			b.WriteString(opt + s.String())
		}
	case Masquerade, Redirect:
		if r.Ports != nil {
			b.WriteString(" --to-ports " + r.Ports.format("-"))
		}
	}
	if t.Random {
		b.WriteString(" --random")
	}
}

// SetMark is the MARK target in its general form: the new mark is
// (mark AND NOT Mask) XOR Value. --set-mark, --and-mark, --or-mark and
// --xor-mark are normalised to it, as iptables-save does (--set-xmark).
type SetMark struct{ Value, Mask uint32 }

// Name implements Target.
func (*SetMark) Name() string { return "MARK" }

func (t *SetMark) appendOptions(b *strings.Builder) {
	fmt.Fprintf(b, " --set-xmark 0x%x/0x%x", t.Value, t.Mask)
}
