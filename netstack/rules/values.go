package rules

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nfpipe/nfpipe/internal/suggest"
)

// famMask is a set of families a rule may belong to.
type famMask uint8

const (
	maskV4   famMask = 1 << iota // IPv4
	maskV6                       // IPv6
	maskBoth = maskV4 | maskV6
)

func maskOf(f Family) famMask {
	switch f {
	case IPv4:
		return maskV4
	case IPv6:
		return maskV6
	}
	return maskBoth
}

// families lists the families in the mask, IPv4 first.
func (m famMask) families() []Family {
	var fs []Family
	if m&maskV4 != 0 {
		fs = append(fs, IPv4)
	}
	if m&maskV6 != 0 {
		fs = append(fs, IPv6)
	}
	return fs
}

func addrMask(a netip.Addr) famMask {
	if a.Is4() {
		return maskV4
	}
	return maskV6
}

func famName(m famMask) string {
	if m == maskV6 {
		return "IPv6"
	}
	return "IPv4"
}

// parseNum parses an unsigned number the way iptables does (C's strtoul
// with base 0): "0x" starts hexadecimal, a leading "0" octal, anything else
// is decimal. The whole string must be the number, at most max.
func parseNum(s string, max uint64) (uint64, bool) {
	base, digits := 10, s
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	if digits == "" || strings.ContainsAny(digits, "_+-") {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

// errReversed reports a range whose first value is greater than its second.
func errReversed(s string) error {
	return fmt.Errorf("range %q is reversed (the first value is greater than the second)", s)
}

// parsePort parses one port number (0-65535).
func parsePort(s string) (uint16, error) {
	if v, ok := parseNum(s, math.MaxUint16); ok {
		return uint16(v), nil
	}
	if s != "" && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return 0, fmt.Errorf("port %q: service names are not supported, use the number", s)
	}
	return 0, fmt.Errorf("port %q is not a number from 0 to 65535", s)
}

// parsePortRange parses "P", "A:B", ":B" (0 to B) or "A:" (A to 65535), as
// --sport, --dport and --length take them.
func parsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	if !isRange {
		p, err := parsePort(s)
		return PortRange{p, p}, err
	}
	r := PortRange{0, math.MaxUint16}
	var err error
	if lo != "" {
		if r.Min, err = parsePort(lo); err != nil {
			return r, err
		}
	}
	if hi != "" {
		if r.Max, err = parsePort(hi); err != nil {
			return r, err
		}
	}
	if r.Min > r.Max {
		return r, errReversed(s)
	}
	return r, nil
}

// maxMultiports is the kernel's limit on multiport entries; a range takes
// two of them.
const maxMultiports = 15

// parseMultiports parses multiport's "P,A:B,..." list.
func parseMultiports(s string) ([]PortRange, error) {
	var ports []PortRange
	used := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		p, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		r := PortRange{p, p}
		used++
		if isRange {
			if r.Max, err = parsePort(hi); err != nil {
				return nil, err
			}
			if r.Min >= r.Max {
				return nil, fmt.Errorf("port range %q: the first port must be below the second", part)
			}
			used++
		}
		if used > maxMultiports {
			return nil, fmt.Errorf("too many ports (at most %d; a range counts as two)", maxMultiports)
		}
		ports = append(ports, r)
	}
	return ports, nil
}

// parseAddr parses one IP address: no zones, no host names.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		if s != "" && strings.Trim(s, "0123456789.:abcdefABCDEF") != "" && !strings.Contains(s, "%") {
			return netip.Addr{}, fmt.Errorf("%q is not an IP address (host names are not supported)", s)
		}
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a, nil
}

// parsePrefix parses -s/-d's ADDR, ADDR/LEN or (IPv4) ADDR/DOTTED-MASK.
// The host bits are cleared, as iptables does.
func parsePrefix(s string) (netip.Prefix, error) {
	addr, mask, hasMask := strings.Cut(s, "/")
	a, err := parseAddr(addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := a.BitLen()
	if hasMask {
		if m, ok := parseNum(mask, uint64(a.BitLen())); ok {
			bits = int(m)
		} else if mk, err := netip.ParseAddr(mask); err == nil && a.Is4() && mk.Is4() {
			v := mk.As4()
			n := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
			ones := 0
			for ones < 32 && n&(1<<(31-ones)) != 0 {
				ones++
			}
			if ones < 32 && n<<ones != 0 {
				return netip.Prefix{}, fmt.Errorf("mask %q is not contiguous", mask)
			}
			bits = ones
		} else {
			return netip.Prefix{}, fmt.Errorf("mask %q is not a prefix length from 0 to %d", mask, a.BitLen())
		}
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// parseAddrRange parses iprange's "A-B" or "A".
func parseAddrRange(s string) (AddrRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := parseAddr(lo)
	if err != nil {
		return AddrRange{}, err
	}
	max := min
	if isRange {
		if max, err = parseAddr(hi); err != nil {
			return AddrRange{}, err
		}
	}
	if min.Is4() != max.Is4() {
		return AddrRange{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
	}
	if max.Less(min) {
		return AddrRange{}, errReversed(s)
	}
	return AddrRange{Min: min, Max: max}, nil
}

// parseNATPorts parses "P" or "P-Q" as NAT targets take them.
func parseNATPorts(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if strings.Contains(s, ":") {
		return PortRange{}, fmt.Errorf("write a port range as P-Q, not P:Q")
	}
	p, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	r := PortRange{p, p}
	if isRange {
		if r.Max, err = parsePort(hi); err != nil {
			return r, err
		}
		if r.Min > r.Max {
			return r, errReversed(s)
		}
	}
	return r, nil
}

// parseNATRange parses SNAT/DNAT's "[ADDR[-ADDR]][:PORT[-PORT]]", with IPv6
// addresses in brackets when ports follow ("[2001:db8::1]:80"), as
// iptables' parse_to does.
func parseNATRange(s string) (NATRange, error) {
	var r NATRange
	addrs, ports := s, ""
	hasPorts := false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return r, fmt.Errorf("missing \"]\"")
		}
		if !strings.Contains(s[:end], ":") {
			return r, fmt.Errorf("brackets are for IPv6 addresses: write %s", strings.Replace(strings.Replace(s, "[", "", 1), "]", "", 1))
		}
		addrs, ports = s[1:end], s[end+1:]
		if ports != "" {
			if ports[0] != ':' {
				return r, fmt.Errorf("want \":PORT\" after \"]\"")
			}
			ports, hasPorts = ports[1:], true
		}
	} else if strings.Count(s, ":") == 1 {
		addrs, ports, hasPorts = strings.Cut(s, ":")
	}
	if hasPorts {
		p, err := parseNATPorts(ports)
		if err != nil {
			return r, err
		}
		r.Ports = &p
	}
	if addrs == "" {
		if !hasPorts {
			return r, fmt.Errorf("empty range")
		}
		return r, nil
	}
	ar, err := parseAddrRange(addrs)
	if err != nil {
		return r, err
	}
	if ar.Min.Is6() && !strings.HasPrefix(s, "[") && hasPorts {
		return r, fmt.Errorf("put an IPv6 address in brackets before a port: [ADDR]:PORT")
	}
	r.MinAddr, r.MaxAddr = ar.Min, ar.Max
	return r, nil
}

// parseMarkMask parses "VALUE[/MASK]"; the mask defaults to all ones.
func parseMarkMask(s string) (value, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	n, ok := parseNum(v, math.MaxUint32)
	if !ok {
		return 0, 0, fmt.Errorf("%q is not a 32-bit number", v)
	}
	mask = math.MaxUint32
	if hasMask {
		k, ok := parseNum(m, math.MaxUint32)
		if !ok {
			return 0, 0, fmt.Errorf("mask %q is not a 32-bit number", m)
		}
		mask = uint32(k)
	}
	return uint32(n), mask, nil
}

// parseMAC parses "XX:XX:XX:XX:XX:XX".
func parseMAC(s string) ([6]byte, error) {
	var a [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return a, fmt.Errorf("%q is not a MAC address (want XX:XX:XX:XX:XX:XX)", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return a, fmt.Errorf("%q is not a MAC address (want XX:XX:XX:XX:XX:XX)", s)
		}
		a[i] = byte(v)
	}
	return a, nil
}

// icmpName is one named ICMP type, with its codes.
type icmpName struct {
	name             string
	typ              uint8
	codeMin, codeMax uint8
}

// icmpNames and icmpv6Names are iptables' tables (libxt_icmp.h), aliases
// included, in iptables' order.
var icmpNames = []icmpName{
	{"any", 255, 0, 255},
	{"echo-reply", 0, 0, 255}, {"pong", 0, 0, 255},
	{"destination-unreachable", 3, 0, 255},
	{"network-unreachable", 3, 0, 0}, {"host-unreachable", 3, 1, 1},
	{"protocol-unreachable", 3, 2, 2}, {"port-unreachable", 3, 3, 3},
	{"fragmentation-needed", 3, 4, 4}, {"source-route-failed", 3, 5, 5},
	{"network-unknown", 3, 6, 6}, {"host-unknown", 3, 7, 7},
	{"network-prohibited", 3, 9, 9}, {"host-prohibited", 3, 10, 10},
	{"TOS-network-unreachable", 3, 11, 11}, {"TOS-host-unreachable", 3, 12, 12},
	{"communication-prohibited", 3, 13, 13}, {"host-precedence-violation", 3, 14, 14},
	{"precedence-cutoff", 3, 15, 15},
	{"source-quench", 4, 0, 255},
	{"redirect", 5, 0, 255}, {"network-redirect", 5, 0, 0}, {"host-redirect", 5, 1, 1},
	{"TOS-network-redirect", 5, 2, 2}, {"TOS-host-redirect", 5, 3, 3},
	{"echo-request", 8, 0, 255}, {"ping", 8, 0, 255},
	{"router-advertisement", 9, 0, 255}, {"router-solicitation", 10, 0, 255},
	{"time-exceeded", 11, 0, 255}, {"ttl-exceeded", 11, 0, 255},
	{"ttl-zero-during-transit", 11, 0, 0}, {"ttl-zero-during-reassembly", 11, 1, 1},
	{"parameter-problem", 12, 0, 255}, {"ip-header-bad", 12, 0, 0}, {"required-option-missing", 12, 1, 1},
	{"timestamp-request", 13, 0, 255}, {"timestamp-reply", 14, 0, 255},
	{"address-mask-request", 17, 0, 255}, {"address-mask-reply", 18, 0, 255},
}

var icmpv6Names = []icmpName{
	{"destination-unreachable", 1, 0, 255},
	{"no-route", 1, 0, 0}, {"communication-prohibited", 1, 1, 1}, {"beyond-scope", 1, 2, 2},
	{"address-unreachable", 1, 3, 3}, {"port-unreachable", 1, 4, 4},
	{"failed-policy", 1, 5, 5}, {"reject-route", 1, 6, 6},
	{"packet-too-big", 2, 0, 255},
	{"time-exceeded", 3, 0, 255}, {"ttl-exceeded", 3, 0, 255},
	{"ttl-zero-during-transit", 3, 0, 0}, {"ttl-zero-during-reassembly", 3, 1, 1},
	{"parameter-problem", 4, 0, 255}, {"bad-header", 4, 0, 0},
	{"unknown-header-type", 4, 1, 1}, {"unknown-option", 4, 2, 2},
	{"echo-request", 128, 0, 255}, {"ping", 128, 0, 255},
	{"echo-reply", 129, 0, 255}, {"pong", 129, 0, 255},
	{"router-solicitation", 133, 0, 255}, {"router-advertisement", 134, 0, 255},
	{"neighbour-solicitation", 135, 0, 255}, {"neighbor-solicitation", 135, 0, 255},
	{"neighbour-advertisement", 136, 0, 255}, {"neighbor-advertisement", 136, 0, 255},
	{"redirect", 137, 0, 255},
}

// parseICMPType parses a type name (case-insensitive; an unambiguous prefix
// is accepted, as iptables does), "TYPE" or "TYPE/CODE".
func parseICMPType(s string, names []icmpName) (typ, codeMin, codeMax uint8, err error) {
	var found []icmpName
	for _, n := range names {
		if strings.EqualFold(n.name, s) {
			return n.typ, n.codeMin, n.codeMax, nil
		}
		if len(s) > 0 && len(s) < len(n.name) && strings.EqualFold(n.name[:len(s)], s) {
			found = append(found, n)
		}
	}
	if len(found) > 1 {
		return 0, 0, 0, fmt.Errorf("type %q is ambiguous: %q or %q?", s, found[0].name, found[1].name)
	}
	if len(found) == 1 {
		return found[0].typ, found[0].codeMin, found[0].codeMax, nil
	}
	t, c, hasCode := strings.Cut(s, "/")
	v, ok := parseNum(t, 255)
	if !ok {
		all := make([]string, len(names))
		for i, n := range names {
			all[i] = n.name
		}
		return 0, 0, 0, fmt.Errorf("unknown type %q%s", s, suggest.DidYouMean(s, all))
	}
	if !hasCode {
		return uint8(v), 0, 255, nil
	}
	k, ok := parseNum(c, 255)
	if !ok {
		return 0, 0, 0, fmt.Errorf("code %q is not a number from 0 to 255", c)
	}
	return uint8(v), uint8(k), uint8(k), nil
}

// parseLimitRate parses limit's "N", "N/second", "N/minute", "N/hour" or
// "N/day"; like iptables, any prefix of the unit works ("/s", "/min").
func parseLimitRate(s string) (uint32, time.Duration, error) {
	num, unit, hasUnit := strings.Cut(s, "/")
	per := time.Second
	if hasUnit {
		per = 0
		for _, u := range []struct {
			name string
			d    time.Duration
		}{{"second", time.Second}, {"minute", time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}} {
			if unit != "" && len(unit) <= len(u.name) && strings.EqualFold(u.name[:len(unit)], unit) {
				per = u.d
				break
			}
		}
		if per == 0 {
			return 0, 0, fmt.Errorf("unknown unit %q (want second, minute, hour or day)", unit)
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("rate %q is not a positive number", num)
	}
	// The kernel keeps the average interval in units of 1/10000 s;
	// iptables refuses rates it would round to nothing, this way.
	if n/uint64(per/time.Second) > 10000 {
		return 0, 0, fmt.Errorf("rate %q is too fast (at most 10000/second)", s)
	}
	return uint32(n), per, nil
}

// logLevels are LOG's level names.
var logLevels = []struct {
	name  string
	level uint8
}{
	{"emerg", 0}, {"panic", 0}, {"alert", 1}, {"crit", 2}, {"error", 3}, {"err", 3},
	{"warning", 4}, {"warn", 4}, {"notice", 5}, {"info", 6}, {"debug", 7},
}

func parseLogLevel(s string) (uint8, error) {
	for _, l := range logLevels {
		if l.name == s {
			return l.level, nil
		}
	}
	if v, ok := parseNum(s, 7); ok {
		return uint8(v), nil
	}
	return 0, fmt.Errorf("unknown level %q (want 0-7 or emerg, alert, crit, error, warning, notice, info, debug)", s)
}

// protoNames maps protocol names to numbers. The names iptables knows
// without /etc/protocols come first.
var protoNames = map[string]uint8{
	"all": 0, "tcp": ProtoTCP, "udp": ProtoUDP, "udplite": ProtoUDPLite, "icmp": ProtoICMP,
	"icmpv6": ProtoICMPv6, "ipv6-icmp": ProtoICMPv6, "esp": ProtoESP, "ah": ProtoAH,
	"sctp": ProtoSCTP, "dccp": ProtoDCCP, "gre": ProtoGRE,
}

// protoName returns the name iptables-save prints for a protocol. Numbers
// whose names depend on /etc/protocols stay numbers.
func protoName(n uint8) string {
	switch n {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoUDPLite:
		return "udplite"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "ipv6-icmp"
	case ProtoESP:
		return "esp"
	case ProtoAH:
		return "ah"
	case ProtoSCTP:
		return "sctp"
	}
	return strconv.Itoa(int(n))
}

func parseProto(s string) (uint8, error) {
	if n, ok := protoNames[strings.ToLower(s)]; ok {
		return n, nil
	}
	if v, ok := parseNum(s, 255); ok {
		return uint8(v), nil
	}
	names := make([]string, 0, len(protoNames))
	for n := range protoNames {
		names = append(names, n)
	}
	return 0, fmt.Errorf("unknown protocol %q%s (want a number or tcp, udp, icmp, icmpv6, all, ...)", s, suggest.DidYouMean(s, names))
}

// maxIfName is IFNAMSIZ minus the terminating NUL.
const maxIfName = 15

// checkIfName checks an interface name as Linux accepts it (dev_valid_name),
// with a trailing "+" as a wildcard.
func checkIfName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty interface name")
	case len(s) > maxIfName:
		return fmt.Errorf("interface name %q is longer than %d characters", s, maxIfName)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not an interface name", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("/:\"'\\", c) >= 0 {
			return fmt.Errorf("interface name %q contains %q", s, string(c))
		}
	}
	return nil
}

// maxChainName is iptables' limit on chain names (XT_EXTENSION_MAXNAMELEN
// minus the terminating NUL).
const maxChainName = 28

// checkChainName checks a new user chain's name as iptables does.
func checkChainName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty chain name")
	case len(s) > maxChainName:
		return fmt.Errorf("chain name %q is longer than %d characters", s, maxChainName)
	case s[0] == '-' || s[0] == '!':
		return fmt.Errorf("chain name %q can't start with %q", s, s[:1])
	case isTargetName(s):
		return fmt.Errorf("chain name %q is the name of a target", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return fmt.Errorf("chain name %q contains %q", s, string(c))
		}
	}
	return nil
}

// checkText checks a comment or log prefix: iptables-save writes it on one
// line, so control characters would not survive a save and restore.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%q is longer than %d bytes", s, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

// didYouMean is suggest.DidYouMean that also catches a difference of case
// only ("accept" for "ACCEPT").
func didYouMean(word string, candidates []string) string {
	for _, c := range candidates {
		if c != word && strings.EqualFold(c, word) {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
	}
	return suggest.DidYouMean(word, candidates)
}
