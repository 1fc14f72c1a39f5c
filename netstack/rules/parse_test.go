package rules

import (
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// ruleFields is the part of a Rule a test compares: everything but Pos and
// Text.
type ruleFields struct {
	Proto    Proto
	Src, Dst Addr
	In, Out  Iface
	Matches  []Match
	Target   Target
}

func fieldsOf(r *Rule) ruleFields {
	return ruleFields{r.Proto, r.Src, r.Dst, r.In, r.Out, r.Matches, r.Target}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func ports(lo, hi uint16) *PortMatch    { return &PortMatch{Range: PortRange{lo, hi}} }
func notPorts(lo, hi uint16) *PortMatch { return &PortMatch{Range: PortRange{lo, hi}, Invert: true} }

// lastRule loads cmds (one command per line) for family fam, checks that
// everything is valid and returns the last rule of chain in table.
func lastRule(t *testing.T, fam Family, table, chain string, cmds []string) *Rule {
	t.Helper()
	var rs Ruleset
	opts := ParseOptions{Family: fam}
	if err := rs.AddCommands("--rule", cmds, opts); err != nil {
		t.Fatalf("AddCommands: %v", err)
	}
	if err := rs.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	tb := rs.Table(fam, table)
	if tb == nil {
		t.Fatalf("no table %s", table)
	}
	c := tb.Chain(chain)
	if c == nil || len(c.Rules) == 0 {
		t.Fatalf("no rule in %s %s", table, chain)
	}
	return c.Rules[len(c.Rules)-1]
}

var synFlags = &TCPFlags{Mask: FlagFIN | FlagSYN | FlagRST | FlagACK, Comp: FlagSYN}

// parseCases are valid rules with what they parse to and how iptables-save
// writes them. The round-trip test and the fuzz corpus use them too.
var parseCases = []struct {
	name  string
	fam   Family
	table string // default filter
	chain string // default INPUT
	pre   []string
	cmd   string
	want  ruleFields
	spec  string
}{
	{name: "tcp dport", cmd: "-A INPUT -p tcp --dport 22 -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(22, 22)}}, Target: Accept},
		spec: "-p tcp -m tcp --dport 22 -j ACCEPT"},
	{name: "udp sport range, inverted dport", cmd: "-A INPUT -p udp --sport 1000:2000 ! --dport 53 -j DROP",
		want: ruleFields{Proto: Proto{Num: 17}, Matches: []Match{&UDP{Src: ports(1000, 2000), Dst: notPorts(53, 53)}}, Target: Drop},
		spec: "-p udp -m udp --sport 1000:2000 ! --dport 53 -j DROP"},
	{name: "open port ranges, long names, counting rule", cmd: "-A INPUT -p tcp --source-port :1023 --destination-port 1024:",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Src: ports(0, 1023), Dst: ports(1024, 65535)}}},
		spec: "-p tcp -m tcp --sport 0:1023 --dport 1024:65535"},
	{name: "explicit -m tcp, hex port like strtoul", cmd: "-A INPUT -p tcp -m tcp --dport 0x50 -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(80, 80)}}, Target: Accept},
		spec: "-p tcp -m tcp --dport 80 -j ACCEPT"},
	{name: "inline value", cmd: "-A INPUT -p tcp --dport=443 -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(443, 443)}}, Target: Accept},
		spec: "-p tcp -m tcp --dport 443 -j ACCEPT"},
	{name: "long option names", cmd: "--append INPUT --protocol udp --source 192.0.2.7 --destination 198.51.100.0/24 --in-interface eth0 --jump ACCEPT",
		want: ruleFields{Proto: Proto{Num: 17}, Src: Addr{Prefix: pfx("192.0.2.7/32")}, Dst: Addr{Prefix: pfx("198.51.100.0/24")},
			In: Iface{Name: "eth0"}, Target: Accept},
		spec: "-s 192.0.2.7/32 -d 198.51.100.0/24 -i eth0 -p udp -j ACCEPT"},
	{name: "inverted protocol", cmd: "-A INPUT ! -p tcp -j DROP",
		want: ruleFields{Proto: Proto{Num: 6, Invert: true}, Target: Drop}, spec: "! -p tcp -j DROP"},
	{name: "protocol number", cmd: "-A INPUT -p 47 -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 47}, Target: Accept}, spec: "-p 47 -j ACCEPT"},
	{name: "protocol all", cmd: "-A INPUT -p all -j ACCEPT",
		want: ruleFields{Target: Accept}, spec: "-j ACCEPT"},
	{name: "protocol name in capitals", cmd: "-A INPUT -p UDP -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 17}, Target: Accept}, spec: "-p udp -j ACCEPT"},
	{name: "addresses: host bits cleared, host, inverted", cmd: "-A INPUT -s 10.1.2.3/8 ! -d 192.168.0.1 -j ACCEPT",
		want: ruleFields{Src: Addr{Prefix: pfx("10.0.0.0/8")}, Dst: Addr{Prefix: pfx("192.168.0.1/32"), Invert: true}, Target: Accept},
		spec: "-s 10.0.0.0/8 ! -d 192.168.0.1/32 -j ACCEPT"},
	{name: "dotted mask", cmd: "-A INPUT -s 10.9.0.0/255.255.0.0 -j ACCEPT",
		want: ruleFields{Src: Addr{Prefix: pfx("10.9.0.0/16")}, Target: Accept}, spec: "-s 10.9.0.0/16 -j ACCEPT"},
	{name: "interfaces with wildcard", chain: "FORWARD", cmd: "-A FORWARD -i eth+ ! -o wlan0 -j ACCEPT",
		want: ruleFields{In: Iface{Name: "eth+"}, Out: Iface{Name: "wlan0", Invert: true}, Target: Accept},
		spec: "-i eth+ ! -o wlan0 -j ACCEPT"},
	{name: "multiport dports", cmd: "-A INPUT -p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&Multiport{Dir: DestinationPorts,
			Ports: []PortRange{{80, 80}, {443, 443}, {8000, 8080}}}}, Target: Accept},
		spec: "-p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT"},
	{name: "multiport inverted sports", cmd: "-A INPUT -p udp -m multiport ! --sports 53,67:68",
		want: ruleFields{Proto: Proto{Num: 17}, Matches: []Match{&Multiport{Dir: SourcePorts,
			Ports: []PortRange{{53, 53}, {67, 68}}, Invert: true}}},
		spec: "-p udp -m multiport ! --sports 53,67:68"},
	{name: "multiport ports, 15 entries", cmd: "-A INPUT -p tcp -m multiport --ports 1,2,3,4,5,6,7,8,9,10,11,12,13:14",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&Multiport{Dir: EitherPort,
			Ports: []PortRange{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}, {7, 7}, {8, 8}, {9, 9}, {10, 10}, {11, 11}, {12, 12}, {13, 14}}}}},
		spec: "-p tcp -m multiport --ports 1,2,3,4,5,6,7,8,9,10,11,12,13:14"},
	{name: "conntrack", cmd: "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		want: ruleFields{Matches: []Match{&State{Conntrack: true, States: StateEstablished | StateRelated}}, Target: Accept},
		spec: "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"},
	{name: "state, lower case, inverted", cmd: "-A INPUT -m state ! --state new,invalid -j DROP",
		want: ruleFields{Matches: []Match{&State{States: StateNew | StateInvalid, Invert: true}}, Target: Drop},
		spec: "-m state ! --state INVALID,NEW -j DROP"},
	{name: "untracked", cmd: "-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT",
		want: ruleFields{Matches: []Match{&State{Conntrack: true, States: StateUntracked}}, Target: Accept},
		spec: "-m conntrack --ctstate UNTRACKED -j ACCEPT"},
	{name: "icmp echo-request", cmd: "-A INPUT -p icmp --icmp-type echo-request -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 8, CodeMax: 255}}, Target: Accept},
		spec: "-p icmp -m icmp --icmp-type 8 -j ACCEPT"},
	{name: "icmp echo-reply", cmd: "-A INPUT -p icmp --icmp-type echo-reply -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 0, CodeMax: 255}}, Target: Accept},
		spec: "-p icmp -m icmp --icmp-type 0 -j ACCEPT"},
	{name: "icmp destination-unreachable", cmd: "-A INPUT -p icmp --icmp-type destination-unreachable",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 3, CodeMax: 255}}},
		spec: "-p icmp -m icmp --icmp-type 3"},
	{name: "icmp port-unreachable", cmd: "-A INPUT -p icmp --icmp-type port-unreachable",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 3, CodeMin: 3, CodeMax: 3}}},
		spec: "-p icmp -m icmp --icmp-type 3/3"},
	{name: "icmp time-exceeded", cmd: "-A INPUT -p icmp --icmp-type time-exceeded",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 11, CodeMax: 255}}},
		spec: "-p icmp -m icmp --icmp-type 11"},
	{name: "icmp type/code", cmd: "-A INPUT -p icmp -m icmp --icmp-type 3/4",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 3, CodeMin: 4, CodeMax: 4}}},
		spec: "-p icmp -m icmp --icmp-type 3/4"},
	{name: "icmp not any", cmd: "-A INPUT -p icmp ! --icmp-type any",
		want: ruleFields{Proto: Proto{Num: 1}, Matches: []Match{&ICMPType{Type: 255, CodeMax: 255, Invert: true}}},
		spec: "-p icmp -m icmp ! --icmp-type any"},
	{name: "icmpv6 neighbour-solicitation", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type neighbour-solicitation -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 135, CodeMax: 255}}, Target: Accept},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"},
	{name: "icmpv6 names", fam: IPv6, cmd: "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type packet-too-big",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 2, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 2"},
	{name: "icmpv6 echo-request", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type echo-request",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 128, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 128"},
	{name: "icmpv6 echo-reply", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type echo-reply",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 129, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 129"},
	{name: "icmpv6 router and neighbour", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type router-advertisement",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 134, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 134"},
	{name: "icmpv6 router-solicitation", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type router-solicitation",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 133, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 133"},
	{name: "icmpv6 neighbour-advertisement", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type neighbour-advertisement",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 136, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 136"},
	{name: "icmpv6 time-exceeded, destination-unreachable, code", fam: IPv6, cmd: "-A INPUT -p icmpv6 ! --icmpv6-type 1/4",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 1, CodeMin: 4, CodeMax: 4, Invert: true}}},
		spec: "-p ipv6-icmp -m icmp6 ! --icmpv6-type 1/4"},
	{name: "icmpv6 time-exceeded", fam: IPv6, cmd: "-A INPUT -p icmpv6 --icmpv6-type time-exceeded",
		want: ruleFields{Proto: Proto{Num: 58}, Matches: []Match{&ICMPType{V6: true, Type: 3, CodeMax: 255}}},
		spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 3"},
	{name: "tcp flags", cmd: "-A INPUT -p tcp --tcp-flags SYN,ACK SYN -j DROP",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Flags: &TCPFlags{Mask: FlagSYN | FlagACK, Comp: FlagSYN}}}, Target: Drop},
		spec: "-p tcp -m tcp --tcp-flags SYN,ACK SYN -j DROP"},
	{name: "syn", cmd: "-A INPUT -p tcp --syn -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Flags: synFlags}}, Target: Accept},
		spec: "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"},
	{name: "not syn", cmd: "-A INPUT -p tcp ! --syn -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Flags: &TCPFlags{Mask: synFlags.Mask, Comp: FlagSYN, Invert: true}}}, Target: Accept},
		spec: "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"},
	{name: "tcp flags ALL NONE", cmd: "-A INPUT -p tcp --tcp-flags ALL NONE -j DROP",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Flags: &TCPFlags{Mask: FlagsAll}}}, Target: Drop},
		spec: "-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP"},
	{name: "tcp flags inverted, lower case", cmd: "-A INPUT -p tcp ! --tcp-flags fin,urg,psh URG",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Flags: &TCPFlags{Mask: FlagFIN | FlagURG | FlagPSH, Comp: FlagURG, Invert: true}}}},
		spec: "-p tcp -m tcp ! --tcp-flags FIN,PSH,URG URG"},
	{name: "dport and syn in one match", cmd: "-A INPUT -p tcp --dport 22 --syn -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(22, 22), Flags: synFlags}}, Target: Accept},
		spec: "-p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"},
	{name: "second -m tcp takes later options", cmd: "-A INPUT -p tcp --dport 1 -m tcp --sport 2",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(1, 1)}, &TCP{Src: ports(2, 2)}}},
		spec: "-p tcp -m tcp --dport 1 -m tcp --sport 2"},
	{name: "comment", cmd: `-A INPUT -m comment --comment "allow web" -j ACCEPT`,
		want: ruleFields{Matches: []Match{&Comment{Text: "allow web"}}, Target: Accept},
		spec: `-m comment --comment "allow web" -j ACCEPT`},
	{name: "comment with quotes", cmd: `-A INPUT -m comment --comment 'say "hi"' -j ACCEPT`,
		want: ruleFields{Matches: []Match{&Comment{Text: `say "hi"`}}, Target: Accept},
		spec: `-m comment --comment "say \"hi\"" -j ACCEPT`},
	{name: "limit per minute with burst", cmd: "-A INPUT -m limit --limit 10/minute --limit-burst 20 -j LOG",
		want: ruleFields{Matches: []Match{&Limit{Rate: 10, Per: time.Minute, Burst: 20}}, Target: &Log{Level: 4}},
		spec: "-m limit --limit 10/min --limit-burst 20 -j LOG"},
	{name: "limit /s", cmd: "-A INPUT -m limit --limit 5/s",
		want: ruleFields{Matches: []Match{&Limit{Rate: 5, Per: time.Second, Burst: 5}}}, spec: "-m limit --limit 5/sec"},
	{name: "limit /sec", cmd: "-A INPUT -m limit --limit 5/sec",
		want: ruleFields{Matches: []Match{&Limit{Rate: 5, Per: time.Second, Burst: 5}}}, spec: "-m limit --limit 5/sec"},
	{name: "limit /h", cmd: "-A INPUT -m limit --limit 2/h",
		want: ruleFields{Matches: []Match{&Limit{Rate: 2, Per: time.Hour, Burst: 5}}}, spec: "-m limit --limit 2/hour"},
	{name: "limit /day", cmd: "-A INPUT -m limit --limit 1/day --limit-burst 1",
		want: ruleFields{Matches: []Match{&Limit{Rate: 1, Per: 24 * time.Hour, Burst: 1}}}, spec: "-m limit --limit 1/day --limit-burst 1"},
	{name: "limit fastest", cmd: "-A INPUT -m limit --limit 10000/second --limit-burst 10000",
		want: ruleFields{Matches: []Match{&Limit{Rate: 10000, Per: time.Second, Burst: 10000}}}, spec: "-m limit --limit 10000/sec --limit-burst 10000"},
	{name: "limit defaults", cmd: "-A INPUT -m limit",
		want: ruleFields{Matches: []Match{&Limit{Rate: 3, Per: time.Hour, Burst: 5}}}, spec: "-m limit --limit 3/hour"},
	{name: "statistic random", cmd: "-A INPUT -m statistic --mode random --probability 0.25 -j DROP",
		want: ruleFields{Matches: []Match{&Statistic{Mode: StatRandom, Probability: 0.25}}, Target: Drop},
		spec: "-m statistic --mode random --probability 0.25000000000 -j DROP"},
	{name: "statistic nth", cmd: "-A INPUT -m statistic --mode nth --every 3 --packet 1 -j ACCEPT",
		want: ruleFields{Matches: []Match{&Statistic{Mode: StatNth, Every: 3, Packet: 1}}, Target: Accept},
		spec: "-m statistic --mode nth --every 3 --packet 1 -j ACCEPT"},
	{name: "statistic inverted", cmd: "-A INPUT -m statistic --mode nth ! --every 2 --packet 0",
		want: ruleFields{Matches: []Match{&Statistic{Mode: StatNth, Every: 2, Invert: true}}},
		spec: "-m statistic --mode nth ! --every 2 --packet 0"},
	{name: "iprange", cmd: "-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 10.1.0.0-10.1.255.255 -j DROP",
		want: ruleFields{Matches: []Match{&IPRange{Src: &AddrRange{Min: ip("10.0.0.1"), Max: ip("10.0.0.9")},
			Dst: &AddrRange{Min: ip("10.1.0.0"), Max: ip("10.1.255.255"), Invert: true}}}, Target: Drop},
		spec: "-m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 10.1.0.0-10.1.255.255 -j DROP"},
	{name: "mac", cmd: "-A INPUT -m mac --mac-source 00:11:22:aa:bb:cc -j DROP",
		want: ruleFields{Matches: []Match{&MAC{Addr: [6]byte{0, 0x11, 0x22, 0xaa, 0xbb, 0xcc}}}, Target: Drop},
		spec: "-m mac --mac-source 00:11:22:AA:BB:CC -j DROP"},
	{name: "mac inverted in raw PREROUTING", table: "raw", chain: "PREROUTING",
		cmd:  "-t raw -A PREROUTING -m mac ! --mac-source 02:00:00:00:00:01 -j DROP",
		want: ruleFields{Matches: []Match{&MAC{Addr: [6]byte{2, 0, 0, 0, 0, 1}, Invert: true}}, Target: Drop},
		spec: "-m mac ! --mac-source 02:00:00:00:00:01 -j DROP"},
	{name: "length", cmd: "-A INPUT -m length --length 0:1500 -j ACCEPT",
		want: ruleFields{Matches: []Match{&Length{Min: 0, Max: 1500}}, Target: Accept},
		spec: "-m length --length 0:1500 -j ACCEPT"},
	{name: "length inverted single", cmd: "-A INPUT -m length ! --length 64",
		want: ruleFields{Matches: []Match{&Length{Min: 64, Max: 64, Invert: true}}}, spec: "-m length ! --length 64"},
	{name: "mark", cmd: "-A INPUT -m mark --mark 0x1 -j ACCEPT",
		want: ruleFields{Matches: []Match{&Mark{Value: 1, Mask: 0xffffffff}}, Target: Accept},
		spec: "-m mark --mark 0x1 -j ACCEPT"},
	{name: "mark with mask inverted", cmd: "-A INPUT -m mark ! --mark 5/0xff",
		want: ruleFields{Matches: []Match{&Mark{Value: 5, Mask: 0xff, Invert: true}}}, spec: "-m mark ! --mark 0x5/0xff"},
	{name: "reject default v4", cmd: "-A INPUT -j REJECT",
		want: ruleFields{Target: &Reject{With: ICMPPortUnreachable}}, spec: "-j REJECT --reject-with icmp-port-unreachable"},
	{name: "reject host-unreachable", cmd: "-A FORWARD -j REJECT --reject-with icmp-host-unreachable", chain: "FORWARD",
		want: ruleFields{Target: &Reject{With: ICMPHostUnreachable}}, spec: "-j REJECT --reject-with icmp-host-unreachable"},
	{name: "reject net-unreachable", cmd: "-A OUTPUT -j REJECT --reject-with icmp-net-unreachable", chain: "OUTPUT",
		want: ruleFields{Target: &Reject{With: ICMPNetUnreachable}}, spec: "-j REJECT --reject-with icmp-net-unreachable"},
	{name: "reject admin-prohibited", cmd: "-A INPUT -j REJECT --reject-with icmp-admin-prohibited",
		want: ruleFields{Target: &Reject{With: ICMPAdminProhibited}}, spec: "-j REJECT --reject-with icmp-admin-prohibited"},
	{name: "reject proto-unreachable", cmd: "-A INPUT -j REJECT --reject-with icmp-proto-unreachable",
		want: ruleFields{Target: &Reject{With: ICMPProtoUnreachable}}, spec: "-j REJECT --reject-with icmp-proto-unreachable"},
	{name: "reject net-prohibited", cmd: "-A INPUT -j REJECT --reject-with icmp-net-prohibited",
		want: ruleFields{Target: &Reject{With: ICMPNetProhibited}}, spec: "-j REJECT --reject-with icmp-net-prohibited"},
	{name: "reject host-prohibited alias", cmd: "-A INPUT -j REJECT --reject-with host-prohib",
		want: ruleFields{Target: &Reject{With: ICMPHostProhibited}}, spec: "-j REJECT --reject-with icmp-host-prohibited"},
	{name: "reject tcp-reset", cmd: "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
		want: ruleFields{Proto: Proto{Num: 6}, Target: &Reject{With: TCPReset}}, spec: "-p tcp -j REJECT --reject-with tcp-reset"},
	{name: "reject default v6", fam: IPv6, cmd: "-A INPUT -j REJECT",
		want: ruleFields{Target: &Reject{With: ICMP6PortUnreachable}}, spec: "-j REJECT --reject-with icmp6-port-unreachable"},
	{name: "reject v6 adm-prohibited", fam: IPv6, cmd: "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited",
		want: ruleFields{Target: &Reject{With: ICMP6AdmProhibited}}, spec: "-j REJECT --reject-with icmp6-adm-prohibited"},
	{name: "reject v6 no-route", fam: IPv6, cmd: "-A INPUT -j REJECT --reject-with icmp6-no-route",
		want: ruleFields{Target: &Reject{With: ICMP6NoRoute}}, spec: "-j REJECT --reject-with icmp6-no-route"},
	{name: "reject v6 addr-unreachable", fam: IPv6, cmd: "-A INPUT -j REJECT --reject-with icmp6-addr-unreachable",
		want: ruleFields{Target: &Reject{With: ICMP6AddrUnreachable}}, spec: "-j REJECT --reject-with icmp6-addr-unreachable"},
	{name: "reject v6 port-unreach alias", fam: IPv6, cmd: "-A INPUT -j REJECT --reject-with port-unreach",
		want: ruleFields{Target: &Reject{With: ICMP6PortUnreachable}}, spec: "-j REJECT --reject-with icmp6-port-unreachable"},
	{name: "reject v6 tcp-reset", fam: IPv6, cmd: "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
		want: ruleFields{Proto: Proto{Num: 6}, Target: &Reject{With: TCPReset}}, spec: "-p tcp -j REJECT --reject-with tcp-reset"},
	{name: "log", cmd: "-A INPUT -j LOG --log-prefix 'FW: ' --log-level info",
		want: ruleFields{Target: &Log{Prefix: "FW: ", Level: 6}}, spec: `-j LOG --log-prefix "FW: " --log-level 6`},
	{name: "log level 0 and 29-byte prefix", cmd: "-A INPUT -j LOG --log-level emerg --log-prefix 12345678901234567890123456789",
		want: ruleFields{Target: &Log{Prefix: "12345678901234567890123456789", Level: 0}},
		spec: "-j LOG --log-prefix 12345678901234567890123456789 --log-level 0"},
	{name: "log default level", cmd: "-A INPUT -j LOG --log-level 4",
		want: ruleFields{Target: &Log{Level: 4}}, spec: "-j LOG"},
	{name: "snat", table: "nat", chain: "POSTROUTING", cmd: "-t nat -A POSTROUTING -o eth1 -j SNAT --to-source 192.0.2.1",
		want: ruleFields{Out: Iface{Name: "eth1"}, Target: &NAT{Kind: SNAT, Range: NATRange{MinAddr: ip("192.0.2.1"), MaxAddr: ip("192.0.2.1")}}},
		spec: "-o eth1 -j SNAT --to-source 192.0.2.1"},
	{name: "snat range with ports, random", table: "nat", chain: "POSTROUTING",
		cmd: "-t nat -A POSTROUTING -p udp -j SNAT --to-source 192.0.2.1-192.0.2.10:1024-65535 --random",
		want: ruleFields{Proto: Proto{Num: 17}, Target: &NAT{Kind: SNAT, Random: true,
			Range: NATRange{MinAddr: ip("192.0.2.1"), MaxAddr: ip("192.0.2.10"), Ports: &PortRange{1024, 65535}}}},
		spec: "-p udp -j SNAT --to-source 192.0.2.1-192.0.2.10:1024-65535 --random"},
	{name: "snat in nat INPUT", table: "nat", cmd: "-t nat -A INPUT -j SNAT --to-source 10.0.0.1",
		want: ruleFields{Target: &NAT{Kind: SNAT, Range: NATRange{MinAddr: ip("10.0.0.1"), MaxAddr: ip("10.0.0.1")}}},
		spec: "-j SNAT --to-source 10.0.0.1"},
	{name: "dnat", table: "nat", chain: "PREROUTING", cmd: "-t nat -A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(80, 80)}},
			Target: &NAT{Kind: DNAT, Range: NATRange{MinAddr: ip("10.0.0.2"), MaxAddr: ip("10.0.0.2"), Ports: &PortRange{8080, 8080}}}},
		spec: "-p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080"},
	{name: "dnat port only in OUTPUT", table: "nat", chain: "OUTPUT", cmd: "-t nat -A OUTPUT -p tcp -j DNAT --to-destination :8080",
		want: ruleFields{Proto: Proto{Num: 6}, Target: &NAT{Kind: DNAT, Range: NATRange{Ports: &PortRange{8080, 8080}}}},
		spec: "-p tcp -j DNAT --to-destination :8080"},
	{name: "dnat v6 with port", fam: IPv6, table: "nat", chain: "PREROUTING",
		cmd: "-t nat -A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1]:80",
		want: ruleFields{Proto: Proto{Num: 6}, Target: &NAT{Kind: DNAT,
			Range: NATRange{MinAddr: ip("2001:db8::1"), MaxAddr: ip("2001:db8::1"), Ports: &PortRange{80, 80}}}},
		spec: "-p tcp -j DNAT --to-destination [2001:db8::1]:80"},
	{name: "dnat v6 range and ports", fam: IPv6, table: "nat", chain: "PREROUTING",
		cmd: "-t nat -A PREROUTING -p udp -j DNAT --to-destination [2001:db8::1-2001:db8::9]:80-90",
		want: ruleFields{Proto: Proto{Num: 17}, Target: &NAT{Kind: DNAT,
			Range: NATRange{MinAddr: ip("2001:db8::1"), MaxAddr: ip("2001:db8::9"), Ports: &PortRange{80, 90}}}},
		spec: "-p udp -j DNAT --to-destination [2001:db8::1-2001:db8::9]:80-90"},
	{name: "dnat v6 without port", fam: IPv6, table: "nat", chain: "PREROUTING",
		cmd:  "-t nat -A PREROUTING -j DNAT --to-destination 2001:db8::1",
		want: ruleFields{Target: &NAT{Kind: DNAT, Range: NATRange{MinAddr: ip("2001:db8::1"), MaxAddr: ip("2001:db8::1")}}},
		spec: "-j DNAT --to-destination 2001:db8::1"},
	{name: "masquerade", table: "nat", chain: "POSTROUTING", cmd: "-t nat -A POSTROUTING -o eth1 -j MASQUERADE",
		want: ruleFields{Out: Iface{Name: "eth1"}, Target: &NAT{Kind: Masquerade}}, spec: "-o eth1 -j MASQUERADE"},
	{name: "masquerade ports random", table: "nat", chain: "POSTROUTING",
		cmd:  "-t nat -A POSTROUTING -p tcp -j MASQUERADE --to-ports 1024-2048 --random",
		want: ruleFields{Proto: Proto{Num: 6}, Target: &NAT{Kind: Masquerade, Random: true, Range: NATRange{Ports: &PortRange{1024, 2048}}}},
		spec: "-p tcp -j MASQUERADE --to-ports 1024-2048 --random"},
	{name: "redirect", table: "nat", chain: "PREROUTING", cmd: "-t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(80, 80)}},
			Target: &NAT{Kind: Redirect, Range: NATRange{Ports: &PortRange{8080, 8080}}}},
		spec: "-p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080"},
	{name: "mark set", table: "mangle", chain: "PREROUTING", cmd: "-t mangle -A PREROUTING -j MARK --set-mark 0x5",
		want: ruleFields{Target: &SetMark{Value: 5, Mask: 0xffffffff}}, spec: "-j MARK --set-xmark 0x5/0xffffffff"},
	{name: "mark set with mask", table: "mangle", chain: "PREROUTING", cmd: "-t mangle -A PREROUTING -j MARK --set-mark 1/0xff",
		want: ruleFields{Target: &SetMark{Value: 1, Mask: 0xff}}, spec: "-j MARK --set-xmark 0x1/0xff"},
	{name: "mark xmark", table: "mangle", chain: "FORWARD", cmd: "-t mangle -A FORWARD -j MARK --set-xmark 0x10/0xf0",
		want: ruleFields{Target: &SetMark{Value: 0x10, Mask: 0xf0}}, spec: "-j MARK --set-xmark 0x10/0xf0"},
	{name: "mark and", table: "mangle", chain: "OUTPUT", cmd: "-t mangle -A OUTPUT -j MARK --and-mark 0xf",
		want: ruleFields{Target: &SetMark{Value: 0, Mask: 0xfffffff0}}, spec: "-j MARK --set-xmark 0x0/0xfffffff0"},
	{name: "mark or", table: "mangle", chain: "POSTROUTING", cmd: "-t mangle -A POSTROUTING -j MARK --or-mark 0x4",
		want: ruleFields{Target: &SetMark{Value: 4, Mask: 4}}, spec: "-j MARK --set-xmark 0x4/0x4"},
	{name: "mark xor", table: "mangle", cmd: "-t mangle -A INPUT -j MARK --xor-mark 3",
		want: ruleFields{Target: &SetMark{Value: 3, Mask: 0}}, spec: "-j MARK --set-xmark 0x3/0x0"},
	{name: "mark in the filter table, as Linux allows", cmd: "-A INPUT -j MARK --set-mark 7",
		want: ruleFields{Target: &SetMark{Value: 7, Mask: 0xffffffff}}, spec: "-j MARK --set-xmark 0x7/0xffffffff"},
	{name: "jump", pre: []string{"-N web"}, cmd: "-A INPUT -p tcp -j web",
		want: ruleFields{Proto: Proto{Num: 6}, Target: &Jump{Chain: "web"}}, spec: "-p tcp -j web"},
	{name: "goto", pre: []string{"-N web"}, cmd: "-A INPUT -g web",
		want: ruleFields{Target: &Jump{Chain: "web", Goto: true}}, spec: "-g web"},
	{name: "return in user chain", chain: "web", pre: []string{"-N web", "-A INPUT -j web"}, cmd: "-A web -s 10.0.0.0/8 -j RETURN",
		want: ruleFields{Src: Addr{Prefix: pfx("10.0.0.0/8")}, Target: Return}, spec: "-s 10.0.0.0/8 -j RETURN"},
	{name: "raw table", table: "raw", chain: "OUTPUT", cmd: "-t raw -A OUTPUT -p udp --dport 53 -j ACCEPT",
		want: ruleFields{Proto: Proto{Num: 17}, Matches: []Match{&UDP{Dst: ports(53, 53)}}, Target: Accept},
		spec: "-p udp -m udp --dport 53 -j ACCEPT"},
	{name: "ipv6 addresses", fam: IPv6, cmd: "-A INPUT -s 2001:db8::/32 -d fe80::1 -j ACCEPT",
		want: ruleFields{Src: Addr{Prefix: pfx("2001:db8::/32")}, Dst: Addr{Prefix: pfx("fe80::1/128")}, Target: Accept},
		spec: "-s 2001:db8::/32 -d fe80::1/128 -j ACCEPT"},
	{name: "wait and verbose flags are ignored", cmd: "-w 5 -v -A INPUT -j ACCEPT",
		want: ruleFields{Target: Accept}, spec: "-j ACCEPT"},
	{name: "matches after the target, as iptables allows", cmd: "-A INPUT -p tcp -j ACCEPT --dport 22",
		want: ruleFields{Proto: Proto{Num: 6}, Matches: []Match{&TCP{Dst: ports(22, 22)}}, Target: Accept},
		spec: "-p tcp -m tcp --dport 22 -j ACCEPT"},
}

func TestParseRules(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			fam, table, chain := tt.fam, tt.table, tt.chain
			if fam == 0 {
				fam = IPv4
			}
			if table == "" {
				table = "filter"
			}
			if chain == "" {
				chain = "INPUT"
			}
			r := lastRule(t, fam, table, chain, append(tt.pre, tt.cmd))
			if got := fieldsOf(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsed\n%#v\nwant\n%#v", got, tt.want)
			}
			if got := r.Spec(); got != tt.spec {
				t.Errorf("Spec() = %q, want %q", got, tt.spec)
			}
			if r.Text != tt.cmd {
				t.Errorf("Text = %q, want %q", r.Text, tt.cmd)
			}
			if want := (Pos{Source: "--rule[" + strconv.Itoa(len(tt.pre)) + "]"}); r.Pos != want {
				t.Errorf("Pos = %v, want %v", r.Pos, want)
			}
		})
	}
}
