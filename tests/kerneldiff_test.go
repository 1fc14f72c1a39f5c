package tests

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfpipe/nfpipe/internal/stalens"
)

// The differential harness of issue 3 ("Proven against Linux"): for each
// rule set of kdRuleSets (kerneldiff_cases_test.go) it builds the same
// topology twice, in network namespaces of its own,
//
//	client netns C: c0 ── eth0 ┐        ┌ eth1 ── s1 ┐ server netns S
//	                           └ router ┴ wan0 ── s2 ┘
//
// once with a Linux kernel router (a netns joined by veth pairs, the rules
// loaded with iptables-restore/ip6tables-restore) and once with an nfpipe
// router (its TAPs moved into C and S, the same save files given to
// --rules). It sends the same crafted frames through both from AF_PACKET
// sockets in C and S, captures what arrives on both sides and compares
// the outcomes: forwarded or not, with which addresses and ports (NAT),
// what came back (the server kernel's natural answer, reverse-translated,
// or the router's REJECT) and from whom.
//
// The client namespace owns no address: its kernel never answers what
// comes back (no RST to a SYN-ACK, no port-unreachable for a UDP reply), so
// the packets a probe causes are the probe's alone. The server namespace
// owns its addresses and answers like any host: TCP 80, 443, 8080 and 8081
// listen, UDP 7 echoes, every other port is closed.

// kdLink is one router interface and the endpoint link facing it.
type kdLink struct {
	router, end       string // interface names: on the router, in C or S
	side              byte   // 'c' or 's'
	v4, v6            string // the router's addresses on it
	routerMAC, endMAC string
}

var kdLinks = []kdLink{
	{"eth0", "c0", 'c', "192.0.2.1/24", "2001:db8:1::1/64", "02:0a:00:00:00:01", "02:0c:00:00:00:01"},
	{"eth1", "s1", 's', "198.51.100.1/24", "2001:db8:2::1/64", "02:0a:00:00:00:02", "02:0d:00:00:00:01"},
	{"wan0", "s2", 's', "203.0.113.1/24", "2001:db8:3::1/64", "02:0a:00:00:00:03", "02:0d:00:00:00:02"},
}

// kdClientAddrs are the client addresses probes use; the router knows
// them as static neighbours on eth0 (nothing in C answers ARP or NDP).
var kdClientAddrs = []string{"192.0.2.2", "192.0.2.3", "192.0.2.50", "192.0.2.200", "2001:db8:1::2", "2001:db8:1::50"}

// kdServerAddrs are the addresses the server namespace owns, per link.
var kdServerAddrs = map[string][]string{
	"s1": {"198.51.100.2/24", "198.51.100.3/24", "2001:db8:2::2/64", "2001:db8:2::3/64"},
	"s2": {"203.0.113.2/24", "2001:db8:3::2/64"},
}

// kdNATAddrs are SNAT addresses that no router interface owns: the server
// reaches them through the router by static neighbour entries.
var kdNATAddrs = []string{"198.51.100.9", "198.51.100.10", "198.51.100.11", "198.51.100.12",
	"2001:db8:2::9", "2001:db8:2::10", "2001:db8:2::11", "2001:db8:2::12"}

// kdTCPPorts listen in S; kdUDPEcho is S's UDP echo port.
var kdTCPPorts = []int{80, 443, 8080, 8081}

const kdUDPEcho = 7

const (
	// kdQuiet is how long nothing new must arrive before a probe's outcome
	// is final; it is also the wait for "nothing arrived".
	kdQuiet = 300 * time.Millisecond
	// kdMaxWait bounds one probe.
	kdMaxWait = 2 * time.Second
)

// kdRuleSet is one rule set and its probes.
type kdRuleSet struct {
	name string
	// v4 and v6 are the iptables-save texts (without the header comment,
	// which the harness adds); empty means no rules of that family.
	v4, v6 string
	// randomPorts are port ranges Linux picks from at random (SNAT and
	// MASQUERADE --to-ports): a port in one is compared as the range.
	randomPorts []string
	// logs are LOG prefixes nfpipe must have logged.
	logs   []string
	probes []kdProbe
}

// kdProbe is one probe as written in the table: a packet spec and the
// outcome summary the author expects from the kernel.
//
// Spec: "PROTO SRC > DST [WHAT] [key=value...]" where PROTO is tcp, udp,
// icmp, icmp6 or protoN; SRC and DST are ADDR:PORT ([ADDR]:PORT for IPv6)
// for tcp and udp, ADDR otherwise; WHAT is the TCP flags (S, SA, R, F, A,
// ..., none) or the ICMP message (echo, or unreach-port, which quotes a
// UDP packet from DST:quote to SRC:9). Keys: len= (payload bytes), mac=
// (source MAC), quote= (see above), from= (the link it is sent on; default:
// the link of SRC's subnet).
//
// Summary: "FAR/NEAR". FAR is what reached the other side: "-" for
// nothing, "fwd" when the probe arrived, "fwd[src=..,dst=..]" when NAT
// changed it (only the changed parts are shown). NEAR is what came back,
// "+"-joined: synack, rst, udp-reply, echo-reply, or an ICMP error
// (unreach-port, unreach-host, unreach-net, unreach-admin, unreach-proto,
// unreach6-port, unreach6-addr, unreach6-noroute, unreach6-adm,
// paramprob6/N) "@router" or "@dst" (from the probe's destination) or
// "@ADDR". A reply that is not the exact reverse of the probe (failed
// reverse NAT) gets "[from=..]", "[to=..]" or "[quote=..]".
type kdProbe struct{ spec, want string }

// kdSent is a parsed probe.
type kdSent struct {
	kdProbe
	from   string // link end name
	srcMAC net.HardwareAddr
	pkt    *kdPacket
}

// TestKernelDiff runs every rule set of kdRuleSets through a Linux kernel
// router and an nfpipe router and requires the same outcome for every
// probe.
func TestKernelDiff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces, veth pairs and TAP devices to compare nfpipe's iptables with the kernel's")
	}
	needTool(t, "ip")
	needTool(t, "sysctl")
	be := kdFindBackend(t)
	kdCleanStale(t)
	t.Logf("kernel rules loaded with %s and %s", be.v4, be.v6)
	kdCheckCoverage(t)
	ctx := testContext(t, 5*time.Minute)
	start := time.Now()
	for i := range kdRuleSets {
		rs := &kdRuleSets[i]
		t.Run(rs.name, func(t *testing.T) {
			t.Parallel()
			kdRunRuleSet(t, ctx, i, rs, be)
		})
	}
	t.Cleanup(func() {
		n := 0
		for _, rs := range kdRuleSets {
			n += len(rs.probes)
		}
		t.Logf("%d rule sets, %d probes, %v", len(kdRuleSets), n, time.Since(start).Round(100*time.Millisecond))
	})
}

// kdStaleNS matches the namespaces this test creates; the number is the
// pid of the test process that made them.
var kdStaleNS = regexp.MustCompile(`^nfkd\d{2}[kn][csr]-(\d+)$`)

// kdCleanStale deletes the namespaces a crashed run of this test left
// behind (their process is gone), and nothing else.
func kdCleanStale(t *testing.T) {
	t.Helper()
	stalens.Delete(kdStaleNS, 1, t.Logf)
}

// kdParallel bounds how many rule sets run at once (each runs two
// topologies of three namespaces, and probes wait on timers: more would
// only add scheduling noise on a small machine).
var kdParallel = make(chan struct{}, 3)

// kdBackend names the restore programs of one iptables backend.
type kdBackend struct{ v4, v6 string }

// kdFindBackend picks one iptables backend for every rule set: nft (the
// default of current distributions) when installed, else legacy, else
// whatever iptables-restore is.
func kdFindBackend(t *testing.T) kdBackend {
	t.Helper()
	for _, suffix := range []string{"-nft", "-legacy", ""} {
		be := kdBackend{"iptables" + suffix + "-restore", "ip6tables" + suffix + "-restore"}
		_, err4 := exec.LookPath(be.v4)
		_, err6 := exec.LookPath(be.v6)
		if err4 == nil && err6 == nil {
			return be
		}
	}
	needTool(t, "iptables-restore")
	needTool(t, "ip6tables-restore")
	t.Fatal("no iptables-restore/ip6tables-restore pair found")
	return kdBackend{}
}

// kdCoverage lists what issue 3 requires the rule sets to exercise; the
// test fails if a rule set edit drops one.
var kdCoverage = []struct{ what, re string }{
	{"-p tcp", `-p tcp\b`}, {"-p udp", `-p udp\b`}, {"-p icmp", `-p icmp\b`}, {"-p icmpv6", `-p icmpv6\b`},
	{"-p all", `-p all\b`}, {"-p NUM", `-p \d+\b`},
	{"-s CIDR", `-s [0-9a-f:.]+/\d+`}, {"-s host", `-s [0-9a-f:.]+\s`}, {"! -s", `! -s `},
	{"-d CIDR", `-d [0-9a-f:.]+/\d+`}, {"-d host", `-d [0-9a-f:.]+\s`}, {"! -d", `! -d `},
	{"-i", `(^|\s)-i \w`}, {"-o", `(^|\s)-o \w`}, {"-i/-o wildcard", `-[io] \w+\+`}, {"! -i", `! -i `}, {"! -o", `! -o `},
	{"--sport", `--sport \d+\s`}, {"--dport", `--dport \d+\s`}, {"--sport a:b", `--sport \d+:\d+`}, {"--dport a:b", `--dport \d+:\d+`},
	{"! --sport", `! --sport`}, {"! --dport", `! --dport`},
	{"multiport --sports", `-m multiport (! )?--sports`}, {"multiport --dports", `-m multiport (! )?--dports`}, {"multiport --ports", `-m multiport (! )?--ports`},
	{"conntrack NEW", `--ctstate \S*NEW`}, {"conntrack ESTABLISHED", `--ctstate \S*ESTABLISHED`}, {"conntrack RELATED", `--ctstate \S*RELATED`}, {"conntrack INVALID", `--ctstate \S*INVALID`},
	{"state NEW", `--state \S*NEW`}, {"state ESTABLISHED", `--state \S*ESTABLISHED`}, {"state RELATED", `--state \S*RELATED`}, {"state INVALID", `--state \S*INVALID`},
	{"--icmp-type", `--icmp-type`}, {"--icmpv6-type", `--icmpv6-type`}, {"--tcp-flags", `--tcp-flags`}, {"--syn", `--syn`},
	{"-m comment", `-m comment --comment`}, {"-m limit", `-m limit --limit`}, {"-m statistic nth", `-m statistic --mode nth`},
	{"-m iprange", `-m iprange`}, {"-m mac", `-m mac (! )?--mac-source`}, {"-m length", `-m length --length`},
	{"REJECT icmp-port-unreachable", `--reject-with icmp-port-unreachable`}, {"REJECT icmp-host-unreachable", `--reject-with icmp-host-unreachable`},
	{"REJECT icmp-net-unreachable", `--reject-with icmp-net-unreachable`}, {"REJECT icmp-admin-prohibited", `--reject-with icmp-admin-prohibited`},
	{"REJECT tcp-reset", `--reject-with tcp-reset`}, {"REJECT icmp6-port-unreachable", `--reject-with icmp6-port-unreachable`},
	{"REJECT icmp6-addr-unreachable", `--reject-with icmp6-addr-unreachable`}, {"REJECT icmp6-no-route", `--reject-with icmp6-no-route`},
	{"REJECT icmp6-adm-prohibited", `--reject-with icmp6-adm-prohibited`}, {"REJECT (default)", `-j REJECT\s*$`},
	{"RETURN", `-j RETURN`}, {"user chain", `(?m)^:[a-z]\S* - `}, {"LOG", `-j LOG`},
	{"SNAT address", `-j SNAT --to-source [0-9.]+\s*$`}, {"SNAT range", `-j SNAT --to-source [0-9.]+-[0-9.]+`}, {"SNAT ports", `-j SNAT --to-source \S+:\d+`},
	{"DNAT address:port", `-j DNAT --to-destination [0-9.]+:\d+`}, {"DNAT address range", `-j DNAT --to-destination [0-9.]+-[0-9.]+`}, {"DNAT port range", `-j DNAT --to-destination \S+:\d+-\d+`},
	{"MASQUERADE", `-j MASQUERADE\s*$`}, {"MASQUERADE --to-ports", `-j MASQUERADE --to-ports`}, {"REDIRECT --to-ports", `-j REDIRECT --to-ports`},
	{"MARK", `-j MARK --set-(x)?mark`}, {"-m mark", `-m mark (! )?--mark`}, {"policy DROP", `(?m)^:(INPUT|FORWARD|OUTPUT) DROP`},
}

func kdCheckCoverage(t *testing.T) {
	t.Helper()
	var all strings.Builder
	for _, rs := range kdRuleSets {
		all.WriteString(rs.v4 + "\n" + rs.v6 + "\n")
	}
	text := all.String()
	for _, c := range kdCoverage {
		if !regexp.MustCompile(`(?m)` + c.re).MatchString(text) {
			t.Errorf("no rule set covers %s (pattern %q)", c.what, c.re)
		}
	}
	n := 0
	for _, rs := range kdRuleSets {
		n += len(rs.probes)
	}
	if len(kdRuleSets) < 12 || n < 60 {
		t.Errorf("%d rule sets and %d probes; issue 3 asks for at least 12 and 60", len(kdRuleSets), n)
	}
}

// kdRunRuleSet builds both topologies for one rule set, sends every probe
// through both and compares.
func kdRunRuleSet(t *testing.T, ctx context.Context, idx int, rs *kdRuleSet, be kdBackend) {
	sent := kdParseProbes(t, idx, rs)
	kdParallel <- struct{}{}
	defer func() { <-kdParallel }()
	kern := kdKernelTopo(t, ctx, idx, rs, be)
	nfp := kdNfpipeTopo(t, ctx, idx, rs)
	canon := kdNewCanon(t, rs.randomPorts)
	kobs := make([]kdObserved, len(sent))
	nobs := make([]kdObserved, len(sent))
	for i, s := range sent {
		var wg sync.WaitGroup
		for _, v := range []struct {
			tp  *kdTopo
			obs []kdObserved
		}{{kern, kobs}, {nfp, nobs}} {
			wg.Go(func() {
				var late []kdSeen
				v.obs[i], late = v.tp.probe(s)
				kdAttributeLate(sent[:i], v.obs, late)
			})
		}
		wg.Wait()
	}
	var wg sync.WaitGroup
	wg.Go(func() { kdAttributeLate(sent, kobs, kern.finish()) })
	wg.Go(func() { kdAttributeLate(sent, nobs, nfp.finish()) })
	wg.Wait()
	kout := make([]kdOutcome, len(sent))
	nout := make([]kdOutcome, len(sent))
	for i, s := range sent {
		kout[i], nout[i] = kobs[i].outcome(s, canon), nobs[i].outcome(s, canon)
	}

	var all strings.Builder
	tw := tabwriter.NewWriter(&all, 2, 8, 2, ' ', 0)
	for i, s := range sent {
		fmt.Fprintf(tw, "%s\tkernel %s\tnfpipe %s\n", s.spec, kout[i].summary, nout[i].summary)
		if kout[i].key() == nout[i].key() {
			for _, d := range kout[i].detail {
				fmt.Fprintf(tw, "  %s\n", d) // no tab: details do not widen the columns
			}
		}
	}
	tw.Flush()
	t.Logf("outcomes (slowest answer: kernel %v, nfpipe %v; a probe waits %v of quiet):\n%s",
		kern.slowest.Round(time.Millisecond), nfp.slowest.Round(time.Millisecond), kdQuiet, all.String())

	// The kernel must do what the author expected, or the comparison
	// proves nothing (a broken topology drops everything on both sides).
	var bad strings.Builder
	tw = tabwriter.NewWriter(&bad, 2, 8, 2, ' ', 0)
	nbad := 0
	for i, s := range sent {
		if kout[i].summary != s.want {
			nbad++
			fmt.Fprintf(tw, "%s\t%s\twant %s\tkernel %s\n", rs.name, s.spec, s.want, kout[i].summary)
			for _, d := range kout[i].detail {
				fmt.Fprintf(tw, "    %s\n", d)
			}
		}
	}
	tw.Flush()
	if nbad > 0 {
		t.Errorf("the kernel's outcome differs from the rule set's expectation for %d of %d probes (a harness or expectation bug, not an nfpipe one):\n%s", nbad, len(sent), bad.String())
	}
	kdAtLeastTwo(t, "kernel", kout)

	if nfp.refused != "" {
		t.Errorf("DISAGREEMENT rule set %q: the kernel loaded it, nfpipe refused it, so none of its %d probes ran through nfpipe:\n%s", rs.name, len(sent), nfp.refused)
		return
	}
	kdAtLeastTwo(t, "nfpipe", nout)
	var diff strings.Builder
	tw = tabwriter.NewWriter(&diff, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "RULE SET\tPROBE\tKERNEL\tNFPIPE\n")
	ndiff := 0
	for i, s := range sent {
		k, n := kout[i], nout[i]
		if k.key() == n.key() {
			continue
		}
		ndiff++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rs.name, s.spec, k.summary, n.summary)
		for j := 0; j < max(len(k.detail), len(n.detail)); j++ {
			kd, nd := "", ""
			if j < len(k.detail) {
				kd = k.detail[j]
			}
			if j < len(n.detail) {
				nd = n.detail[j]
			}
			fmt.Fprintf(tw, "\t\t  %s\t  %s\n", kd, nd)
		}
	}
	tw.Flush()
	if ndiff > 0 {
		t.Errorf("DISAGREEMENT: nfpipe and the kernel differ on %d of %d probes:\n%s", ndiff, len(sent), diff.String())
	}
	kdCheckLogs(t, nfp, rs)
}

// kdAtLeastTwo fails when every probe of a rule set had the same outcome:
// such a rule set cannot tell a router that drops (or forwards) everything
// from one that applies the rules.
func kdAtLeastTwo(t *testing.T, who string, outs []kdOutcome) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range outs {
		seen[o.summary] = true
	}
	if len(seen) < 2 {
		t.Errorf("%s: every probe of the rule set had the same outcome %v: the rule set proves nothing", who, slices.Sorted(maps.Keys(seen)))
	}
}

// kdAttributeLate gives each packet that arrived after the window of the
// last of sent to the latest probe it is about (same flow, either
// direction, or an ICMP error quoting it), else to the last probe.
func kdAttributeLate(sent []*kdSent, obs []kdObserved, late []kdSeen) {
	if len(sent) == 0 {
		return
	}
	for _, x := range late {
		j := len(sent) - 1
		for k := len(sent) - 1; k >= 0; k-- {
			if kdAbout(x.p, sent[k].pkt) {
				j = k
				break
			}
		}
		obs[j].late = append(obs[j].late, x)
	}
}

// kdAbout reports whether p belongs to the flow of probe pr, before any
// NAT: the same tuple in either direction, or an ICMP error quoting it.
func kdAbout(p, pr *kdPacket) bool {
	if p.isICMPError() && p.inner != nil {
		p = p.inner
	}
	if p.proto != pr.proto {
		return false
	}
	if p.isEcho() {
		return p.id == pr.id
	}
	fwd := p.src == pr.src && p.dst == pr.dst && p.sport == pr.sport && p.dport == pr.dport
	rev := p.src == pr.dst && p.dst == pr.src && p.sport == pr.dport && p.dport == pr.sport
	return fwd || rev
}

// kdCheckLogs checks that nfpipe logged each LOG prefix (the verdict going
// on is what the probes check).
func kdCheckLogs(t *testing.T, nfp *kdTopo, rs *kdRuleSet) {
	t.Helper()
	for _, prefix := range rs.logs {
		if !strings.Contains(nfp.router.stderr.String(), strings.TrimSpace(prefix)) {
			t.Errorf("nfpipe did not log LOG prefix %q:\n%s", prefix, nfp.router.stderr.String())
		}
	}
	wantNoPanic(t, "nfpipe router", nfp.router.stderr.String())
}

// kdParseProbes parses a rule set's probe specs. A TCP/UDP/ICMP tuple may
// be used once per rule set (a reply-direction probe is another tuple), so
// that no probe meets the connection state of another by accident.
func kdParseProbes(t *testing.T, idx int, rs *kdRuleSet) []*kdSent {
	t.Helper()
	seen := map[string]string{}
	var out []*kdSent
	for i, pr := range rs.probes {
		s, err := kdParseProbe(pr, idx*100+i)
		if err != nil {
			t.Fatalf("rule set %q: probe %q: %v", rs.name, pr.spec, err)
		}
		key := fmt.Sprintf("%d %s %d %s %d %d", s.pkt.proto, s.pkt.src, s.pkt.sport, s.pkt.dst, s.pkt.dport, s.pkt.id)
		if prev, ok := seen[key]; ok {
			t.Fatalf("rule set %q: probes %q and %q share a flow", rs.name, prev, pr.spec)
		}
		seen[key] = pr.spec
		out = append(out, s)
	}
	return out
}

func kdParseProbe(pr kdProbe, n int) (*kdSent, error) {
	f := strings.Fields(pr.spec)
	if len(f) < 4 || f[2] != ">" {
		return nil, fmt.Errorf(`want "PROTO SRC > DST ..."`)
	}
	s := &kdSent{kdProbe: pr}
	p := &kdPacket{}
	s.pkt = p
	var err error
	withPorts := false
	switch proto := f[0]; {
	case proto == "tcp":
		p.proto, withPorts = kdProtoTCP, true
	case proto == "udp":
		p.proto, withPorts = kdProtoUDP, true
	case proto == "icmp":
		p.proto = kdProtoICMP
	case proto == "icmp6":
		p.proto = kdProtoICMPv6
	case strings.HasPrefix(proto, "proto"):
		v, err := strconv.ParseUint(proto[5:], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("protocol %q: %v", proto, err)
		}
		p.proto = uint8(v)
	default:
		return nil, fmt.Errorf("unknown protocol %q", proto)
	}
	if withPorts {
		src, err1 := netip.ParseAddrPort(f[1])
		dst, err2 := netip.ParseAddrPort(f[3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("want ADDR:PORT: %v %v", err1, err2)
		}
		p.src, p.sport, p.dst, p.dport = src.Addr(), src.Port(), dst.Addr(), dst.Port()
	} else {
		if p.src, err = netip.ParseAddr(f[1]); err != nil {
			return nil, err
		}
		if p.dst, err = netip.ParseAddr(f[3]); err != nil {
			return nil, err
		}
	}
	if p.src.Is4() != p.dst.Is4() {
		return nil, fmt.Errorf("mixed address families")
	}
	if (p.proto == kdProtoICMP && p.v6()) || (p.proto == kdProtoICMPv6 && !p.v6()) {
		return nil, fmt.Errorf("icmp is for IPv4 and icmp6 for IPv6")
	}
	rest := f[4:]
	what := ""
	if len(rest) > 0 && !strings.Contains(rest[0], "=") {
		what, rest = rest[0], rest[1:]
	}
	plen := 16
	switch {
	case p.proto == kdProtoTCP:
		if what == "" {
			return nil, fmt.Errorf("tcp needs its flags")
		}
		if p.flags, err = kdParseFlags(what); err != nil {
			return nil, err
		}
		p.seq = 0x10000000 + uint32(n)*0x10000
		if p.flags&kdACK != 0 {
			p.ack = 0x60000000 + uint32(n)*0x10000
		}
		if p.flags&(kdSYN|kdRST) != 0 {
			plen = 0
		}
	case p.isICMP():
		switch what {
		case "echo":
			p.icmpType, p.id, p.icmpSeq = 8, uint16(0x4000+n), 1
			if p.v6() {
				p.icmpType = 128
			}
		case "unreach-port":
			p.icmpType, p.icmpCode = 3, 3
			if p.v6() {
				p.icmpType, p.icmpCode = 1, 4
			}
		default:
			return nil, fmt.Errorf("unknown ICMP message %q (echo, unreach-port)", what)
		}
	default:
		if what != "" {
			return nil, fmt.Errorf("unexpected %q", what)
		}
	}
	quote := -1
	for _, kv := range rest {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "len":
			if plen, err = strconv.Atoi(v); err != nil || plen < 0 || plen > 1400 {
				return nil, fmt.Errorf("len=%q", v)
			}
		case "mac":
			if s.srcMAC, err = net.ParseMAC(v); err != nil {
				return nil, err
			}
		case "from":
			s.from = v
		case "quote":
			if quote, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("quote=%q", v)
			}
		default:
			return nil, fmt.Errorf("unknown key %q", k)
		}
	}
	if p.isICMPError() {
		if quote < 0 {
			return nil, fmt.Errorf("an ICMP error needs quote=PORT")
		}
		p.inner = &kdPacket{src: p.dst, dst: p.src, proto: kdProtoUDP, sport: uint16(quote), dport: 9, payload: kdMarker(n, 8)}
	} else {
		p.payload = kdMarker(n, plen)
	}
	if s.from == "" {
		s.from = kdLinkOf(p.src)
	}
	l := kdLinkByEnd(s.from)
	if l == nil {
		return nil, fmt.Errorf("no link %q", s.from)
	}
	if s.srcMAC == nil {
		s.srcMAC, _ = net.ParseMAC(l.endMAC)
	}
	return s, nil
}

// kdMarker is a probe's payload: a marker naming the probe, repeated.
func kdMarker(n, size int) []byte {
	m := fmt.Sprintf("nfkd-%04d.", n)
	return []byte(strings.Repeat(m, size/len(m)+1)[:size])
}

// kdLinkOf returns the endpoint link whose router subnet holds a.
func kdLinkOf(a netip.Addr) string {
	for _, l := range kdLinks {
		for _, p := range []string{l.v4, l.v6} {
			if netip.MustParsePrefix(p).Masked().Contains(a) {
				return l.end
			}
		}
	}
	return "c0"
}

func kdLinkByEnd(end string) *kdLink {
	for i := range kdLinks {
		if kdLinks[i].end == end {
			return &kdLinks[i]
		}
	}
	return nil
}

// kdRouterAddr reports whether a is one of the router's own addresses.
func kdRouterAddr(a netip.Addr) bool {
	for _, l := range kdLinks {
		for _, p := range []string{l.v4, l.v6} {
			if netip.MustParsePrefix(p).Addr() == a {
				return true
			}
		}
	}
	return false
}

// kdTopo is one built topology: the router (kernel or nfpipe) and the
// captures of C and S.
type kdTopo struct {
	variant string
	// refused is nfpipe's error when it did not accept the rule set.
	refused string
	router  *proc // nfpipe only
	caps    []*kdCapture
	// taken counts, per capture, the packets already given to a probe.
	taken []int
	// slowest is the longest a probe's last packet took to arrive.
	slowest time.Duration
}

// kdNS creates the three namespaces of a topology ("c", "s", and the
// router's "r"), deleted when the test ends.
func kdNS(t *testing.T, idx int, variant byte) (c, s, r string) {
	t.Helper()
	name := func(role byte) string { return netns(t, fmt.Sprintf("nfkd%02d%c%c", idx, variant, role)) }
	return name('c'), name('s'), name('r')
}

// kdExec runs a setup command to completion (at most 20s) and returns its
// combined output. It does not use the helpers' run, which logs every
// process of a failed test: a topology runs dozens of ip commands.
func kdExec(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func kdSysctl(t *testing.T, ctx context.Context, ns string, kv ...string) {
	t.Helper()
	args := append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, kv...)
	if out, err := kdExec(ctx, "", "ip", args...); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// kdIP runs ip commands in a namespace, in one batch; opts are ip's global
// options (such as -6).
func kdIP(t *testing.T, ctx context.Context, ns string, opts []string, cmds ...string) {
	t.Helper()
	args := append(append([]string{"-n", ns}, opts...), "-batch", "-")
	if out, err := kdExec(ctx, strings.Join(cmds, "\n")+"\n", "ip", args...); err != nil {
		t.Fatalf("ip %s: %v\n%s\n%s", strings.Join(args, " "), err, strings.Join(cmds, "\n"), out)
	}
}

// Namespace settings. C owns no address and must stay silent; S must
// answer every probe at once (no ICMP rate limit, no SYN-ACK retransmits
// that would land in a later probe's window, no reverse-path filter for the
// two-legged server); the kernel router forwards and sends no redirects.
var (
	kdClientSysctls = []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}
	kdServerSysctls = []string{"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.tcp_synack_retries=0", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}
	kdRouterSysctls = []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
		"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}
)

// kdRouterNeighbours are the router's static neighbours: (address, MAC,
// router interface).
func kdRouterNeighbours() [][3]string {
	var out [][3]string
	for _, a := range kdClientAddrs {
		out = append(out, [3]string{a, kdLinks[0].endMAC, kdLinks[0].router})
	}
	for _, l := range kdLinks[1:] {
		for _, a := range kdServerAddrs[l.end] {
			out = append(out, [3]string{strings.Split(a, "/")[0], l.endMAC, l.router})
		}
	}
	return out
}

// kdSaveFile returns a rule set's save text for one family, with the header
// comment iptables-save writes (nfpipe reads the family from it).
func kdSaveFile(text string, v6 bool) string {
	prog := "iptables-save"
	if v6 {
		prog = "ip6tables-save"
	}
	return "# Generated by " + prog + " v1.8.9 (nfpipe differential test)\n" + strings.TrimLeft(text, "\n")
}

// kdKernelTopo builds the topology around a Linux kernel router.
func kdKernelTopo(t *testing.T, ctx context.Context, idx int, rs *kdRuleSet, be kdBackend) *kdTopo {
	t.Helper()
	c, s, r := kdNS(t, idx, 'k')
	kdSysctl(t, ctx, c, kdClientSysctls...)
	kdSysctl(t, ctx, s, kdServerSysctls...)
	kdSysctl(t, ctx, r, kdRouterSysctls...)
	cmds := []string{"link set lo up"}
	for _, l := range kdLinks {
		peer := c
		if l.side == 's' {
			peer = s
		}
		cmds = append(cmds,
			fmt.Sprintf("link add %s address %s type veth peer name %s address %s netns %s", l.router, l.routerMAC, l.end, l.endMAC, peer),
			fmt.Sprintf("addr add %s dev %s", l.v4, l.router),
			fmt.Sprintf("addr add %s dev %s nodad", l.v6, l.router),
			fmt.Sprintf("link set %s up", l.router))
	}
	for _, n := range kdRouterNeighbours() {
		cmds = append(cmds, fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", n[0], n[1], n[2]))
	}
	kdIP(t, ctx, r, nil, cmds...)
	for _, fam := range []struct {
		text, prog string
		v6         bool
	}{{rs.v4, be.v4, false}, {rs.v6, be.v6, true}} {
		if strings.TrimSpace(fam.text) == "" {
			continue
		}
		if out, err := kdExec(ctx, kdSaveFile(fam.text, fam.v6), "ip", "netns", "exec", r, fam.prog); err != nil {
			t.Fatalf("the kernel refused rule set %q (%s): %v\n%s", rs.name, fam.prog, err, out)
		}
	}
	return kdFinishTopo(t, ctx, "kernel", c, s)
}

// kdNfpipeTopo builds the topology around an nfpipe router: it runs in a
// namespace of its own, where it creates its TAPs, whose kernel sides are
// then moved into C and S (a TAP keeps working across the move while
// nfpipe holds its fd).
func kdNfpipeTopo(t *testing.T, ctx context.Context, idx int, rs *kdRuleSet) *kdTopo {
	t.Helper()
	c, s, r := kdNS(t, idx, 'n')
	kdSysctl(t, ctx, c, kdClientSysctls...)
	kdSysctl(t, ctx, s, kdServerSysctls...)
	dir := shortDir(t)
	args := []string{"netns", "exec", r, nfpipeBin, "vnf", "router", "--name", "kd", "--log-level", "debug", "--timeout", "5m"}
	for _, l := range kdLinks {
		args = append(args, "--if", fmt.Sprintf("%s=tap:%s,ip=%s,ip=%s,mac=%s", l.router, l.end, l.v4, l.v6, l.routerMAC))
	}
	for _, n := range kdRouterNeighbours() {
		args = append(args, "--neigh", fmt.Sprintf("%s lladdr %s dev %s", n[0], n[1], n[2]))
	}
	for _, fam := range []struct {
		text, file string
		v6         bool
	}{{rs.v4, "v4.rules", false}, {rs.v6, "v6.rules", true}} {
		if strings.TrimSpace(fam.text) == "" {
			continue
		}
		path := filepath.Join(dir, fam.file)
		if err := os.WriteFile(path, []byte(kdSaveFile(fam.text, fam.v6)), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--rules", path)
	}
	tp := &kdTopo{variant: "nfpipe"}
	tp.router = start(t, ctx, "nfpipe router", procSpec{Path: "ip", Args: args})
	// Rules are installed after the interfaces are up: the debug line
	// about the last interface says both are done.
	last := "msg=interface vnf=kd kind=router if=" + kdLinks[len(kdLinks)-1].router
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(tp.router.stderr.String(), last); time.Sleep(20 * time.Millisecond) {
		if tp.router.exited() {
			tp.refused = strings.TrimSpace(tp.router.stderr.String())
			if tp.refused == "" {
				t.Fatalf("nfpipe router exited (status %d) without a word", tp.router.code)
			}
			return tp
		}
		if time.Now().After(deadline) {
			t.Fatalf("nfpipe router not ready after 15s:\n%s", tp.router.stderr.String())
		}
	}
	var cmds []string
	for _, l := range kdLinks {
		peer := c
		if l.side == 's' {
			peer = s
		}
		cmds = append(cmds, fmt.Sprintf("link set %s netns %s", l.end, peer))
	}
	kdIP(t, ctx, r, nil, cmds...)
	ft := kdFinishTopo(t, ctx, "nfpipe", c, s)
	ft.router = tp.router
	return ft
}

// kdFinishTopo configures C and S once their links are there, starts S's
// servers and opens the captures.
func kdFinishTopo(t *testing.T, ctx context.Context, variant, c, s string) *kdTopo {
	t.Helper()
	kdIP(t, ctx, c, nil, "link set lo up", fmt.Sprintf("link set c0 address %s", kdLinks[0].endMAC), "link set c0 up")
	cmds := []string{"link set lo up"}
	for _, l := range kdLinks[1:] {
		cmds = append(cmds, fmt.Sprintf("link set %s address %s", l.end, l.endMAC), fmt.Sprintf("link set %s up", l.end))
		for _, a := range kdServerAddrs[l.end] {
			if strings.Contains(a, ":") {
				cmds = append(cmds, fmt.Sprintf("addr add %s dev %s nodad", a, l.end))
			} else {
				cmds = append(cmds, fmt.Sprintf("addr add %s dev %s", a, l.end))
			}
		}
		for _, p := range []string{l.v4, l.v6} {
			cmds = append(cmds, fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", strings.Split(p, "/")[0], l.routerMAC, l.end))
		}
	}
	for _, a := range kdNATAddrs {
		cmds = append(cmds, fmt.Sprintf("neigh replace %s lladdr %s dev s1 nud permanent", a, kdLinks[1].routerMAC))
	}
	gw := func(p string) string { return strings.Split(p, "/")[0] }
	cmds = append(cmds,
		fmt.Sprintf("route add default via %s dev s1", gw(kdLinks[1].v4)),
		fmt.Sprintf("route add default via %s dev s1", gw(kdLinks[1].v6)),
		// Answers from the wan0 network's addresses go back through wan0.
		"rule add from 203.0.113.0/24 table 100",
		fmt.Sprintf("route add default via %s dev s2 table 100", gw(kdLinks[2].v4)),
		fmt.Sprintf("route add default via %s dev s2 table 100", gw(kdLinks[2].v6)))
	kdIP(t, ctx, s, nil, cmds...)
	kdIP(t, ctx, s, []string{"-6"}, "rule add from 2001:db8:3::/64 table 100")
	kdServe(t, s)
	tp := &kdTopo{variant: variant}
	for _, l := range kdLinks {
		ns := c
		if l.side == 's' {
			ns = s
		}
		cp, err := kdOpenCapture(ns, l)
		if err != nil {
			t.Fatalf("%s: capture on %s in %s: %v", variant, l.end, ns, err)
		}
		t.Cleanup(cp.close)
		tp.caps = append(tp.caps, cp)
	}
	return tp
}

// kdInNS runs f on an OS thread switched into the named network namespace;
// sockets f opens stay in that namespace. The thread is discarded if it
// cannot switch back.
func kdInNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime ends the thread with the goroutine.
			errc <- fmt.Errorf("setns back from %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// kdServe starts S's services: TCP listeners (never accepted from: a
// listening port answers a SYN with a SYN-ACK, which is all the probes
// need) and a UDP echo bound to each address, so that each answer comes
// from the address the probe reached.
func kdServe(t *testing.T, ns string) {
	t.Helper()
	var closers []func() error
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
		wg.Wait()
	})
	err := kdInNS(ns, func() error {
		for _, p := range kdTCPPorts {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			closers = append(closers, l.Close)
		}
		for _, addrs := range kdServerAddrs {
			for _, a := range addrs {
				ap := netip.AddrPortFrom(netip.MustParsePrefix(a).Addr(), kdUDPEcho)
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
				if err != nil {
					return err
				}
				closers = append(closers, c.Close)
				wg.Go(func() {
					buf := make([]byte, 2048)
					for {
						n, from, err := c.ReadFromUDPAddrPort(buf)
						if err != nil {
							return
						}
						c.WriteToUDPAddrPort(buf[:n], from)
					}
				})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("servers in %s: %v", ns, err)
	}
}

// kdCapture is an AF_PACKET socket on one endpoint link: it sends the
// probes and keeps what arrives (not what the namespace itself sends) that
// is relevant: unicast IP between global addresses, no neighbour discovery
// or multicast listener chatter.
type kdCapture struct {
	link    kdLink
	fd      int
	ifindex int
	mu      sync.Mutex
	pkts    []*kdPacket
	stop    atomic.Bool
	done    chan struct{}
	once    sync.Once
}

func kdHtons(v uint16) uint16 { return v<<8 | v>>8 }

func kdOpenCapture(ns string, l kdLink) (*kdCapture, error) {
	c := &kdCapture{link: l, done: make(chan struct{})}
	err := kdInNS(ns, func() error {
		ifi, err := net.InterfaceByName(l.end)
		if err != nil {
			return err
		}
		c.ifindex = ifi.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(kdHtons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: kdHtons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	go c.read()
	return c, nil
}

func (c *kdCapture) read() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for !c.stop.Load() {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		p := kdParseFrame(buf[:n])
		if p == nil || !kdRelevant(p) {
			continue
		}
		if p.payload != nil {
			p.payload = slices.Clone(p.payload)
		}
		c.mu.Lock()
		c.pkts = append(c.pkts, p)
		c.mu.Unlock()
	}
}

func kdRelevant(p *kdPacket) bool {
	for _, a := range []netip.Addr{p.src, p.dst} {
		if !a.IsGlobalUnicast() {
			return false
		}
		if a.Is4() && a.As4()[3] == 255 {
			return false
		}
	}
	if p.proto == kdProtoICMPv6 && (p.icmpType >= 130 && p.icmpType <= 137 || p.icmpType == 143) {
		return false
	}
	return true
}

func (c *kdCapture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}

func (c *kdCapture) since(n int) []*kdPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pkts[n:])
}

func (c *kdCapture) send(frame []byte) error {
	proto := uint16(frame[12])<<8 | uint16(frame[13])
	return unix.Sendto(c.fd, frame, 0, &unix.SockaddrLinklayer{Protocol: kdHtons(proto), Ifindex: c.ifindex})
}

func (c *kdCapture) close() {
	c.once.Do(func() {
		c.stop.Store(true)
		<-c.done
		unix.Close(c.fd)
	})
}

// kdSeen is a packet that arrived on a link.
type kdSeen struct {
	link string
	p    *kdPacket
}

// kdObserved is everything a probe caused: far is what arrived on the
// other side's links, near what came back to the sender's side.
type kdObserved struct {
	err       string
	far, near []kdSeen
	// late arrived after the probe's window, before the next probe.
	late []kdSeen
}

// take returns what arrived since the last take, split into the packets
// on links of side and on the other side's links.
func (tp *kdTopo) take(side byte) (same, other []kdSeen) {
	for i, c := range tp.caps {
		pk := c.since(tp.taken[i])
		tp.taken[i] += len(pk)
		for _, p := range pk {
			if c.link.side == side {
				same = append(same, kdSeen{c.link.end, p})
			} else {
				other = append(other, kdSeen{c.link.end, p})
			}
		}
	}
	return same, other
}

func (tp *kdTopo) arrived() int {
	n := 0
	for _, c := range tp.caps {
		n += c.count()
	}
	return n
}

// probe sends one probe and waits until nothing new has arrived for
// kdQuiet. What arrived between the previous probe's window and this one
// is returned as late (it belongs to the previous probe, and is a failure:
// a window too short for it).
func (tp *kdTopo) probe(s *kdSent) (obs kdObserved, late []kdSeen) {
	if tp.refused != "" {
		return kdObserved{err: "rules refused"}, nil
	}
	if tp.taken == nil {
		tp.taken = make([]int, len(tp.caps))
		tp.take('c') // setup chatter (there should be none)
	} else {
		a, b := tp.take('c')
		late = append(a, b...)
	}
	var from *kdCapture
	for _, c := range tp.caps {
		if c.link.end == s.from {
			from = c
		}
	}
	dst, _ := net.ParseMAC(from.link.routerMAC)
	base := tp.arrived()
	if err := from.send(s.pkt.frame(dst, s.srcMAC)); err != nil {
		return kdObserved{err: fmt.Sprintf("send on %s: %v", s.from, err)}, late
	}
	sent := time.Now()
	last, lastN := sent, base
	for time.Since(last) < kdQuiet && time.Since(sent) < kdMaxWait {
		time.Sleep(10 * time.Millisecond)
		if n := tp.arrived(); n != lastN {
			last, lastN = time.Now(), n
		}
	}
	if lastN != base {
		tp.slowest = max(tp.slowest, last.Sub(sent))
	}
	obs.near, obs.far = tp.take(from.link.side)
	return obs, late
}

// finish waits a last kdQuiet and returns what arrived after the last
// probe's window.
func (tp *kdTopo) finish() []kdSeen {
	if tp.refused != "" || tp.taken == nil {
		return nil
	}
	time.Sleep(kdQuiet)
	a, b := tp.take('c')
	return append(a, b...)
}

// kdCanon spells addresses and ports for outcomes; a port in one of the
// rule set's random port ranges is spelled as the range.
type kdCanon struct{ ports [][2]uint16 }

func kdNewCanon(t *testing.T, ranges []string) kdCanon {
	t.Helper()
	var c kdCanon
	for _, r := range ranges {
		a, b, ok := strings.Cut(r, "-")
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if !ok || err1 != nil || err2 != nil || lo > hi {
			t.Fatalf("bad port range %q", r)
		}
		c.ports = append(c.ports, [2]uint16{uint16(lo), uint16(hi)})
	}
	return c
}

func (c kdCanon) port(p uint16) string {
	for _, r := range c.ports {
		if p >= r[0] && p <= r[1] {
			return fmt.Sprintf("%d-%d", r[0], r[1])
		}
	}
	return strconv.Itoa(int(p))
}

func (c kdCanon) ap(a netip.Addr, p uint16) string {
	if a.Is6() {
		return "[" + a.String() + "]:" + c.port(p)
	}
	return a.String() + ":" + c.port(p)
}

// kdOutcome is a probe's outcome: the summary the author writes down and
// the details (one line per packet) that must also match between kernel
// and nfpipe.
type kdOutcome struct {
	summary string
	detail  []string
}

func (o kdOutcome) key() string { return o.summary + "\n" + strings.Join(o.detail, "\n") }

// tuple spells a packet's addresses, and ports or echo id.
func (c kdCanon) tuple(p *kdPacket) string {
	switch {
	case p.proto == kdProtoTCP || p.proto == kdProtoUDP:
		return c.ap(p.src, p.sport) + ">" + c.ap(p.dst, p.dport)
	case p.isEcho():
		return fmt.Sprintf("%s>%s id=%d", p.src, p.dst, p.id)
	}
	return fmt.Sprintf("%s>%s", p.src, p.dst)
}

func kdProtoName(p *kdPacket) string {
	switch p.proto {
	case kdProtoTCP:
		return "tcp"
	case kdProtoUDP:
		return "udp"
	case kdProtoICMP:
		return "icmp"
	case kdProtoICMPv6:
		return "icmp6"
	}
	return fmt.Sprintf("proto%d", p.proto)
}

// describe spells one packet for the detail lines, relative to the probe:
// TTL, IP ID, checksums, MACs and the length of an ICMP error's quote are
// left out (they may differ legitimately).
func (c kdCanon) describe(where string, p *kdPacket, s *kdSent) string {
	pr := s.pkt
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s ", where, kdProtoName(p))
	payload := func() {
		switch {
		case len(p.payload) == 0:
		case string(p.payload) == string(pr.payload):
			b.WriteString(" payload=probe's")
		default:
			fmt.Fprintf(&b, " payload=%d bytes, not the probe's", len(p.payload))
		}
	}
	switch {
	case p.proto == kdProtoTCP:
		fmt.Fprintf(&b, "%s %s", c.tuple(p), kdFlagNames(p.flags))
		switch {
		case p.seq == pr.seq:
			b.WriteString(" seq=probe's")
		case pr.flags&kdACK != 0 && p.seq == pr.ack:
			b.WriteString(" seq=probe's ack")
		case p.seq == 0:
			b.WriteString(" seq=0")
		}
		if p.flags&kdACK != 0 {
			switch d := p.ack - pr.seq; {
			case p.ack == pr.ack && pr.flags&kdACK != 0:
				b.WriteString(" ack=probe's")
			case d < 1<<16:
				fmt.Fprintf(&b, " ack=probe seq+%d", d)
			default:
				b.WriteString(" ack=other")
			}
		}
		payload()
	case p.proto == kdProtoUDP:
		b.WriteString(c.tuple(p))
		payload()
	case p.isEcho():
		fmt.Fprintf(&b, "%s %s", kdICMPName(p.v6(), p.icmpType, p.icmpCode), c.tuple(p))
		payload()
	case p.isICMP():
		fmt.Fprintf(&b, "%s %s>%s", kdICMPName(p.v6(), p.icmpType, p.icmpCode), p.src, p.dst)
		if p.inner != nil {
			fmt.Fprintf(&b, " quoting %s %s", kdProtoName(p.inner), c.tuple(p.inner))
			if p.inner.proto == kdProtoTCP && p.inner.seq != pr.seq {
				b.WriteString(" (quoted seq is not the probe's)")
			}
		}
	default:
		b.WriteString(c.tuple(p))
		payload()
	}
	return b.String()
}

// outcome turns what was observed into the summary and the details.
func (obs kdObserved) outcome(s *kdSent, c kdCanon) kdOutcome {
	if obs.err != "" {
		return kdOutcome{summary: obs.err}
	}
	var o kdOutcome
	for _, x := range obs.far {
		o.detail = append(o.detail, c.describe("far "+x.link, x.p, s))
	}
	for _, x := range obs.near {
		o.detail = append(o.detail, c.describe("near "+x.link, x.p, s))
	}
	for _, x := range obs.late {
		o.detail = append(o.detail, c.describe("LATE "+x.link, x.p, s))
	}
	o.summary = c.farSummary(obs.far, s) + "/" + c.nearSummary(obs.near, s)
	if len(obs.late) > 0 {
		o.summary += fmt.Sprintf(" +%d late", len(obs.late))
	}
	return o
}

func (c kdCanon) farSummary(far []kdSeen, s *kdSent) string {
	if len(far) == 0 {
		return "-"
	}
	pr := s.pkt
	var toks []string
	for i, x := range far {
		p := x.p
		same := p.proto == pr.proto && (!p.isICMP() || p.icmpType == pr.icmpType)
		if !same {
			toks = append(toks, "other:"+kdProtoName(p))
			continue
		}
		if i > 0 {
			toks = append(toks, "again")
			continue
		}
		var ch []string
		ends := []struct {
			name        string
			a, pa       netip.Addr
			port, pport uint16
		}{{"src", p.src, pr.src, p.sport, pr.sport}, {"dst", p.dst, pr.dst, p.dport, pr.dport}}
		for _, e := range ends {
			switch {
			case e.a != e.pa && e.port != e.pport:
				ch = append(ch, e.name+"="+c.ap(e.a, e.port))
			case e.a != e.pa:
				ch = append(ch, e.name+"="+e.a.String())
			case e.port != e.pport:
				ch = append(ch, e.name+"=:"+c.port(e.port))
			}
		}
		if p.isEcho() && p.id != pr.id {
			ch = append(ch, fmt.Sprintf("id=%d", p.id))
		}
		tok := "fwd"
		if len(ch) > 0 {
			tok += "[" + strings.Join(ch, ",") + "]"
		}
		toks = append(toks, tok)
	}
	return strings.Join(toks, "+")
}

func (c kdCanon) nearSummary(near []kdSeen, s *kdSent) string {
	if len(near) == 0 {
		return "-"
	}
	pr := s.pkt
	var toks []string
	for _, x := range near {
		p := x.p
		var tok string
		var notes []string
		reverse := func() {
			if p.src != pr.dst || p.sport != pr.dport {
				notes = append(notes, "from="+c.ap(p.src, p.sport))
			}
			if p.dst != pr.src || p.dport != pr.sport {
				notes = append(notes, "to="+c.ap(p.dst, p.dport))
			}
		}
		switch {
		case p.proto == kdProtoTCP:
			switch {
			case p.flags&(kdSYN|kdACK) == kdSYN|kdACK:
				tok = "synack"
			case p.flags&kdRST != 0:
				tok = "rst"
			default:
				tok = "tcp-" + kdFlagNames(p.flags)
			}
			reverse()
		case p.proto == kdProtoUDP:
			tok = "udp-reply"
			reverse()
		case p.isEcho():
			tok = kdICMPName(p.v6(), p.icmpType, p.icmpCode)
			if p.src != pr.dst || p.dst != pr.src || p.id != pr.id {
				notes = append(notes, "reply="+c.tuple(p))
			}
		case p.isICMPError():
			tok = kdICMPName(p.v6(), p.icmpType, p.icmpCode)
			switch {
			case kdRouterAddr(p.src):
				tok += "@router"
			case p.src == pr.dst:
				tok += "@dst"
			default:
				tok += "@" + p.src.String()
			}
			if p.dst != pr.src {
				notes = append(notes, "to="+p.dst.String())
			}
			if p.inner == nil || p.inner.proto != pr.proto || c.tuple(p.inner) != c.tuple(pr) {
				q := "none"
				if p.inner != nil {
					q = kdProtoName(p.inner) + " " + c.tuple(p.inner)
				}
				notes = append(notes, "quote="+q)
			}
		default:
			tok = kdProtoName(p)
			reverse()
		}
		if len(notes) > 0 {
			tok += "[" + strings.Join(notes, ",") + "]"
		}
		toks = append(toks, tok)
	}
	return strings.Join(toks, "+")
}
