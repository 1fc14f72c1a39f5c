package rules

import (
	"errors"
	"strings"
	"testing"
)

const allTargets = "ACCEPT, DNAT, DROP, LOG, MARK, MASQUERADE, REDIRECT, REJECT, RETURN, SNAT"

// TestErrors checks the exact message of every kind of problem, with its
// position. Each input is a file in x.rules; Validate reports everything.
func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		// Options.
		{"did you mean", "-A INPUT -p tcp --dprot 80",
			`x.rules:1: unknown option "--dprot" (did you mean "--dport"?)`},
		{"dport without protocol", "-A INPUT --dport 80 -j ACCEPT",
			`x.rules:1: --dport needs -p tcp or -p udp before it`},
		{"dport with icmp", "-A INPUT -p icmp --dport 80",
			`x.rules:1: --dport needs -p tcp or -p udp before it`},
		{"sport with inverted protocol", "-A INPUT ! -p udp --sport 53",
			`x.rules:1: --sport needs -p tcp or -p udp before it`},
		{"module option without -m", "-A INPUT --ctstate NEW -j ACCEPT",
			`x.rules:1: --ctstate needs -m conntrack before it`},
		{"target option of another target", "-A INPUT -j ACCEPT --to-ports 80",
			`x.rules:1: --to-ports is an option of -j MASQUERADE or -j REDIRECT`},
		{"option given twice", "-A INPUT -p tcp --dport 80 --destination-port 81",
			`x.rules:1: --destination-port given twice`},
		{"generic option given twice", "-A INPUT -s 10.0.0.1 -s 10.0.0.2",
			`x.rules:1: -s given twice`},
		{"syn and tcp-flags", "-A INPUT -p tcp --syn --tcp-flags SYN SYN",
			`x.rules:1: --syn and --tcp-flags can't be used together`},
		{"tcp-flags needs two arguments", "-A INPUT -p tcp --tcp-flags SYN,ACK",
			`x.rules:1: --tcp-flags needs two arguments`},
		{"unknown tcp flag", "-A INPUT -p tcp --tcp-flags SYN,SYNN SYN",
			`x.rules:1: --tcp-flags: unknown TCP flag "SYNN" (did you mean "SYN"?) (want SYN, ACK, FIN, RST, URG, PSH, ALL or NONE)`},
		{"unsupported option", "-t nat -A POSTROUTING -j MASQUERADE --random-fully",
			`x.rules:1: --random-fully is not supported by nfpipe`},
		{"unsupported conntrack option", "-A INPUT -m conntrack --ctstatus ASSURED",
			`x.rules:1: --ctstatus is not supported: only --ctstate of -m conntrack is`},
		{"option without argument", "-A INPUT -p",
			`x.rules:1: -p needs a protocol`},

		// Values.
		{"port out of range", "-A INPUT -p tcp --dport 99999",
			`x.rules:1: --dport: port "99999" is not a number from 0 to 65535`},
		{"service name", "-A INPUT -p tcp --dport http",
			`x.rules:1: --dport: port "http": service names are not supported, use the number`},
		{"reversed port range", "-A INPUT -p udp --sport 2000:1000",
			`x.rules:1: --sport: range "2000:1000" is reversed (the first value is greater than the second)`},
		{"too many multiports", "-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16",
			`x.rules:1: --dports: too many ports (at most 15; a range counts as two)`},
		{"unknown state", "-A INPUT -m conntrack --ctstate NEWW",
			`x.rules:1: --ctstate: unknown state "NEWW" (did you mean "NEW"?) (want NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED)`},
		{"unknown icmp type", "-A INPUT -p icmp --icmp-type echo-requets",
			`x.rules:1: --icmp-type: unknown type "echo-requets" (did you mean "echo-request"?)`},
		{"bad address", "-A INPUT -s 10.0.0.300",
			`x.rules:1: -s: "10.0.0.300" is not an IP address`},
		{"host name", "-A INPUT -d example.com",
			`x.rules:1: -d: "example.com" is not an IP address (host names are not supported)`},
		{"interface name too long", "-A INPUT -i this-is-far-too-long",
			`x.rules:1: -i: interface name "this-is-far-too-long" is longer than 15 characters`},
		{"log prefix too long", "-A INPUT -j LOG --log-prefix 123456789012345678901234567890",
			`x.rules:1: --log-prefix: "123456789012345678901234567890" is longer than 29 bytes`},
		{"log level", "-A INPUT -j LOG --log-level loud",
			`x.rules:1: --log-level: unknown level "loud" (want 0-7 or emerg, alert, crit, error, warning, notice, info, debug)`},
		{"limit unit", "-A INPUT -m limit --limit 5/fortnight",
			`x.rules:1: --limit: unknown unit "fortnight" (want second, minute, hour or day)`},
		{"limit overflow", "-A INPUT -m limit --limit 1/day",
			`x.rules:1: -m limit: --limit 1/day with --limit-burst 5 overflows the kernel's token bucket (Linux refuses it): lower the burst or raise the rate`},
		{"limit too fast", "-A INPUT -m limit --limit 10001/s",
			`x.rules:1: --limit: rate "10001/s" is too fast (at most 10000/second)`},
		{"mac address", "-A INPUT -m mac --mac-source 00:11:22:33:44",
			`x.rules:1: --mac-source: "00:11:22:33:44" is not a MAC address (want XX:XX:XX:XX:XX:XX)`},
		{"reversed iprange", "-A INPUT -m iprange --src-range 10.0.0.9-10.0.0.1",
			`x.rules:1: --src-range: range "10.0.0.9-10.0.0.1" is reversed (the first value is greater than the second)`},
		{"mark mask", "-A INPUT -m mark --mark 0x1/xyz",
			`x.rules:1: --mark: mask "xyz" is not a 32-bit number`},
		{"unknown protocol", "-A INPUT -p tpc",
			`x.rules:1: -p: unknown protocol "tpc" (did you mean "tcp"?) (want a number or tcp, udp, icmp, icmpv6, all, ...)`},

		// Matches and targets as a whole.
		{"unknown match module", "-A INPUT -m mulitport --dports 80",
			`x.rules:1: unsupported match module "mulitport" (did you mean "multiport"?); supported: comment, conntrack, icmp, icmp6, iprange, length, limit, mac, mark, multiport, state, statistic, tcp, udp`},
		{"multiport without protocol", "-A INPUT -m multiport --dports 80,443",
			`x.rules:1: -m multiport needs -p tcp, -p udp, -p udplite, -p sctp or -p dccp`},
		{"explicit tcp without protocol", "-A INPUT -m tcp --dport 80",
			`x.rules:1: -m tcp needs -p tcp`},
		{"comment without --comment", "-A INPUT -m comment -j ACCEPT",
			`x.rules:1: -m comment needs --comment`},
		{"statistic without probability", "-A INPUT -m statistic --mode random",
			`x.rules:1: --mode random needs --probability`},
		{"statistic nth without --packet", "-A INPUT -m statistic --mode nth --every 2",
			`x.rules:1: --mode nth needs --every and --packet`},
		{"statistic packet", "-A INPUT -m statistic --mode nth --every 2 --packet 2",
			`x.rules:1: --packet 2 must be less than --every 2`},
		{"unknown target", "-A INPUT -j NOSUCHTARGET",
			`x.rules:1: no chain or supported target named "NOSUCHTARGET" in table "filter"; targets: ` + allTargets},
		{"target in lower case", "-A INPUT -j accept",
			`x.rules:1: no chain or supported target named "accept" in table "filter" (did you mean "ACCEPT"?); targets: ` + allTargets},
		{"unsupported target with options", "-A FORWARD -p tcp -j TCPMSS --clamp-mss-to-pmtu",
			`x.rules:1: no chain or supported target named "TCPMSS"; targets: ` + allTargets},
		{"missing chain, with a suggestion", "-N web\n-A INPUT -j wbe",
			`x.rules:2: no chain or supported target named "wbe" in table "filter" (did you mean "web"?); targets: ` + allTargets},
		{"jump to a built-in chain", "-A INPUT -j OUTPUT",
			`x.rules:1: can't jump to built-in chain "OUTPUT"`},
		{"goto a verdict", "-A INPUT -g ACCEPT",
			`x.rules:1: -g needs a user-defined chain, not ACCEPT`},
		{"reject tcp-reset without tcp", "-A INPUT -p udp -j REJECT --reject-with tcp-reset",
			`x.rules:1: --reject-with tcp-reset needs -p tcp`},
		{"unknown reject reply", "-A INPUT -j REJECT --reject-with icmp-port-unreachabel",
			`x.rules:1: --reject-with: unknown reply "icmp-port-unreachabel" (did you mean "icmp-port-unreachable"?) (want icmp-net-unreachable, icmp-host-unreachable, icmp-proto-unreachable, icmp-port-unreachable, icmp-net-prohibited, icmp-host-prohibited, icmp-admin-prohibited, icmp6-no-route, icmp6-adm-prohibited, icmp6-addr-unreachable, icmp6-port-unreachable, tcp-reset)`},
		{"snat without --to-source", "-t nat -A POSTROUTING -j SNAT",
			`x.rules:1: -j SNAT needs --to-source`},
		{"dnat port without protocol", "-t nat -A PREROUTING -j DNAT --to-destination 10.0.0.1:80",
			`x.rules:1: --to-destination 10.0.0.1:80: mapping ports needs -p tcp, -p udp, -p sctp, -p dccp or -p icmp`},
		{"IPv4 address in brackets", "-t nat -A PREROUTING -p tcp -j DNAT --to-destination [10.0.0.1]:80",
			`x.rules:1: --to-destination: brackets are for IPv6 addresses: write 10.0.0.1:80`},
		{"-o in a user chain called PREROUTING, as iptables checks names", "-N PREROUTING\n-A PREROUTING -o eth0",
			`x.rules:2: -o can't be used in the PREROUTING chain: packets there have no output interface yet`},
		{"redirect port range syntax", "-t nat -A PREROUTING -p tcp -j REDIRECT --to-ports 80:90",
			`x.rules:1: --to-ports: write a port range as P-Q, not P:Q`},
		{"mark target without option", "-t mangle -A PREROUTING -j MARK",
			`x.rules:1: -j MARK needs --set-mark, --set-xmark, --and-mark, --or-mark or --xor-mark`},
		{"two mark operations", "-t mangle -A PREROUTING -j MARK --set-mark 1 --or-mark 2",
			`x.rules:1: --set-mark and --or-mark can't be used together`},

		// Placement, as Linux checks it when loading a table.
		{"masquerade in filter", "-A INPUT -j MASQUERADE",
			`x.rules:1: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)`},
		{"masquerade in PREROUTING", "-t nat -A PREROUTING -j MASQUERADE",
			`x.rules:1: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)`},
		{"snat in OUTPUT", "-t nat -A OUTPUT -j SNAT --to-source 10.0.0.1",
			`x.rules:1: SNAT is only valid in the nat table's POSTROUTING and INPUT chains (and chains called from them)`},
		{"dnat in POSTROUTING", "-t nat -A POSTROUTING -j DNAT --to-destination 10.0.0.1",
			`x.rules:1: DNAT is only valid in the nat table's PREROUTING and OUTPUT chains (and chains called from them)`},
		{"dnat in mangle", "-t mangle -A PREROUTING -j DNAT --to-destination 10.0.0.1",
			`x.rules:1: DNAT is only valid in the nat table's PREROUTING and OUTPUT chains (and chains called from them)`},
		{"redirect in nat INPUT", "-t nat -A INPUT -p tcp -j REDIRECT",
			`x.rules:1: REDIRECT is only valid in the nat table's PREROUTING and OUTPUT chains (and chains called from them)`},
		{"reject in PREROUTING", "-t raw -A PREROUTING -j REJECT",
			`x.rules:1: REJECT is only valid in the filter table's INPUT, FORWARD and OUTPUT chains (and chains called from them)`},
		{"reject in mangle INPUT", "-t mangle -A INPUT -j REJECT",
			`x.rules:1: REJECT is only valid in the filter table's INPUT, FORWARD and OUTPUT chains (and chains called from them)`},
		{"drop in nat", "-t nat -A PREROUTING -p tcp -j DROP",
			`x.rules:1: DROP is not allowed in the nat table: it is not intended for filtering (use the filter table)`},
		{"drop policy in nat", "-t nat -P POSTROUTING DROP",
			`x.rules:1: DROP is not allowed in the nat table: it is not intended for filtering (use the filter table)`},
		{"mac in OUTPUT", "-A OUTPUT -m mac --mac-source 00:11:22:33:44:55 -j DROP",
			`x.rules:1: -m mac is only valid in the PREROUTING, INPUT and FORWARD chains (and chains called from them)`},
		{"-o in INPUT", "-A INPUT -o eth0 -j ACCEPT",
			`x.rules:1: -o can't be used in the INPUT chain: packets there have no output interface yet`},
		{"-i in POSTROUTING", "-t nat -A POSTROUTING ! -i eth0 -j MASQUERADE",
			`x.rules:1: -i can't be used in the POSTROUTING chain: Linux gives packets there no input interface`},
		{"masquerade through a user chain", "-t nat -N masq\n-t nat -A PREROUTING -j masq\n-t nat -A masq -j MASQUERADE",
			`x.rules:3: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it); chain "masq" is reached from PREROUTING (jump at x.rules:2)`},
		{"mac two jumps away", "-N a\n-N b\n-A a -j b\n-A b -m mac --mac-source 00:11:22:33:44:55\n-A INPUT -j a\n-A OUTPUT -j a",
			`x.rules:4: -m mac is only valid in the PREROUTING, INPUT and FORWARD chains (and chains called from them); chain "b" is reached from OUTPUT (jump at x.rules:3)`},
		{"reject through goto", "-N r\n-A r -j REJECT\n-A INPUT -g r\n-t raw -N r\n-t raw -A r -j REJECT",
			`x.rules:5: REJECT is only valid in the filter table's INPUT, FORWARD and OUTPUT chains (and chains called from them)`},
		{"loop", "-N a\n-N b\n-A a -j b\n-A b -j a\n-A INPUT -j a",
			`x.rules:4: jump to chain "a" closes a loop: a -> b -> a`},
		{"self loop", "-N a\n-A a -p tcp -j a\n-A FORWARD -j a",
			`x.rules:2: jump to chain "a" closes a loop: a -> a`},

		// Families.
		{"icmp in IPv6", "ip6tables -A INPUT -p icmp -j ACCEPT",
			`x.rules:1: -p icmp in an IPv6 rule: ICMP for IPv6 is -p icmpv6`},
		{"icmpv6 in IPv4", "iptables -A INPUT -p icmpv6 -j ACCEPT",
			`x.rules:1: -p icmpv6 in an IPv4 rule: ICMP for IPv4 is -p icmp`},
		{"IPv4 address in ip6tables", "ip6tables -A INPUT -s 10.0.0.1 -j ACCEPT",
			`x.rules:1: IPv4 address "10.0.0.1" in an IPv6 rule`},
		{"mixed addresses", "-A INPUT -s 10.0.0.1 -d 2001:db8::1",
			`x.rules:1: IPv6 address "2001:db8::1" in an IPv4 rule`},
		{"-6 in iptables", "iptables -6 -A INPUT",
			`x.rules:1: -6 in an IPv4 rule`},
		{"icmp module in IPv6", "ip6tables -A INPUT -m icmp --icmp-type 8",
			`x.rules:1: -m icmp in an IPv6 rule (use -m icmp6)`},
		{"IPv4 reject in IPv6", "ip6tables -A INPUT -j REJECT --reject-with icmp-host-unreachable",
			`x.rules:1: --reject-with icmp-host-unreachable in an IPv6 rule`},
		{"IPv6 NAT address in IPv4", "iptables -t nat -A PREROUTING -j DNAT --to-destination 2001:db8::1",
			`x.rules:1: IPv6 address "2001:db8::1" in an IPv4 rule`},
		{"chain only in one family", "iptables -N web\n-A INPUT -j web",
			`x.rules:2: no chain or supported target named "web" in table "filter"; targets: ` + allTargets + ` (IPv6)`},

		// Commands.
		{"unknown table", "-t nta -A PREROUTING -j ACCEPT",
			`x.rules:1: unknown table "nta" (did you mean "nat"?) (supported: filter, mangle, nat, raw)`},
		{"unknown chain", "-A input -j ACCEPT",
			`x.rules:1: no chain "input" in table "filter" (did you mean "INPUT"?)`},
		{"chain of another table", "-A PREROUTING -j ACCEPT",
			`x.rules:1: no chain "PREROUTING" in table "filter"`},
		{"bad policy", "-P INPUT REJECT",
			`x.rules:1: invalid policy "REJECT" for chain "INPUT": want ACCEPT or DROP`},
		{"policy of a user chain", "-N web\n-P web DROP",
			`x.rules:2: chain "web" is a user chain: only built-in chains have a policy`},
		{"chain named like a target", "-N ACCEPT",
			`x.rules:1: -N: chain name "ACCEPT" is the name of a target`},
		{"chain name too long", "-N a-chain-name-that-is-far-too-long",
			`x.rules:1: -N: chain name "a-chain-name-that-is-far-too-long" is longer than 28 characters`},
		{"chain exists", "-N web\n-N web",
			`x.rules:2: chain "web" already exists in table "filter"`},
		{"delete a referenced chain", "-N web\n-A INPUT -j web\n-X web",
			`x.rules:3: can't delete chain "web": the rule at x.rules:2 in chain "INPUT" jumps to it`},
		{"delete a chain with rules", "-N web\n-A web -j ACCEPT\n-X web",
			`x.rules:3: can't delete chain "web": it is not empty (flush it first with -F web)`},
		{"delete a built-in chain", "-X INPUT",
			`x.rules:1: can't delete built-in chain "INPUT"`},
		{"delete a missing rule", "-A INPUT -p tcp -j ACCEPT\n-D INPUT -p udp -j ACCEPT",
			`x.rules:2: -D: no rule "-p udp -j ACCEPT" in chain "INPUT"`},
		{"delete past the end", "-A INPUT -j ACCEPT\n-D INPUT 2",
			`x.rules:2: -D INPUT 2: chain "INPUT" has only 1 rule`},
		{"insert past the end", "-I INPUT 3 -j ACCEPT",
			`x.rules:1: -I INPUT 3: chain "INPUT" has only 0 rules`},
		{"rule number zero", "-I INPUT 0 -j ACCEPT",
			`x.rules:1: -I: invalid rule number "0" (rules count from 1)`},
		{"address lists too long", "-A INPUT -s " + strings.Repeat("10.0.0.1,", 32) + "10.0.0.2 -d " + strings.Repeat("10.0.0.3,", 31) + "10.0.0.4",
			`x.rules:1: the -s and -d lists make 1056 rules: at most 1024 per command`},
		{"two commands", "-A INPUT -A OUTPUT",
			`x.rules:1: -A: one command per line (this one already has -A)`},
		{"no command", "-p tcp -j ACCEPT",
			`x.rules:1: no command: want -A, -I, -D, -P, -N, -F, -X or -Z`},
		{"rule option with -N", "-N web -p tcp",
			`x.rules:1: -p can't be used with -N`},
		{"list command", "iptables -L",
			`x.rules:1: -L (list) is not supported: only -A, -I, -D, -P, -N, -F, -X and -Z change rules`},
		{"not iptables", "echo hello",
			`x.rules:1: "echo" is not an iptables command: want iptables, ip6tables or an option such as -A`},
		{"iptables misspelt", "iptable -A INPUT -j ACCEPT",
			`x.rules:1: "iptable" is not an iptables command: want iptables, ip6tables or an option such as -A (did you mean "iptables"?)`},

		// Syntax.
		{"unterminated quote", `-A INPUT -m comment --comment "oops`,
			`x.rules:1: unterminated double quote`},
		{"shell variable", `-A INPUT -i $WAN -j ACCEPT`,
			`x.rules:1: shell expansion "$WAN" is not supported: write the value itself`},
		{"shell operator", `iptables -A INPUT -j ACCEPT || true`,
			`x.rules:1: shell operator "|" is not supported: write one iptables command per line`},
		{"inverted command", "! -A INPUT",
			`x.rules:1: "!" can't be used with -A`},
		{"double !", "-A INPUT ! ! -s 10.0.0.1",
			`x.rules:1: "!" given twice`},
		{"trailing !", "-A INPUT -s 10.0.0.1 !",
			`x.rules:1: "!" must be followed by an option`},
		{"! before -m", "-A INPUT ! -m comment --comment x",
			`x.rules:1: "!" can't be used with -m`},
		{"! after the option", "-A INPUT -s ! 10.0.0.1",
			`x.rules:1: -s: put "!" before the option: "! -s ADDR"`},
		{"! after -p", "-A INPUT -p ! tcp",
			`x.rules:1: -p: put "!" before the option: "! -p PROTO"`},
		{"! after a match option", "-A INPUT -p tcp --dport ! 22",
			`x.rules:1: --dport: put "!" before the option: "! --dport VALUE"`},
		{"! with an address list", "-A INPUT ! -s 10.0.0.1,10.0.0.2",
			`x.rules:1: "!" can't be used with several addresses in -s`},
		{"! -p all", "-A INPUT ! -p all",
			`x.rules:1: ! -p all would never match`},
		{"stray argument", "-A INPUT -j ACCEPT extra",
			`x.rules:1: unexpected argument "extra"`},
		{"save line in a command file", "-A INPUT -j ACCEPT\nCOMMIT",
			`x.rules:2: "COMMIT" belongs to iptables-save format, but this file's first line is a command`},

		// iptables-save format.
		{"rule after COMMIT", "*filter\nCOMMIT\n-A INPUT -j ACCEPT",
			`x.rules:3: "-A INPUT -j ACCEPT" is outside a table: a *table line (such as *filter) must come first`},
		{"missing COMMIT", "*filter\n:INPUT DROP [0:0]\n-A INPUT -j ACCEPT",
			`x.rules:1: table "filter" has no COMMIT`},
		{"table inside a table", "*filter\n*nat\nCOMMIT",
			`x.rules:2: *nat: table "filter" (line 1) has no COMMIT`},
		{"unknown save table", "*security\n-A INPUT -j ACCEPT\nCOMMIT",
			`x.rules:1: unknown table "security" (supported: filter, mangle, nat, raw)`},
		{"policy of a declared user chain", "*filter\n:web ACCEPT [0:0]\nCOMMIT",
			`x.rules:2: chain "web" is a user chain: its policy must be "-", not "ACCEPT"`},
		{"bad built-in policy", "*filter\n:INPUT REJECT [0:0]\nCOMMIT",
			`x.rules:2: invalid policy "REJECT" for chain "INPUT": want ACCEPT or DROP`},
		{"bad counters", "*filter\n:INPUT ACCEPT [x]\nCOMMIT",
			`x.rules:2: chain "INPUT": counters "[x]" are not [packets:bytes]`},
		{"chain declared twice", "*filter\n:web - [0:0]\n:web - [0:0]\nCOMMIT",
			`x.rules:3: chain "web" is declared twice`},
		{"-t in a save file", "*filter\n-t nat -A POSTROUTING -j MASQUERADE\nCOMMIT",
			`x.rules:2: -t can't be used in an iptables-save file: the table comes from the *table line`},
		{"single quotes in a save file", "*filter\n-A INPUT -m comment --comment 'hi there' -j ACCEPT\nCOMMIT",
			`x.rules:2: single quotes do not quote in iptables-save format: use double quotes`},
		{"COMMIT alone", "*filter\nCOMMIT\nCOMMIT",
			`x.rules:3: COMMIT without a *table line before it`},
		{"IPv4 address in an ip6tables-save file", "# Generated by ip6tables-save v1.8.7\n*filter\n-A INPUT -s 10.0.0.1 -j DROP\nCOMMIT",
			`x.rules:3: IPv4 address "10.0.0.1" in an IPv6 rule`},
		{"save file with a MASQUERADE in filter", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j MASQUERADE\nCOMMIT",
			`x.rules:3: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)`},

		// Several at once, in input order.
		{"all errors, in order", "-A INPUT -p tcp --dprot 80\n-N a\n-A a -j MASQUERADE\n-A INPUT -j a\n-A FORWARD -j nowhere",
			"x.rules:1: unknown option \"--dprot\" (did you mean \"--dport\"?)\n" +
				"x.rules:3: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)\n" +
				"x.rules:5: no chain or supported target named \"nowhere\" in table \"filter\"; targets: " + allTargets},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("duplicate test name %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			var rs Ruleset
			addErr := rs.AddFile("x.rules", []byte(tt.input), ParseOptions{})
			err := rs.Validate()
			if err == nil {
				t.Fatalf("no error, want %s", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not an ErrorList: %T", err)
			}
			if list[0].Pos.Source != "x.rules" || list[0].Pos.Line == 0 {
				t.Errorf("position %v", list[0].Pos)
			}
			if addErr != nil && !strings.HasPrefix(err.Error(), addErr.Error()[:strings.Index(addErr.Error(), ":")]) {
				t.Errorf("AddFile error %q is not among Validate's", addErr)
			}
		})
	}
	if len(tests) < 40 {
		t.Errorf("only %d cases", len(tests))
	}
}

// TestCommandErrorPositions checks that command-line rules are reported as
// source[i], and that the error names the token at fault.
func TestCommandErrorPositions(t *testing.T) {
	var rs Ruleset
	err := rs.AddCommands("--rule", []string{
		"-t nat -A POSTROUTING -o eth1 -j MASQUERADE",
		"-A INPUT -p tcp --dprot 80",
		"-t nat -A PREROUTING -j MASQUERADE",
		"",
	}, ParseOptions{})
	want := "--rule[1]: unknown option \"--dprot\" (did you mean \"--dport\"?)\n--rule[3]: empty command"
	if err == nil || err.Error() != want {
		t.Fatalf("AddCommands: got %v\nwant %s", err, want)
	}
	err = rs.Validate()
	want = "--rule[1]: unknown option \"--dprot\" (did you mean \"--dport\"?)\n" +
		"--rule[2]: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)\n" +
		"--rule[3]: empty command"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate: got %v\nwant %s", err, want)
	}
	list := err.(ErrorList)
	if list[0].Token != "--dprot" || list[1].Token != "MASQUERADE" {
		t.Errorf("tokens %q, %q", list[0].Token, list[1].Token)
	}
}
