package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Match is one match module of a rule ("-m NAME options"). The set of
// implementations is closed: *TCP, *UDP, *Multiport, *State, *ICMPType,
// *Comment, *Limit, *Statistic, *IPRange, *MAC, *Length and *Mark.
type Match interface {
	// Module returns the name the match has after -m, e.g. "tcp".
	Module() string
	// appendOptions appends the match's options in iptables-save form,
	// each preceded by a space.
	appendOptions(b *strings.Builder)
}

// Interface guards.
var (
	_ Match = (*TCP)(nil)
	_ Match = (*UDP)(nil)
	_ Match = (*Multiport)(nil)
	_ Match = (*State)(nil)
	_ Match = (*ICMPType)(nil)
	_ Match = (*Comment)(nil)
	_ Match = (*Limit)(nil)
	_ Match = (*Statistic)(nil)
	_ Match = (*IPRange)(nil)
	_ Match = (*MAC)(nil)
	_ Match = (*Length)(nil)
	_ Match = (*Mark)(nil)
)

// PortRange is an inclusive range of ports; a single port has Min == Max.
type PortRange struct{ Min, Max uint16 }

// String returns "P" or "MIN:MAX", as iptables writes ports.
func (r PortRange) String() string { return r.format(":") }

func (r PortRange) format(sep string) string {
	if r.Min == r.Max {
		return strconv.Itoa(int(r.Min))
	}
	return strconv.Itoa(int(r.Min)) + sep + strconv.Itoa(int(r.Max))
}

// PortMatch matches ports in Range, or outside it when Invert is set.
type PortMatch struct {
	Range  PortRange
	Invert bool
}

// TCP flag bits, as in the TCP header.
const (
	FlagFIN uint8 = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	// FlagsAll is iptables' ALL: the six classic flags.
	FlagsAll = FlagFIN | FlagSYN | FlagRST | FlagPSH | FlagACK | FlagURG
)

// tcpFlagNames is iptables' flag table, in the order it prints flags.
var tcpFlagNames = []struct {
	name string
	bits uint8
}{
	{"FIN", FlagFIN}, {"SYN", FlagSYN}, {"RST", FlagRST}, {"PSH", FlagPSH},
	{"ACK", FlagACK}, {"URG", FlagURG}, {"ALL", FlagsAll}, {"NONE", 0},
}

// TCPFlags matches packets whose flags, masked with Mask, equal Comp
// ("--tcp-flags MASK COMP"; --syn is FIN,SYN,RST,ACK SYN).
type TCPFlags struct {
	Mask, Comp uint8
	Invert     bool
}

// TCP is the tcp match: -m tcp, or implied by -p tcp with --sport, --dport,
// --tcp-flags or --syn. Nil fields match everything.
type TCP struct {
	Src, Dst *PortMatch
	Flags    *TCPFlags
}

// Module implements Match.
func (*TCP) Module() string { return "tcp" }

func (m *TCP) appendOptions(b *strings.Builder) {
	appendPorts(b, m.Src, m.Dst)
	if f := m.Flags; f != nil {
		if f.Invert {
			b.WriteString(" !")
		}
		b.WriteString(" --tcp-flags " + formatTCPFlags(f.Mask) + " " + formatTCPFlags(f.Comp))
	}
}

func formatTCPFlags(bits uint8) string {
	var names []string
	for _, f := range tcpFlagNames[:6] {
		if bits&f.bits != 0 {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, ",")
}

// UDP is the udp match: -m udp, or implied by -p udp with --sport or --dport.
// Nil fields match everything.
type UDP struct {
	Src, Dst *PortMatch
}

// Module implements Match.
func (*UDP) Module() string { return "udp" }

func (m *UDP) appendOptions(b *strings.Builder) { appendPorts(b, m.Src, m.Dst) }

func appendPorts(b *strings.Builder, src, dst *PortMatch) {
	for _, p := range []struct {
		opt string
		m   *PortMatch
	}{{"--sport", src}, {"--dport", dst}} {
		if p.m == nil {
			continue
		}
		if p.m.Invert {
			b.WriteString(" !")
		}
		b.WriteString(" " + p.opt + " " + p.m.Range.String())
	}
}

// PortDir says which port a multiport match looks at.
type PortDir int

// Multiport directions.
const (
	SourcePorts      PortDir = iota // --sports
	DestinationPorts                // --dports
	EitherPort                      // --ports: source or destination
)

var portDirOpts = [...]string{"--sports", "--dports", "--ports"}

// Multiport is the multiport match: up to 15 ports or ranges (a range
// counts as two), any of which may match.
type Multiport struct {
	Dir    PortDir
	Ports  []PortRange
	Invert bool
}

// Module implements Match.
func (*Multiport) Module() string { return "multiport" }

func (m *Multiport) appendOptions(b *strings.Builder) {
	if m.Invert {
		b.WriteString(" !")
	}
	parts := make([]string, len(m.Ports))
	for i, p := range m.Ports {
		parts[i] = p.String()
	}
	b.WriteString(" " + portDirOpts[m.Dir] + " " + strings.Join(parts, ","))
}

// States is a set of connection-tracking states.
type States uint8

// Connection-tracking states, in the order iptables prints them.
const (
	StateInvalid States = 1 << iota
	StateNew
	StateRelated
	StateEstablished
	StateUntracked
)

var stateNames = []struct {
	name string
	bit  States
}{
	{"INVALID", StateInvalid}, {"NEW", StateNew}, {"RELATED", StateRelated},
	{"ESTABLISHED", StateEstablished}, {"UNTRACKED", StateUntracked},
}

// String returns the states as iptables lists them, e.g. "RELATED,ESTABLISHED".
func (s States) String() string {
	var names []string
	for _, n := range stateNames {
		if s&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// State matches the connection-tracking state: "-m conntrack --ctstate"
// (Conntrack set) or the older "-m state --state", which mean the same.
type State struct {
	Conntrack bool
	States    States
	Invert    bool
}

// Module implements Match.
func (m *State) Module() string {
	if m.Conntrack {
		return "conntrack"
	}
	return "state"
}

func (m *State) appendOptions(b *strings.Builder) {
	if m.Invert {
		b.WriteString(" !")
	}
	if m.Conntrack {
		b.WriteString(" --ctstate " + m.States.String())
	} else {
		b.WriteString(" --state " + m.States.String())
	}
}

// ICMPType is the icmp match (--icmp-type, IPv4) or the icmp6 match
// (--icmpv6-type, IPv6). It matches Type with a code in [CodeMin, CodeMax];
// for IPv4, Type 255 with codes 0-255 is iptables' "any".
type ICMPType struct {
	V6               bool
	Type             uint8
	CodeMin, CodeMax uint8
	Invert           bool
}

// Module implements Match.
func (m *ICMPType) Module() string {
	if m.V6 {
		return "icmp6"
	}
	return "icmp"
}

// Any reports whether the match is IPv4's "any" type.
func (m *ICMPType) Any() bool { return !m.V6 && m.Type == 255 && m.CodeMin == 0 && m.CodeMax == 255 }

func (m *ICMPType) appendOptions(b *strings.Builder) {
	if m.Invert {
		b.WriteString(" !")
	}
	opt := " --icmp-type "
	if m.V6 {
		opt = " --icmpv6-type "
	}
	switch {
	case m.Any():
		b.WriteString(opt + "any")
	case m.CodeMin == 0 && m.CodeMax == 255:
		b.WriteString(opt + strconv.Itoa(int(m.Type)))
	default:
		// iptables can only express a single code or all of them; the
		// parser never produces anything else.
		b.WriteString(fmt.Sprintf("%s%d/%d", opt, m.Type, m.CodeMin))
	}
}

// Comment is the comment match: it always matches and carries a note of at
// most 255 bytes.
type Comment struct{ Text string }

// Module implements Match.
func (*Comment) Module() string { return "comment" }

func (m *Comment) appendOptions(b *strings.Builder) {
	b.WriteString(" --comment " + saveQuote(m.Text))
}

// Limit is the limit match: a token bucket that lets Rate packets per Per
// through on average, with bursts of up to Burst packets.
type Limit struct {
	Rate  uint32
	Per   time.Duration // time.Second, time.Minute, time.Hour or 24 * time.Hour
	Burst uint32
}

// Module implements Match.
func (*Limit) Module() string { return "limit" }

func (m *Limit) appendOptions(b *strings.Builder) {
	fmt.Fprintf(b, " --limit %d/%s", m.Rate, limitUnit(m.Per))
	if m.Burst != defaultBurst {
		fmt.Fprintf(b, " --limit-burst %d", m.Burst)
	}
}

// limitUnit returns the unit iptables-save writes for a limit's period.
func limitUnit(per time.Duration) string {
	switch per {
	case time.Minute:
		return "min"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return "sec"
}

// defaultBurst is iptables' default --limit-burst.
const defaultBurst = 5

// StatMode is the mode of a statistic match.
type StatMode int

// Statistic modes.
const (
	StatRandom StatMode = iota // match with a probability
	StatNth                    // match one packet in every N
)

// Statistic is the statistic match. In random mode it matches with
// Probability (kept at the kernel's resolution of 2^-31); in nth mode it
// matches packet number Packet (counting from 0) of every Every packets.
// Invert negates the match.
type Statistic struct {
	Mode          StatMode
	Probability   float64
	Every, Packet uint32
	Invert        bool
}

// Module implements Match.
func (*Statistic) Module() string { return "statistic" }

func (m *Statistic) appendOptions(b *strings.Builder) {
	inv := ""
	if m.Invert {
		inv = " !"
	}
	if m.Mode == StatRandom {
		fmt.Fprintf(b, " --mode random%s --probability %.11f", inv, m.Probability)
		return
	}
	fmt.Fprintf(b, " --mode nth%s --every %d --packet %d", inv, m.Every, m.Packet)
}

// AddrRange is an inclusive range of addresses of one family, or everything
// outside it when Invert is set.
type AddrRange struct {
	Min, Max netip.Addr
	Invert   bool
}

// IPRange is the iprange match. Nil fields match everything.
type IPRange struct {
	Src, Dst *AddrRange
}

// Module implements Match.
func (*IPRange) Module() string { return "iprange" }

func (m *IPRange) appendOptions(b *strings.Builder) {
	for _, r := range []struct {
		opt string
		r   *AddrRange
	}{{"--src-range", m.Src}, {"--dst-range", m.Dst}} {
		if r.r == nil {
			continue
		}
		if r.r.Invert {
			b.WriteString(" !")
		}
		b.WriteString(" " + r.opt + " " + r.r.Min.String() + "-" + r.r.Max.String())
	}
}

// MAC is the mac match on the source Ethernet address. Linux allows it only
// where packets arrive: PREROUTING, INPUT and FORWARD.
type MAC struct {
	Addr   [6]byte
	Invert bool
}

// Module implements Match.
func (*MAC) Module() string { return "mac" }

func (m *MAC) appendOptions(b *strings.Builder) {
	if m.Invert {
		b.WriteString(" !")
	}
	a := m.Addr
	fmt.Fprintf(b, " --mac-source %02X:%02X:%02X:%02X:%02X:%02X", a[0], a[1], a[2], a[3], a[4], a[5])
}

// Length is the length match on the IP packet length (header included).
type Length struct {
	Min, Max uint16
	Invert   bool
}

// Module implements Match.
func (*Length) Module() string { return "length" }

func (m *Length) appendOptions(b *strings.Builder) {
	if m.Invert {
		b.WriteString(" !")
	}
	b.WriteString(" --length " + PortRange{m.Min, m.Max}.String())
}

// Mark is the mark match: the packet mark ANDed with Mask equals Value.
type Mark struct {
	Value, Mask uint32
	Invert      bool
}

// Module implements Match.
func (*Mark) Module() string { return "mark" }

func (m *Mark) appendOptions(b *strings.Builder) {
	if m.Invert {
		b.WriteString(" !")
	}
	fmt.Fprintf(b, " --mark 0x%x", m.Value)
	if m.Mask != 0xffffffff {
		fmt.Fprintf(b, "/0x%x", m.Mask)
	}
}
