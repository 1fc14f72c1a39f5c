package tests

// kdRuleSets are the rule sets of the differential test (kerneldiff_test.go)
// and their probes, each with the outcome the kernel is expected to give
// (see kdProbe for the notation). Addresses:
//
//	client (C, link c0 ↔ router eth0): 192.0.2.2, .3, .50, .200; 2001:db8:1::2, ::50
//	server (S, link s1 ↔ router eth1): 198.51.100.2, .3; 2001:db8:2::2, ::3
//	server (S, link s2 ↔ router wan0): 203.0.113.2; 2001:db8:3::2
//	router: .1 / ::1 of each network
//
// S listens on TCP 80, 443, 8080 and 8081 and echoes UDP 7; other ports
// are closed. Within a rule set every probe is a flow of its own (unique
// ports or echo id), except where a probe is the reply direction of an
// earlier one on purpose.
var kdRuleSets = []kdRuleSet{
	{
		// No rules: nfpipe's router forwards plain IPv4 on its fast
		// path (netstack/fastpath.go), not through gVisor; it must
		// still do what the kernel does. IPv6 and what the fast path
		// leaves out (proto 253's ICMP answer from S comes back on it
		// too) are in the same run.
		name: "no-rules",
		probes: []kdProbe{
			{"tcp 192.0.2.2:40001 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:40002 > 198.51.100.2:81 S", "fwd/rst"},
			{"udp 192.0.2.2:40003 > 198.51.100.2:7", "fwd/udp-reply"},
			{"udp 192.0.2.3:40004 > 203.0.113.2:9", "fwd/unreach-port@dst"},
			{"icmp 192.0.2.2 > 198.51.100.2 echo", "fwd/echo-reply"},
			{"icmp 192.0.2.50 > 203.0.113.2 echo", "fwd/echo-reply"},
			{"proto253 192.0.2.2 > 198.51.100.2", "fwd/unreach-proto@dst"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo", "fwd/echo-reply"},
		},
	},
	{
		name: "addresses-protocols",
		v4: `
*filter
:FORWARD DROP [0:0]
-A FORWARD -i eth1 -j ACCEPT
-A FORWARD -i wan0 -j ACCEPT
-A FORWARD -p tcp -s 192.0.2.0/28 -d 198.51.100.2 -j ACCEPT
-A FORWARD -p udp ! -s 192.0.2.2 -j ACCEPT
-A FORWARD -p icmp ! -d 198.51.100.0/24 -j ACCEPT
-A FORWARD -p 253 -d 198.51.100.2/32 -j ACCEPT
-A FORWARD -p all -s 192.0.2.200 -j ACCEPT
COMMIT
`,
		v6: `
*filter
:FORWARD DROP [0:0]
-A FORWARD -i eth1 -j ACCEPT
-A FORWARD -i wan0 -j ACCEPT
-A FORWARD -p icmpv6 -s 2001:db8:1::/64 -d 2001:db8:2::2 -j ACCEPT
-A FORWARD -p tcp ! -d 2001:db8:2::/64 -j ACCEPT
-A FORWARD -p 253 -j ACCEPT
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:41001 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.50:41002 > 198.51.100.2:80 S", "-/-"}, // source outside the /28
			{"tcp 192.0.2.2:41003 > 198.51.100.3:80 S", "-/-"},  // not the host -d names
			{"udp 192.0.2.2:41004 > 198.51.100.2:7", "-/-"},     // ! -s
			{"udp 192.0.2.3:41005 > 198.51.100.2:7", "fwd/udp-reply"},
			{"icmp 192.0.2.2 > 203.0.113.2 echo", "fwd/echo-reply"}, // ! -d CIDR
			{"icmp 192.0.2.2 > 198.51.100.2 echo", "-/-"},
			{"proto253 192.0.2.2 > 198.51.100.2", "fwd/unreach-proto@dst"},
			{"udp 192.0.2.200:41009 > 198.51.100.2:9", "fwd/unreach-port@dst"}, // -p all -s host
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo", "fwd/echo-reply"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::3 echo", "-/-"},
			{"tcp [2001:db8:1::2]:41012 > [2001:db8:2::2]:80 S", "-/-"},
			{"tcp [2001:db8:1::2]:41013 > [2001:db8:3::2]:80 S", "fwd/synack"},
			{"proto253 2001:db8:1::2 > 2001:db8:2::2", "fwd/paramprob6/1@dst"},
		},
	},
	{
		name: "interfaces",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -o wan+ -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 ! -o eth1 -p udp -j REJECT --reject-with icmp-net-unreachable
-A FORWARD ! -i eth+ -p icmp -j DROP
-A FORWARD -i eth+ ! -o eth0 -p icmp -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -o wan+ -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD ! -i eth0 -o eth0 -p icmpv6 --icmpv6-type echo-request -j DROP
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:42001 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:42002 > 203.0.113.2:80 S", "-/rst"},
			{"udp 192.0.2.2:42003 > 203.0.113.2:7", "-/unreach-net@router"},
			{"udp 192.0.2.2:42004 > 198.51.100.2:7", "fwd/udp-reply"},
			{"icmp 203.0.113.2 > 192.0.2.2 echo", "-/-"}, // in wan0: ! -i eth+
			{"icmp 198.51.100.2 > 192.0.2.2 echo", "fwd/-"},
			{"icmp 192.0.2.2 > 198.51.100.2 echo", "-/unreach-admin@router"},
			{"tcp [2001:db8:1::2]:42008 > [2001:db8:3::2]:80 S", "-/rst"},
			{"tcp [2001:db8:1::2]:42009 > [2001:db8:2::2]:80 S", "fwd/synack"},
			{"icmp6 2001:db8:2::2 > 2001:db8:1::2 echo", "-/-"},
			{"icmp6 2001:db8:1::2 > 2001:db8:3::2 echo", "fwd/echo-reply"},
		},
	},
	{
		name: "ports",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -p tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -p tcp --sport 1000:1999 -j DROP
-A FORWARD -p tcp --dport 8000:8999 ! --sport 40000:49999 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p udp ! --dport 7 -j REJECT --reject-with icmp-host-unreachable
-A FORWARD -p udp --sport 53 -j DROP
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p tcp ! --dport 80 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p udp --sport 2000:2999 --dport 7 -j DROP
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:43001 > 198.51.100.2:22 S", "-/unreach-port@router"},
			{"tcp 192.0.2.2:1500 > 198.51.100.2:80 S", "-/-"},
			{"tcp 192.0.2.2:43003 > 198.51.100.2:8080 S", "fwd/synack"},
			{"tcp 192.0.2.2:50004 > 198.51.100.2:8080 S", "-/rst"},
			{"tcp 192.0.2.2:50005 > 198.51.100.2:80 S", "fwd/synack"},
			{"udp 192.0.2.2:43006 > 198.51.100.2:9", "-/unreach-host@router"},
			{"udp 192.0.2.2:43007 > 198.51.100.2:7", "fwd/udp-reply"},
			{"udp 192.0.2.2:53 > 198.51.100.2:7", "-/-"},
			{"udp 198.51.100.2:54 > 192.0.2.2:43009", "fwd/-"},
			{"udp 192.0.2.2:0 > 198.51.100.2:7", "fwd/-"}, // source port 0: forwarded as is (the server cannot answer it)
			{"tcp [2001:db8:1::2]:43010 > [2001:db8:2::2]:443 S", "-/rst"},
			{"tcp [2001:db8:1::2]:43011 > [2001:db8:2::2]:80 S", "fwd/synack"},
			{"udp [2001:db8:1::2]:2500 > [2001:db8:2::2]:7", "-/-"},
			{"udp [2001:db8:1::2]:3500 > [2001:db8:2::2]:7", "fwd/udp-reply"},
		},
	},
	{
		name: "multiport",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p tcp -m multiport --dports 22,23,8000:8100 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p udp -m multiport --sports 5000,6000:6010 -j DROP
-A FORWARD -i eth0 -p udp -m multiport --ports 9,19 -j REJECT
-A FORWARD -i eth0 -p tcp -m multiport ! --dports 80,443,8080 -j DROP
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p udp -m multiport --dports 7,9 -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:44001 > 198.51.100.2:23 S", "-/rst"},
			{"tcp 192.0.2.2:44002 > 198.51.100.2:8080 S", "-/rst"},
			{"tcp 192.0.2.2:44003 > 198.51.100.2:443 S", "fwd/synack"},
			{"tcp 192.0.2.2:44004 > 198.51.100.2:25 S", "-/-"},
			{"udp 192.0.2.2:6005 > 198.51.100.2:7", "-/-"},
			{"udp 192.0.2.2:44006 > 198.51.100.2:19", "-/unreach-port@router"},
			{"udp 192.0.2.2:9 > 198.51.100.2:7", "-/unreach-port@router"},
			{"udp 192.0.2.2:44008 > 198.51.100.2:7", "fwd/udp-reply"},
			{"udp [2001:db8:1::2]:44009 > [2001:db8:2::2]:9", "-/unreach6-adm@router"},
			{"udp [2001:db8:1::2]:44010 > [2001:db8:2::2]:53", "fwd/unreach6-port@dst"},
		},
	},
	{
		name: "conntrack-state",
		v4: `
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j REJECT --reject-with icmp-admin-prohibited
-A FORWARD -m state --state ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED -j ACCEPT
-A FORWARD -i eth0 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`,
		v6: `
*filter
:FORWARD DROP [0:0]
-A FORWARD -m state --state INVALID -j DROP
-A FORWARD -m state --state RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -m state --state NEW -j ACCEPT
-A FORWARD -i eth1 -p tcp -j REJECT --reject-with tcp-reset
COMMIT
`,
		probes: []kdProbe{
			{"udp 192.0.2.2:45001 > 198.51.100.2:7", "fwd/udp-reply"},
			{"udp 198.51.100.2:7 > 192.0.2.2:45001", "fwd/-"}, // the reply direction of the flow above: ESTABLISHED
			{"udp 198.51.100.2:7 > 192.0.2.2:45003", "-/-"},   // NEW from outside
			{"udp 192.0.2.2:45004 > 198.51.100.2:9", "fwd/unreach-port@dst"},
			{"tcp 192.0.2.2:45005 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:45006 > 198.51.100.2:80 SA", "-/unreach-admin@router"},     // no connection: INVALID
			{"icmp 198.51.100.2 > 192.0.2.2 unreach-port quote=45007", "-/-"},          // an error about no flow: INVALID, and no ICMP about ICMP errors
			{"tcp 192.0.2.2:45008 > 198.51.100.2:80 A", "fwd/rst"},                     // mid-stream pickup (nf_conntrack_tcp_loose): NEW
			{"tcp 192.0.2.2:45009 > 198.51.100.2:80 R", "-/unreach-admin@router"},      // RST of no connection: INVALID
			{"udp [2001:db8:1::2]:45010 > [2001:db8:2::2]:9", "fwd/unreach6-port@dst"}, // RELATED
			{"tcp [2001:db8:2::2]:80 > [2001:db8:1::2]:45011 S", "-/rst"},
			{"tcp [2001:db8:2::2]:80 > [2001:db8:1::2]:45012 SA", "-/-"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo", "fwd/echo-reply"},
		},
	},
	{
		name: "icmp-types-input",
		v4: `
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p icmp --icmp-type echo-request -s 192.0.2.0/30 -j ACCEPT
-A FORWARD -p icmp --icmp-type 8/0 -d 198.51.100.3 -j REJECT --reject-with icmp-host-unreachable
-A FORWARD -p icmp --icmp-type destination-unreachable -j DROP
-A OUTPUT -p icmp --icmp-type echo-reply -d 192.0.2.3 -j DROP
-A OUTPUT -p icmp --icmp-type destination-unreachable -d 192.0.2.3 -j DROP
COMMIT
`,
		v6: `
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A INPUT -p icmpv6 --icmpv6-type echo-request -j DROP
-A FORWARD -p icmpv6 --icmpv6-type destination-unreachable -j DROP
-A FORWARD -p icmpv6 --icmpv6-type echo-request -d 2001:db8:2::3 -j REJECT --reject-with icmp6-addr-unreachable
COMMIT
`,
		probes: []kdProbe{
			{"icmp 192.0.2.2 > 192.0.2.1 echo", "-/echo-reply"},
			{"icmp 192.0.2.50 > 192.0.2.1 echo", "-/-"},
			{"icmp 198.51.100.2 > 198.51.100.1 echo", "-/-"},
			{"icmp 192.0.2.3 > 192.0.2.1 echo", "-/-"}, // INPUT accepts it; OUTPUT drops the reply
			{"icmp 192.0.2.2 > 198.51.100.3 echo", "-/unreach-host@router"},
			{"icmp 192.0.2.3 > 198.51.100.3 echo", "-/-"}, // what REJECT sends goes through OUTPUT too
			{"icmp 192.0.2.2 > 198.51.100.2 echo", "fwd/echo-reply"},
			{"udp 192.0.2.2:46006 > 198.51.100.2:9", "fwd/-"},
			{"icmp 192.0.2.2 > 198.51.100.2 unreach-port quote=46007", "-/-"},
			{"icmp6 2001:db8:1::2 > 2001:db8:1::1 echo", "-/-"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::3 echo", "-/unreach6-addr@router"},
			{"udp [2001:db8:1::2]:46010 > [2001:db8:2::2]:9", "fwd/-"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo", "fwd/echo-reply"},
		},
	},
	{
		name: "tcp-flags",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p tcp --tcp-flags SYN,ACK,FIN,RST RST -j DROP
-A FORWARD -i eth0 -p tcp --tcp-flags SYN,FIN SYN,FIN -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p tcp ! --syn --dport 443 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -i eth0 -p tcp --syn --dport 8080 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p tcp --tcp-flags ALL NONE -j DROP
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p tcp --syn --dport 443 -j REJECT --reject-with tcp-reset
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:47001 > 198.51.100.2:80 R", "-/-"},
			{"tcp 192.0.2.2:47002 > 198.51.100.2:80 SF", "-/rst"},
			{"tcp 192.0.2.2:47003 > 198.51.100.2:443 A", "-/unreach-port@router"},
			{"tcp 192.0.2.2:47004 > 198.51.100.2:443 S", "fwd/synack"},
			{"tcp 192.0.2.2:47005 > 198.51.100.2:8080 S", "-/rst"},
			{"tcp 192.0.2.2:47006 > 198.51.100.2:8080 A", "fwd/rst"},
			{"tcp 192.0.2.2:47007 > 198.51.100.2:80 none", "-/-"},
			{"tcp 192.0.2.2:47008 > 198.51.100.2:80 RA", "fwd/-"},
			{"tcp [2001:db8:1::2]:47009 > [2001:db8:2::2]:443 S", "-/rst"},
			{"tcp [2001:db8:1::2]:47010 > [2001:db8:2::2]:443 A", "fwd/rst"},
		},
	},
	{
		name: "comment-limit-nth-log",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p udp --dport 7 -m comment --comment "echo is fine" -j LOG --log-prefix "kd-echo "
-A FORWARD -i eth0 -p udp --dport 7 -m limit --limit 1/min --limit-burst 2 -j ACCEPT
-A FORWARD -i eth0 -p udp --dport 7 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -i eth0 -p tcp --dport 80 -m statistic --mode nth --every 3 --packet 1 -j REJECT --reject-with tcp-reset
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p icmpv6 --icmpv6-type echo-request -m limit --limit 2/hour --limit-burst 1 -j ACCEPT
-A FORWARD -i eth0 -p icmpv6 --icmpv6-type echo-request -j DROP
COMMIT
`,
		logs: []string{"kd-echo"},
		probes: []kdProbe{
			{"udp 192.0.2.2:48001 > 198.51.100.2:7", "fwd/udp-reply"}, // LOG, then the limit's burst
			{"udp 192.0.2.2:48002 > 198.51.100.2:7", "fwd/udp-reply"},
			{"udp 192.0.2.2:48003 > 198.51.100.2:7", "-/unreach-port@router"}, // over the limit
			{"tcp 192.0.2.2:48004 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:48005 > 198.51.100.2:80 S", "-/rst"}, // the nth: packets 1, 4, ... of every 3 (from 0)
			{"tcp 192.0.2.2:48006 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:48007 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:48008 > 198.51.100.2:80 S", "-/rst"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo", "fwd/echo-reply"},
			{"icmp6 2001:db8:1::2 > 2001:db8:3::2 echo", "-/-"},
		},
	},
	{
		name: "iprange-mac-length",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -m iprange --src-range 192.0.2.40-192.0.2.60 -j REJECT --reject-with icmp-net-unreachable
-A FORWARD -i eth0 -p tcp -m iprange ! --dst-range 198.51.100.1-198.51.100.2 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -m mac ! --mac-source 02:0c:00:00:00:01 -j DROP
-A FORWARD -i eth0 -p udp -m length --length 100:65535 -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -m iprange --src-range 2001:db8:1::40-2001:db8:1::60 -j DROP
-A FORWARD -i eth0 -p udp -m length --length 0:60 -j REJECT --reject-with icmp6-port-unreachable
-A FORWARD -i eth0 -m mac --mac-source 02:0c:00:00:00:99 -j DROP
COMMIT
`,
		probes: []kdProbe{
			{"udp 192.0.2.50:49001 > 198.51.100.2:7", "-/unreach-net@router"},
			{"tcp 192.0.2.2:49002 > 198.51.100.3:80 S", "-/rst"},
			{"tcp 192.0.2.2:49003 > 198.51.100.2:80 S", "fwd/synack"},
			{"udp 192.0.2.2:49004 > 198.51.100.2:7 mac=02:0c:00:00:00:99", "-/-"},
			{"udp 192.0.2.2:49005 > 198.51.100.2:7 len=200", "-/unreach-admin@router"},
			{"udp 192.0.2.2:49006 > 198.51.100.2:7 len=16", "fwd/udp-reply"},          // 44 bytes: the frame is padded
			{"udp 192.0.2.2:49007 > 198.51.100.2:7 len=72", "-/unreach-admin@router"}, // exactly 100
			{"udp 192.0.2.2:49008 > 198.51.100.2:7 len=71", "fwd/udp-reply"},
			{"udp [2001:db8:1::50]:49009 > [2001:db8:2::2]:7", "-/-"},
			{"udp [2001:db8:1::2]:49010 > [2001:db8:2::2]:7 len=12", "-/unreach6-port@router"}, // exactly 60
			{"udp [2001:db8:1::2]:49011 > [2001:db8:2::2]:7 len=13", "fwd/udp-reply"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo mac=02:0c:00:00:00:99", "-/-"},
		},
	},
	{
		name: "reject-with",
		v4: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p udp --dport 1001 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -i eth0 -p udp --dport 1002 -j REJECT --reject-with icmp-host-unreachable
-A FORWARD -i eth0 -p udp --dport 1003 -j REJECT --reject-with icmp-net-unreachable
-A FORWARD -i eth0 -p udp --dport 1004 -j REJECT --reject-with icmp-admin-prohibited
-A FORWARD -i eth0 -p tcp --dport 1005 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p icmp -j REJECT
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i eth0 -p udp --dport 1001 -j REJECT --reject-with icmp6-port-unreachable
-A FORWARD -i eth0 -p udp --dport 1002 -j REJECT --reject-with icmp6-addr-unreachable
-A FORWARD -i eth0 -p udp --dport 1003 -j REJECT --reject-with icmp6-no-route
-A FORWARD -i eth0 -p udp --dport 1004 -j REJECT --reject-with icmp6-adm-prohibited
-A FORWARD -i eth0 -p tcp --dport 1005 -j REJECT --reject-with tcp-reset
-A FORWARD -i eth0 -p icmpv6 --icmpv6-type echo-request -j REJECT
COMMIT
`,
		probes: []kdProbe{
			{"udp 192.0.2.2:50001 > 198.51.100.2:1001", "-/unreach-port@router"},
			{"udp 192.0.2.2:50002 > 198.51.100.2:1002", "-/unreach-host@router"},
			{"udp 192.0.2.2:50003 > 198.51.100.2:1003", "-/unreach-net@router"},
			{"udp 192.0.2.2:50004 > 198.51.100.2:1004", "-/unreach-admin@router"},
			{"tcp 192.0.2.2:50005 > 198.51.100.2:1005 S", "-/rst"},
			{"tcp 192.0.2.2:50006 > 198.51.100.2:1005 PA len=20", "-/rst"},
			{"icmp 192.0.2.2 > 198.51.100.2 echo", "-/unreach-port@router"},
			{"udp 192.0.2.2:50008 > 198.51.100.2:1006", "fwd/unreach-port@dst"},
			{"udp [2001:db8:1::2]:50011 > [2001:db8:2::2]:1001", "-/unreach6-port@router"},
			{"udp [2001:db8:1::2]:50012 > [2001:db8:2::2]:1002", "-/unreach6-addr@router"},
			{"udp [2001:db8:1::2]:50013 > [2001:db8:2::2]:1003", "-/unreach6-noroute@router"},
			{"udp [2001:db8:1::2]:50014 > [2001:db8:2::2]:1004", "-/unreach6-adm@router"},
			{"tcp [2001:db8:1::2]:50015 > [2001:db8:2::2]:1005 S", "-/rst"},
			{"icmp6 2001:db8:1::2 > 2001:db8:2::2 echo", "-/unreach6-port@router"},
		},
	},
	{
		name: "chains-mark-policy",
		v4: `
*filter
:FORWARD DROP [0:0]
:tagged - [0:0]
:web - [0:0]
-A FORWARD -i eth1 -j ACCEPT
-A FORWARD -p tcp -j web
-A FORWARD -p udp --dport 5000:5999 -j MARK --set-mark 0x5
-A FORWARD -p udp -j tagged
-A FORWARD -p udp -j ACCEPT
-A tagged -m mark --mark 0x5 -j REJECT --reject-with icmp-port-unreachable
-A tagged -d 198.51.100.3 -m mark ! --mark 0x5 -j DROP
-A web -s 192.0.2.50 -j RETURN
-A web -p tcp --dport 80 -j LOG --log-prefix "kd-web "
-A web -p tcp --dport 80 -j ACCEPT
-A web -p tcp -j REJECT --reject-with tcp-reset
COMMIT
`,
		v6: `
*filter
:FORWARD ACCEPT [0:0]
:chk - [0:0]
-A FORWARD -i eth0 -j chk
-A chk -p tcp --dport 80 -j RETURN
-A chk -p tcp -j DROP
COMMIT
`,
		logs: []string{"kd-web"},
		probes: []kdProbe{
			{"tcp 192.0.2.2:51001 > 198.51.100.2:80 S", "fwd/synack"},
			{"tcp 192.0.2.2:51002 > 198.51.100.2:443 S", "-/rst"},
			{"tcp 192.0.2.50:51003 > 198.51.100.2:80 S", "-/-"}, // RETURN, then the policy
			{"udp 192.0.2.2:51004 > 198.51.100.2:5001", "-/unreach-port@router"},
			{"udp 192.0.2.2:51005 > 198.51.100.2:7", "fwd/udp-reply"},
			{"udp 192.0.2.2:51006 > 198.51.100.3:7", "-/-"},
			{"icmp 192.0.2.2 > 198.51.100.2 echo", "-/-"},
			{"tcp [2001:db8:1::2]:51008 > [2001:db8:2::2]:80 S", "fwd/synack"},
			{"tcp [2001:db8:1::2]:51009 > [2001:db8:2::2]:443 S", "-/-"},
		},
	},
	{
		name: "snat-masquerade",
		v4: `
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
-A POSTROUTING -o eth1 -p tcp -s 192.0.2.50 -j SNAT --to-source 198.51.100.1:2000
-A POSTROUTING -o eth1 -s 192.0.2.3 -j SNAT --to-source 198.51.100.9
COMMIT
`,
		v6: `
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
-A POSTROUTING -o eth1 -p udp -j SNAT --to-source [2001:db8:2::9]:3000
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:52001 > 203.0.113.2:80 S", "fwd[src=203.0.113.1]/synack"},
			{"udp 192.0.2.2:52002 > 203.0.113.2:7", "fwd[src=203.0.113.1]/udp-reply"},
			{"icmp 192.0.2.2 > 203.0.113.2 echo", "fwd[src=203.0.113.1]/echo-reply"},
			{"tcp 192.0.2.50:52004 > 198.51.100.2:80 S", "fwd[src=198.51.100.1:2000]/synack"},
			{"udp 192.0.2.3:52005 > 198.51.100.2:7", "fwd[src=198.51.100.9]/udp-reply"},
			{"udp 192.0.2.3:52006 > 198.51.100.2:9", "fwd[src=198.51.100.9]/unreach-port@dst"}, // the error's quote is translated back
			{"tcp 192.0.2.2:52007 > 198.51.100.2:80 S", "fwd/synack"},
			{"udp 192.0.2.2:800 > 203.0.113.2:7", "fwd[src=203.0.113.1]/udp-reply"},
			{"tcp [2001:db8:1::2]:52009 > [2001:db8:3::2]:80 S", "fwd[src=2001:db8:3::1]/synack"},
			{"udp [2001:db8:1::2]:52010 > [2001:db8:2::2]:7", "fwd[src=[2001:db8:2::9]:3000]/udp-reply"},
			{"icmp6 2001:db8:1::2 > 2001:db8:3::2 echo", "fwd[src=2001:db8:3::1]/echo-reply"},
		},
	},
	{
		name: "dnat-redirect",
		v4: `
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp -d 198.51.100.2 --dport 8888 -j DNAT --to-destination 198.51.100.3:80
-A PREROUTING -i eth0 -p udp -d 198.51.100.2 --dport 5353 -j DNAT --to-destination 198.51.100.3
-A PREROUTING -i eth0 -p tcp -d 198.51.100.200 -j DNAT --to-destination 203.0.113.2
-A PREROUTING -i eth0 -p tcp --dport 2222 -j REDIRECT --to-ports 22
-A PREROUTING -i eth0 -p udp --dport 2053 -j REDIRECT --to-ports 53
-A PREROUTING -i eth0 -p udp -d 198.51.100.2 --dport 9999 -j DNAT --to-destination 198.51.100.3:9
-A PREROUTING -i eth0 -p tcp -d 198.51.100.2 --dport 7777 -j DNAT --to-destination 198.51.100.3:22
-A PREROUTING -i eth0 -p tcp -d 198.51.100.2 --dport 7778 -j DNAT --to-destination 198.51.100.3:23
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -p tcp -d 198.51.100.3 --dport 23 -j REJECT --reject-with tcp-reset
COMMIT
`,
		v6: `
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp -d 2001:db8:2::2 --dport 8888 -j DNAT --to-destination [2001:db8:2::3]:80
-A PREROUTING -i eth0 -p tcp --dport 2222 -j REDIRECT --to-ports 22
COMMIT
`,
		probes: []kdProbe{
			{"tcp 192.0.2.2:53001 > 198.51.100.2:8888 S", "fwd[dst=198.51.100.3:80]/synack"},
			{"udp 192.0.2.2:53002 > 198.51.100.2:5353", "fwd[dst=198.51.100.3]/unreach-port@dst"},
			{"tcp 192.0.2.2:53003 > 198.51.100.200:443 S", "fwd[dst=203.0.113.2]/synack"},
			{"tcp 192.0.2.2:53004 > 198.51.100.2:2222 S", "-/rst"}, // to the router's port 22: closed
			{"udp 192.0.2.2:53005 > 198.51.100.2:2053", "-/unreach-port@dst"},
			{"tcp 192.0.2.2:53006 > 198.51.100.2:80 S", "fwd/synack"},
			{"udp 192.0.2.2:53009 > 198.51.100.2:9999", "fwd[dst=198.51.100.3:9]/unreach-port@dst"},
			{"tcp 192.0.2.2:53010 > 198.51.100.2:7777 S", "fwd[dst=198.51.100.3:22]/rst"},
			{"tcp 192.0.2.2:53011 > 198.51.100.2:7778 S", "-/rst"}, // FORWARD sees the DNAT'd port; the RST is translated back
			{"tcp [2001:db8:1::2]:53007 > [2001:db8:2::2]:8888 S", "fwd[dst=[2001:db8:2::3]:80]/synack"},
			{"tcp [2001:db8:1::2]:53008 > [2001:db8:2::2]:2222 S", "-/rst"},
		},
	},
	{
		name: "nat-ranges",
		v4: `
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp -d 198.51.100.100 -j DNAT --to-destination 198.51.100.2-198.51.100.3:8080-8081
-A PREROUTING -i eth0 -p tcp -d 198.51.100.101 -j DNAT --to-destination 198.51.100.2-198.51.100.3
-A POSTROUTING -o eth1 -p udp -s 192.0.2.3 -j SNAT --to-source 198.51.100.10-198.51.100.12:1024-1100
-A POSTROUTING -o eth1 -p tcp -s 192.0.2.3 -j SNAT --to-source 198.51.100.10-198.51.100.12
-A POSTROUTING -o wan0 -p tcp -j MASQUERADE --to-ports 3000-3010
COMMIT
`,
		v6: `
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth1 -p udp -j SNAT --to-source [2001:db8:2::10-2001:db8:2::12]:1024-1100
-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 3000-3010
COMMIT
`,
		// Linux picks SNAT and MASQUERADE ports at random in the range;
		// addresses (by a hash of the flow) and DNAT ports are
		// deterministic and must match exactly.
		randomPorts: []string{"1024-1100", "3000-3010"},
		probes: []kdProbe{
			{"tcp 192.0.2.2:54001 > 198.51.100.100:443 S", "fwd[dst=198.51.100.2:8080]/synack"},
			{"tcp 192.0.2.2:54002 > 198.51.100.100:8081 S", "fwd[dst=198.51.100.2]/synack"},
			{"tcp 192.0.2.3:54003 > 198.51.100.101:80 S", "fwd[src=198.51.100.11,dst=198.51.100.3]/synack"},
			{"udp 192.0.2.3:54004 > 198.51.100.2:7", "fwd[src=198.51.100.12:1024-1100]/udp-reply"},
			{"tcp 192.0.2.3:54005 > 198.51.100.2:80 S", "fwd[src=198.51.100.12]/synack"},
			{"tcp 192.0.2.2:54006 > 203.0.113.2:80 S", "fwd[src=203.0.113.1:3000-3010]/synack"},
			{"tcp 192.0.2.2:54007 > 198.51.100.2:80 S", "fwd/synack"},
			{"udp [2001:db8:1::2]:54008 > [2001:db8:2::2]:7", "fwd[src=[2001:db8:2::10]:1024-1100]/udp-reply"},
			{"udp [2001:db8:1::2]:54009 > [2001:db8:3::2]:7", "fwd[src=[2001:db8:3::1]:3000-3010]/udp-reply"},
		},
	},
}
