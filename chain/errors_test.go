package chain

import (
	"strings"
	"testing"
)

// TestErrors checks the exact errors of bad specs: place, path and
// message, all of them at once.
func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name, spec string
		want       []string
	}{
		{"yaml syntax", `
			name: t
			functions:
			  a: b: c
			`, []string{
			"t.yaml:3: bad YAML: mapping values are not allowed in this context",
		}},
		{"empty", ``, []string{
			"t.yaml: empty chain spec: want at least name and functions",
		}},
		{"not a mapping", `[a, b]`, []string{
			"t.yaml:1:1: want a chain spec (name, functions, links, ...), got a list",
		}},
		{"two documents", `
			name: t
			pipeline: [a]
			functions: {a: {kind: host, interfaces: {eth0: 192.0.2.1/24}}}
			---
			name: u
			`, []string{
			`t.yaml:4:1: a spec is one YAML document: remove what follows ---`,
		}},
		{"settings file", `
			name: r1
			if: [eth0=stdin]
			`, []string{
			"t.yaml:1:1: this is a settings file for `nfpipe vnf KIND --config FILE` (its keys are flags), not a chain spec: a chain spec has name and functions or pipeline (see docs/chain.md)",
		}},
		{"unknown keys", `
			name: t
			functoins: {}
			pipeline: [a, b]
			functions:
			  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}, serv: [http :80]}
			  b: {kind: host, interfacs: {eth0: 192.0.2.2/24}}
			`, []string{
			`t.yaml:2:1: functoins: unknown key "functoins" (did you mean "functions"?)`,
			`t.yaml:5:53: functions.a.serv: unknown key "serv" (did you mean "serve"?)`,
			`t.yaml:6:6: functions.b: no interfaces: add interfaces: {eth0: 192.0.2.1/24}`,
			`t.yaml:6:19: functions.b.interfacs: unknown key "interfacs" (did you mean "interfaces"?)`,
		}},
		{"no name, no functions", `
			description: nothing
			`, []string{
			"t.yaml:1:1: the chain has no name: add name: NAME",
			"t.yaml:1:1: the chain has no functions: add functions: or pipeline:",
		}},
		{"bad names", `
			name: My Chain
			functions:
			  a.b: {kind: host, interfaces: {eth0: 192.0.2.1/24}}
			  c: {kind: host, interfaces: {"eth 0": 192.0.2.2/24}}
			`, []string{
			`t.yaml:1:7: name: bad chain name "My Chain": lower-case letters, digits, '-' and '_', at most 32, starting with a letter or digit`,
			`t.yaml:3:3: functions.a.b: bad function name "a.b": lower-case letters, digits, '-' and '_', at most 32, starting with a letter or digit`,
			`t.yaml:4:32: functions.c.interfaces.eth 0: bad interface name "eth 0": letters, digits, '-' and '_', at most 15, starting with a letter or digit`,
		}},
		{"duplicate key", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}}
			  a: {kind: host, interfaces: {eth0: 192.0.2.2/24}}
			pipeline: [a]
			`, []string{
			`t.yaml:4:3: functions.a: duplicate key (first at t.yaml:3:3)`,
		}},
		{"unknown kind", `
			name: t
			pipeline: [a]
			functions:
			  a: {kind: nat, interfaces: {eth0: 192.0.2.1/24}}
			`, []string{
			`t.yaml:4:13: functions.a.kind: unknown kind "nat" (known kinds: host, router)`,
		}},
		{"a setting of another kind", `
			name: t
			pipeline: [r]
			functions:
			  r:
			    kind: router
			    interfaces: {eth0: 192.0.2.1/24}
			    serve: [http :80]
			`, []string{
			`t.yaml:7:5: functions.r.serve: "serve" is a setting of host, not of router`,
		}},
		{"kind parameters", `
			name: t
			pipeline: [a]
			functions:
			  a:
			    kind: host
			    interfaces: {eth0: 192.0.2.1/24}
			    serve: [htp :80, echo tcp:7, sink udp:x]
			    run: ping 192.0.2.9 count=many
			    expect: lots
			    timeout: soon
			    stats: xml
			`, []string{
			`t.yaml:7:13: functions.a.serve[0]: unknown application "htp" in "htp :80": want one of bulk, echo, http, sink (did you mean "http"?)`,
			`t.yaml:7:34: functions.a.serve[2]: invalid listen address "x" in "sink udp:x": want PORT, :PORT or IP:PORT such as 9000, :9000, 192.0.2.2:9000 or [::]:9000`,
			`t.yaml:8:10: functions.a.run: invalid option "count=many" in "ping 192.0.2.9 count=many": want a whole number from 1 to 65535`,
			`t.yaml:9:13: functions.a.expect: bad value "lots": want an integer`,
			`t.yaml:10:14: functions.a.timeout: bad value "soon": want a duration such as 30s`,
			`t.yaml:11:12: functions.a.stats: --stats=xml: want text or json`,
		}},
		{"expect needs a sink", `
			name: t
			pipeline: [a]
			functions:
			  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}, serve: [http :80], expect: 10}
			`, []string{
			`t.yaml:4:80: functions.a.expect: --expect needs a sink: add --serve 'sink udp:PORT'`,
		}},
		{"dangling ends", `
			name: t
			functions:
			  client: {kind: host, interfaces: {eth0: 192.0.2.1/24}}
			  r: {kind: router, interfaces: {eth0: 192.0.2.2/24, eth1: 198.51.100.1/24}}
			links:
			  - [clinet.eth0, r.eth0]
			  - [r.eth2, client]
			  - [r, client]
			`, []string{
			`t.yaml:4:54: functions.r.interfaces.eth1: interface is not linked: add it to links (or the pipeline), or remove it`,
			`t.yaml:6:6: links[0][0]: no function "clinet" (did you mean "client"?)`,
			`t.yaml:7:6: links[1][0]: r has no interface "eth2" (did you mean "eth0"?)`,
			`t.yaml:8:6: links[2][0]: r has 2 interfaces: say which, as r.eth0 or r.eth1`,
			`t.yaml:8:6: links[2]: client.eth0 is already linked by links[1] (t.yaml:7:6): an interface joins one link`,
		}},
		{"duplicate ends", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}}
			  b: {kind: host, interfaces: {eth0: 192.0.2.2/24}}
			  c: {kind: host, interfaces: {eth0: 192.0.2.3/24}}
			links:
			  - [a, b]
			  - [a.eth0, a.eth0]
			  - [c, b.eth0]
			  - ends: [c]
			`, []string{
			`t.yaml:8:6: links[1]: a.eth0 is already linked by links[0] (t.yaml:7:6): an interface joins one link`,
			`t.yaml:8:14: links[1]: both ends are a.eth0`,
			`t.yaml:9:9: links[2]: b.eth0 is already linked by links[0] (t.yaml:7:9): an interface joins one link`,
			`t.yaml:10:12: links[3]: a seqpacket link joins two interfaces: want two ends, got 1`,
			`t.yaml:10:12: links[3]: c.eth0 is already linked by links[2] (t.yaml:9:6): an interface joins one link`,
		}},
		{"pipeline", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}}
			  b: {kind: router, interfaces: {eth0: 192.0.2.2/24, eth1: 198.51.100.1/24}}
			  c: {kind: host, interfaces: {eth0: 198.51.100.2/24}}
			pipeline: [a, b, x, b, c]
			links:
			  - [a, c]
			`, []string{
			`t.yaml:6:18: pipeline[2]: no function "x"`,
			`t.yaml:6:21: pipeline[3]: b is in the pipeline twice (first at t.yaml:6:15)`,
			`t.yaml:8:6: links[0]: a.eth0 is already linked by pipeline[1] (t.yaml:6:15): an interface joins one link`,
			`t.yaml:8:9: links[0]: c.eth0 is already linked by pipeline[4] (t.yaml:6:24): an interface joins one link`,
		}},
		{"function files", `
			name: t
			pipeline: [functions/broken.yaml, functions/missing.yaml]
			`, []string{
			`testdata/functions/broken.yaml:6:1: functions.broken.gatways: unknown key "gatways" (did you mean "gateways"?)`,
			`t.yaml:2:35: functions.missing: function file functions/missing.yaml: open: no such file or directory`,
		}},
		{"addresses", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: [192.0.2.1/24, 2001:db8::1/64, 192.0.2.300/24]}}
			  b: {kind: host, interfaces: {eth0: {addresses: [192.0.2.1/24, 2001:db8::1/64, 0.0.0.0/8, 224.0.0.1/4]}}}
			  c: {kind: host, interfaces: {eth0: {addresses: 10.0.0.1/8, mac: 01:00:5e:00:00:01, mtu: 1000}}}
			  d: {kind: host, interfaces: {eth0: {addresses: 2001:db8:1::1/64, mtu: 1000}}}
			links: [[a, b], [c, d]]
			`, []string{
			`t.yaml:3:69: functions.a.interfaces.eth0[2]: bad address "192.0.2.300/24": want ADDR/LEN such as 192.0.2.1/24 or 2001:db8::1/64`,
			`t.yaml:4:51: functions.b.interfaces.eth0.addresses[0]: address 192.0.2.1 is already on a.eth0 (t.yaml:3:39)`,
			`t.yaml:4:65: functions.b.interfaces.eth0.addresses[1]: address 2001:db8::1 is already on a.eth0 (t.yaml:3:53)`,
			`t.yaml:4:81: functions.b.interfaces.eth0.addresses[2]: 0.0.0.0 cannot be an interface address`,
			`t.yaml:4:92: functions.b.interfaces.eth0.addresses[3]: 224.0.0.1 cannot be an interface address`,
			`t.yaml:5:67: functions.c.interfaces.eth0.mac: MAC 01:00:5e:00:00:01 is a multicast address; an interface needs a unicast one (first byte even)`,
			`t.yaml:6:50: functions.d.interfaces.eth0.addresses: IPv6 address 2001:db8:1::1/64 needs an MTU of at least 1280 (mtu is 1000)`,
		}},
		{"mtu mismatch", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: {addresses: 192.0.2.1/24, mtu: 9000}}}
			  b: {kind: host, interfaces: {eth0: {addresses: 192.0.2.2/24, mtu: 70000}}}
			  c: {kind: host, interfaces: {eth0: 192.0.2.3/24}}
			links:
			  - [a, c]
			  - [b, x]
			`, []string{
			`t.yaml:4:69: functions.b.interfaces.eth0.mtu: bad MTU "70000": want 68 to 65521`,
			`t.yaml:7:5: links[0]: MTU mismatch: a.eth0 has 9000, c.eth0 has 1500; frames bigger than the smaller would be dropped (set the same mtu on both)`,
			`t.yaml:8:9: links[1][1]: no function "x"`,
		}},
		{"gateways and routes", `
			name: t
			pipeline: [r, h]
			functions:
			  r:
			    kind: router
			    interfaces: {in: 192.0.2.1/24, out: [198.51.100.1/24, 2001:db8::1/64]}
			    gateways: [203.0.113.1, 192.0.2.1, 2001:db8:1::1]
			    routes:
			      - 10.0.0.0/8 via 198.51.100.9 dev in
			      - 10.1.0.0/16 via 198.51.100.9 dev eth9
			      - 10.2.0.0/16 via 2001:db8::9
			      - 10.3.0.0/16 via 10.3.0.1
			      - 10.4.0.0/16 dev out
			      - nonsense
			    neighbors: [198.51.100.9 lladdr 02:00:00:00:00:09 dev ot]
			  h: {kind: host, interfaces: {eth0: 198.51.100.2/24}, gateways: 198.51.100.1}
			`, []string{
			`t.yaml:7:16: functions.r.gateways[0]: gateway 203.0.113.1 is not on any of r's subnets (192.0.2.0/24 on in, 198.51.100.0/24 on out)`,
			`t.yaml:7:29: functions.r.gateways[1]: gateway 192.0.2.1 is r's own address (on in)`,
			`t.yaml:7:40: functions.r.gateways[2]: gateway 2001:db8:1::1 is not on any of r's subnets (2001:db8::/64 on out)`,
			`t.yaml:9:9: functions.r.routes[0]: gateway 198.51.100.9 is not on in's subnets (192.0.2.0/24 on in)`,
			`t.yaml:10:9: functions.r.routes[1]: r has no interface "eth9" (it has in, out)`,
			`t.yaml:11:9: functions.r.routes[2]: gateway 2001:db8::9 and destination 10.2.0.0/16 are of different IP families`,
			`t.yaml:12:9: functions.r.routes[3]: gateway 10.3.0.1 is not on any of r's subnets (192.0.2.0/24 on in, 198.51.100.0/24 on out)`,
			`t.yaml:14:9: functions.r.routes[5]: route "nonsense": bad address "nonsense": want ADDR/LEN such as 192.0.2.1/24 or 2001:db8::1/64`,
			`t.yaml:15:17: functions.r.neighbors[0]: r has no interface "ot" (did you mean "out"?)`,
		}},
		{"rules", `
			name: t
			pipeline: [r]
			functions:
			  r:
			    kind: router
			    interfaces: {eth0: 192.0.2.1/24, eth1: 198.51.100.1/24}
			    rules:
			      - -A FORWARD -p tcp --dprot 23 -j DROP
			      - -A FORWARD -o eht1 -j DROP
			      - -A FORWARD -i eth+ -j ACCEPT
			      - fw.rules
			    rule-files: [rules/good.rules, rules/bad.rules, rules/missing.rules]
			`, []string{
			`t.yaml:8:9: functions.r.rules[0]: unknown option "--dprot" (did you mean "--dport"?)`,
			`t.yaml:9:9: functions.r.rules[1]: -o eht1: r has no interface "eht1" (did you mean "eth1"?)`,
			`t.yaml:11:9: functions.r.rules[3]: "fw.rules" is not an iptables command; for a rule file write rule-files: [fw.rules]`,
			`testdata/rules/bad.rules:2: functions.r.rule-files[1]: MASQUERADE is only valid in the nat table's POSTROUTING chain (and chains called from it)`,
			`testdata/rules/bad.rules:3: functions.r.rule-files[1]: unknown option "--dprot" (did you mean "--dport"?)`,
			`t.yaml:12:53: functions.r.rule-files[2]: testdata/rules/missing.rules: open: no such file or directory`,
		}},
		{"restart, env, log level", `
			name: t
			defaults:
			  restart: sometimes
			  log-level: verbose
			pipeline: [a]
			functions:
			  a:
			    kind: host
			    interfaces: {eth0: 192.0.2.1/24}
			    restart: {policy: always, backoff: 2s, max-backoff: 1s, max-restarts: -1, retries: 3}
			    env: {NFPIPE_LOG_LEVEL: debug, "1X": y, GOGC: 50}
			`, []string{
			`t.yaml:3:12: defaults.restart: unknown restart policy "sometimes" (want never, on-failure or always)`,
			`t.yaml:4:14: defaults.log-level: unknown log level "verbose" (want debug, info, warn or error)`,
			`t.yaml:10:14: functions.a.restart: max-backoff 1s is shorter than backoff 2s`,
			`t.yaml:10:75: functions.a.restart.max-restarts: bad count "-1": want 0 (no limit) or more`,
			`t.yaml:10:79: functions.a.restart.retries: unknown key "retries" (known: backoff, max-backoff, max-restarts, policy, window)`,
			`t.yaml:11:11: functions.a.env.NFPIPE_LOG_LEVEL: NFPIPE_* variables would configure the function behind the plan's back: write the setting in the spec (log-level, a kind parameter)`,
			`t.yaml:11:36: functions.a.env.1X: bad variable name "1X"`,
		}},
		{"transports", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: 192.0.2.1/24, eth1: 198.51.100.1/24, eth2: 203.0.113.1/24, eth3: 10.0.0.1/24, eth4: 10.0.1.1/24}}
			  b: {kind: host, interfaces: {eth0: 192.0.2.2/24, eth1: 198.51.100.2/24, eth2: 10.0.1.2/24}}
			links:
			  - {ends: [a.eth0, b.eth0], format: hex, gso: maybe}
			  - {ends: [a.eth1, b.eth1], transport: carrier-pigeon}
			  - {ends: [a.eth2], transport: tap, tap: much-too-long-name, pack: on}
			  - {ends: [a.eth3], replay: missing.pcap, timing: slow, path: /tmp/x, gso: on}
			  - {ends: [a.eth4, b.eth2], pack: tight}
			`, []string{
			`t.yaml:6:38: links[0].format: a seqpacket link carries one frame per message: format applies to stream, pipe, fifo, unix, file, stdin and stdout links`,
			`t.yaml:6:48: links[0].gso: unknown gso "maybe" (want on or off)`,
			`t.yaml:7:41: links[1].transport: unknown transport "carrier-pigeon" (want seqpacket, stream, pipe, fifo, unix, tap, file, stdin, stdout)`,
			`t.yaml:8:43: links[2].tap: bad TAP device name "much-too-long-name": letters, digits, '-' and '_', at most 15, starting with a letter or digit`,
			`t.yaml:8:63: links[2].pack: pack applies to seqpacket links, not tap`,
			`t.yaml:9:30: links[3].replay: testdata/missing.pcap: stat: no such file or directory`,
			`t.yaml:9:52: links[3].timing: unknown timing "slow" (want original or fast)`,
			`t.yaml:9:58: links[3].path: path applies to unix links, not file`,
			`t.yaml:9:72: links[3].gso: gso applies to seqpacket, stream, pipe, fifo, unix and tap links, not file`,
			`t.yaml:10:36: links[4].pack: unknown pack "tight" (want on or off)`,
		}},
		{"tap links", `
			name: t
			functions:
			  a: {kind: router, interfaces: {eth0: 192.0.2.1/24, eth1: 198.51.100.1/24, eth2: 203.0.113.1/24, eth3: 10.0.0.1/24}}
			links:
			  - {ends: [a.eth0], netns: {name: c, craete: true}, host: {addresses: [192.0.2.1/24], routes: [default via 10.0.0.1]}}
			  - {ends: [a.eth1], tap: t0, netns: bad/name, host: {masquerade: yes, routes: [10.0.0.0/8 dev x, default via 2001:db8::1]}}
			  - {ends: [a.eth2], tap: t0, host: [x]}
			  - {ends: [a.eth3], tap: t0, netns: {create: true}, host: {addresses: [10.0.0.2/24], routes: [default via 10.0.0.2, 10.1.0.0/16 via 10.0.0.1], forward: true}}
			`, []string{
			`t.yaml:5:39: links[0].netns.craete: unknown key "craete" (did you mean "create"?)`,
			`t.yaml:5:73: links[0].host.addresses[0]: address 192.0.2.1 is already on a.eth0`,
			`t.yaml:5:97: links[0].host.routes[0]: gateway 10.0.0.1 is on none of the TAP's subnets (host.addresses: 192.0.2.1/24)`,
			`t.yaml:6:38: links[1].netns: bad network namespace name "bad/name": letters, digits, '.', '-' and '_', at most 64, starting with a letter or digit`,
			`t.yaml:6:67: links[1].host.masquerade: want true or false, got "yes"`,
			`t.yaml:6:81: links[1].host.routes[0]: route "10.0.0.0/8 dev x": a host route goes through the link's TAP device: leave out dev`,
			`t.yaml:6:99: links[1].host.routes[1]: gateway 2001:db8::1 is on none of the TAP's subnets (host.addresses: none)`,
			`t.yaml:7:22: links[2].tap: TAP device t0 in the runner's network namespace is links[1]'s already (t.yaml:6:22)`,
			`t.yaml:7:37: links[2].host: want the TAP's kernel side: {addresses: [...], routes: [...], masquerade: true, forward: true}, got a list`,
			`t.yaml:8:22: links[3].tap: TAP device t0 in the runner's network namespace is links[1]'s already (t.yaml:6:22)`,
			`t.yaml:8:38: links[3].netns: a netns needs a name: {name: NAME, create: true}`,
			`t.yaml:8:96: links[3].host.routes[0]: gateway 10.0.0.2 is the TAP's own address`,
		}},
		{"mirrors", `
			name: t
			functions:
			  a: {kind: host, interfaces: {eth0: {addresses: 192.0.2.1/24, capture: a.pcap}}}
			  b: {kind: host, interfaces: {eth0: 192.0.2.2/24, eth1: 198.51.100.2/24}}
			  c: {kind: host, interfaces: {eth0: 198.51.100.3/24}}
			  mon: {kind: host, interfaces: {in: null}}
			links:
			  - {ends: [a, b.eth0], mirror: {capture: x.pcap, fifo: y}}
			  - {ends: [a, b.eth0], mirror: ab.pcap}
			  - {ends: [b.eth1, c], mirror: {function: mon.in, at: a.eth0}}
			  - {ends: [c, b.eth1], mirror: {function: mon.in}}
			`, []string{
			`t.yaml:8:51: links[0].mirror.fifo: a mirror has one target: capture or fifo, not both`,
			`t.yaml:9:13: links[1]: a.eth0 is already linked by links[0] (t.yaml:8:13): an interface joins one link`,
			`t.yaml:9:16: links[1]: b.eth0 is already linked by links[0] (t.yaml:8:16): an interface joins one link`,
			`t.yaml:9:33: links[1].mirror: a.eth0 already captures to testdata/a.pcap (its capture:): an interface makes one copy; mirror at the other end (at:) or drop one`,
			`t.yaml:10:56: links[2].mirror.at: a.eth0 is not an end of this link (its ends: b.eth1, c.eth0)`,
			`t.yaml:11:13: links[3]: c.eth0 is already linked by links[2] (t.yaml:10:21): an interface joins one link`,
			`t.yaml:11:16: links[3]: b.eth1 is already linked by links[2] (t.yaml:10:13): an interface joins one link`,
			`t.yaml:11:44: links[3].mirror: mon.in is already linked by links[2].mirror (t.yaml:10:44): an interface joins one link`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check("t.yaml", []byte(dedent(tt.spec)), testOptions())
			var got []string
			if el, ok := err.(ErrorList); ok {
				for _, e := range el {
					got = append(got, e.Error())
				}
			} else if err != nil {
				t.Fatalf("error is a %T, not an ErrorList: %v", err, err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
