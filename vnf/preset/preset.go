// Package preset holds the nat and firewall kinds: routers that come with a
// rule set built from a few flags, so that the common boxes need no rules
// file. Their rules are ordinary iptables rules, shown by --stats like any
// other; --rules and --rule add to them (-A after, -I before).
package preset

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/router"
)

// NATDoc is the nat kind's help text.
const NATDoc = `nat is a router that masquerades what leaves by its outside interface.

--outside IF names the uplink. Connections from every other interface go
out with the source address of IF (IPv4 and IPv6: MASQUERADE), and their
replies and related ICMP errors come back; nothing else enters from
outside, except what --forward lets in:

  --forward 'tcp:8080=192.168.1.10:80'   # outside port 8080 to an inside server
  --forward 'udp:53=192.168.1.53'        # same port

The rules it installs (see them with --stats):
  -t nat -A POSTROUTING -o IF -j MASQUERADE
  -P FORWARD DROP
  -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  -A FORWARD -m conntrack --ctstate INVALID -j DROP
  -A FORWARD ! -i IF -j ACCEPT
  per --forward: a DNAT rule in nat PREROUTING and an ACCEPT in FORWARD

Example:
  nfpipe vnf nat --if eth0=unix-listen:/tmp/in.sock,ip=192.168.1.1/24 \
                 --if eth1=unix-listen:/tmp/out.sock,ip=203.0.113.1/24 --outside eth1`

// FirewallDoc is the firewall kind's help text.
const FirewallDoc = `firewall is a router that forwards only what is allowed, statefully.

New connections are forwarded only when an --allow matches them or they
enter by an --inside interface; replies and related ICMP errors of allowed
connections always pass; the rest is dropped (or refused with --reject).

  --allow SPEC     PROTO[:PORTS][,to=PREFIX][,from=PREFIX][,in=IF]
                   PROTO is tcp, udp, icmp (echo requests, both families)
                   or any; PORTS is 80 or 8000-8080. Repeatable.
  --inside IF      everything entering by IF is allowed out (repeatable)
  --reject         refuse instead of dropping: TCP reset, ICMP port
                   unreachable

The rules it installs (see them with --stats):
  -P FORWARD DROP
  -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  -A FORWARD -m conntrack --ctstate INVALID -j DROP
  -A FORWARD -i IF -j ACCEPT                        per --inside
  -A FORWARD -p tcp -d PREFIX --dport 80 -j ACCEPT  per --allow
  -A FORWARD -p tcp -j REJECT --reject-with tcp-reset, then
  -A FORWARD -j REJECT                              with --reject

Example:
  nfpipe vnf firewall --if eth0=...,ip=192.0.2.1/24 --if eth1=...,ip=198.51.100.1/24 \
      --inside eth0 --allow tcp:80,to=198.51.100.10 --allow icmp --reject`

// NAT returns the nat kind.
func NAT() vnf.Kind {
	return vnf.Kind{
		Name:       "nat",
		Summary:    "a router that masquerades connections out of --outside and lets only their replies (and --forward ports) back in",
		Doc:        NATDoc,
		Forwarding: true,
		Params: []vnf.Param{
			{Name: "outside", Usage: "the uplink interface: connections leaving by it are masqueraded"},
			{Name: "forward", Usage: "let a port in from outside: PROTO:PORT=ADDR[:PORT]", Repeatable: true},
		},
		New: newNAT,
	}
}

// Firewall returns the firewall kind.
func Firewall() vnf.Kind {
	return vnf.Kind{
		Name:       "firewall",
		Summary:    "a stateful router: forwards new connections only from --inside interfaces or when an --allow matches",
		Doc:        FirewallDoc,
		Forwarding: true,
		Params: []vnf.Param{
			{Name: "allow", Usage: "allow new connections: PROTO[:PORTS][,to=PREFIX][,from=PREFIX][,in=IF]", Repeatable: true},
			{Name: "inside", Usage: "an interface whose traffic may go out", Repeatable: true},
			{Name: "reject", Usage: "refuse what is not allowed (TCP reset, ICMP port unreachable) instead of dropping it", Bool: true},
		},
		New: newFirewall,
	}
}

// both prefixes a rule for IPv4 and IPv6.
func both(rule string) []string {
	return []string{"iptables " + rule, "ip6tables " + rule}
}

// stateful is the head of both presets' FORWARD chain.
func stateful() []string {
	var out []string
	for _, r := range []string{
		"-P FORWARD DROP",
		"-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A FORWARD -m conntrack --ctstate INVALID -j DROP",
	} {
		out = append(out, both(r)...)
	}
	return out
}

func hasInterface(cfg *vnf.Config, name string) bool {
	for _, n := range cfg.Stack.NICs {
		if n.Name == name {
			return true
		}
	}
	return false
}

func interfaceNames(cfg *vnf.Config) string {
	var out []string
	for _, n := range cfg.Stack.NICs {
		out = append(out, n.Name)
	}
	return strings.Join(out, ", ")
}

func newNAT(cfg *vnf.Config) (vnf.Function, error) {
	fn, err := router.New(cfg)
	if err != nil {
		return nil, err
	}
	out := cfg.Param("outside")
	if out == "" {
		return nil, fmt.Errorf("--outside: say which interface is the uplink (one of: %s)", interfaceNames(cfg))
	}
	if !hasInterface(cfg, out) {
		return nil, fmt.Errorf("--outside %s: no such interface (have: %s)", out, interfaceNames(cfg))
	}
	rules := both("-t nat -A POSTROUTING -o " + out + " -j MASQUERADE")
	rules = append(rules, stateful()...)
	rules = append(rules, both("-A FORWARD ! -i "+out+" -j ACCEPT")...)
	for _, f := range cfg.Params["forward"] {
		r, err := parseForward(f, out)
		if err != nil {
			return nil, fmt.Errorf("--forward %q: %w", f, err)
		}
		rules = append(rules, r...)
	}
	cfg.PresetRules = rules
	return fn, nil
}

// parseForward turns PROTO:PORT=ADDR[:PORT] into a DNAT and an ACCEPT rule.
func parseForward(s, out string) ([]string, error) {
	lhs, rhs, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("want PROTO:PORT=ADDR[:PORT], e.g. tcp:8080=192.168.1.10:80")
	}
	proto, port, ok := strings.Cut(lhs, ":")
	if !ok || (proto != "tcp" && proto != "udp") {
		return nil, fmt.Errorf("want tcp:PORT or udp:PORT before '='")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || port == "0" {
		return nil, fmt.Errorf("port %q is not 1-65535", port)
	}
	var addr netip.Addr
	toPort := port
	if ap, err := netip.ParseAddrPort(rhs); err == nil {
		addr, toPort = ap.Addr(), strconv.Itoa(int(ap.Port()))
	} else if a, err := netip.ParseAddr(rhs); err == nil {
		addr = a
	} else {
		return nil, fmt.Errorf("%q is not ADDR or ADDR:PORT ([ADDR]:PORT for IPv6)", rhs)
	}
	cmd, dest := "iptables", addr.String()+":"+toPort
	if addr.Is6() {
		cmd, dest = "ip6tables", "["+addr.String()+"]:"+toPort
	}
	return []string{
		fmt.Sprintf("%s -t nat -A PREROUTING -i %s -p %s --dport %s -j DNAT --to-destination %s", cmd, out, proto, port, dest),
		fmt.Sprintf("%s -A FORWARD -i %s -p %s -d %s --dport %s -j ACCEPT", cmd, out, proto, addr, toPort),
	}, nil
}

func newFirewall(cfg *vnf.Config) (vnf.Function, error) {
	fn, err := router.New(cfg)
	if err != nil {
		return nil, err
	}
	rules := stateful()
	for _, in := range cfg.Params["inside"] {
		if !hasInterface(cfg, in) {
			return nil, fmt.Errorf("--inside %s: no such interface (have: %s)", in, interfaceNames(cfg))
		}
		rules = append(rules, both("-A FORWARD -i "+in+" -j ACCEPT")...)
	}
	for _, a := range cfg.Params["allow"] {
		r, err := parseAllow(a, cfg)
		if err != nil {
			return nil, fmt.Errorf("--allow %q: %w", a, err)
		}
		rules = append(rules, r...)
	}
	if cfg.Param("reject") == "true" {
		rules = append(rules,
			"iptables -A FORWARD -p tcp -j REJECT --reject-with tcp-reset",
			"iptables -A FORWARD -j REJECT --reject-with icmp-port-unreachable",
			"ip6tables -A FORWARD -p tcp -j REJECT --reject-with tcp-reset",
			"ip6tables -A FORWARD -j REJECT --reject-with icmp6-port-unreachable")
	}
	cfg.PresetRules = rules
	return fn, nil
}

// parseAllow turns PROTO[:PORTS][,to=PREFIX][,from=PREFIX][,in=IF] into
// ACCEPT rules for the families it applies to.
func parseAllow(s string, cfg *vnf.Config) ([]string, error) {
	fields := strings.Split(s, ",")
	proto, ports, hasPorts := strings.Cut(fields[0], ":")
	var match []string
	v4, v6 := true, true
	switch proto {
	case "tcp", "udp":
		if hasPorts {
			for _, p := range strings.SplitN(ports, "-", 2) {
				if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
					return nil, fmt.Errorf("port %q is not 1-65535", p)
				}
			}
			ports = strings.Replace(ports, "-", ":", 1)
			match = append(match, "-p "+proto+" --dport "+ports)
		} else {
			match = append(match, "-p "+proto)
		}
	case "icmp", "any":
		if hasPorts {
			return nil, fmt.Errorf("%s takes no ports", proto)
		}
	default:
		return nil, fmt.Errorf("protocol %q: want tcp, udp, icmp or any", proto)
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("%q: want to=PREFIX, from=PREFIX or in=IF", f)
		case k == "to" || k == "from":
			p, err := netip.ParsePrefix(v)
			if err != nil {
				a, aerr := netip.ParseAddr(v)
				if aerr != nil {
					return nil, fmt.Errorf("%s=%s: not an address or prefix", k, v)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			v4, v6 = v4 && p.Addr().Is4(), v6 && p.Addr().Is6()
			flag := "-d "
			if k == "from" {
				flag = "-s "
			}
			match = append(match, flag+p.String())
		case k == "in":
			if !hasInterface(cfg, v) {
				return nil, fmt.Errorf("in=%s: no such interface (have: %s)", v, interfaceNames(cfg))
			}
			match = append(match, "-i "+v)
		default:
			return nil, fmt.Errorf("%q: unknown key %q (want to, from or in)", f, k)
		}
	}
	if !v4 && !v6 {
		return nil, fmt.Errorf("to= and from= mix IPv4 and IPv6")
	}
	m := strings.Join(match, " ")
	if m != "" {
		m += " "
	}
	var out []string
	if v4 {
		icmp := ""
		if proto == "icmp" {
			icmp = "-p icmp --icmp-type echo-request "
		}
		out = append(out, "iptables -A FORWARD "+m+icmp+"-j ACCEPT")
	}
	if v6 {
		icmp := ""
		if proto == "icmp" {
			icmp = "-p icmpv6 --icmpv6-type echo-request "
		}
		out = append(out, "ip6tables -A FORWARD "+m+icmp+"-j ACCEPT")
	}
	return out, nil
}
