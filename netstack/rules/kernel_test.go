package rules

import (
	"cmp"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// variant is one iptables backend: legacy (x_tables) or nft (nf_tables).
type variant struct{ name, suffix string }

// kernelVariants returns the iptables backends installed, or skips when
// there is none or no network namespace can be made.
func kernelVariants(t *testing.T) (ip string, vs []variant) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: the kernel comparison needs a network namespace")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip (iproute2) is not installed: can't create a network namespace")
	}
	for _, v := range []variant{{"legacy", "-legacy"}, {"nft", "-nft"}, {"default", ""}} {
		ok := true
		for _, tool := range []string{"iptables", "ip6tables"} {
			for _, verb := range []string{"-restore", "-save"} {
				if _, err := exec.LookPath(tool + v.suffix + verb); err != nil {
					ok = false
				}
			}
		}
		if ok && (v.suffix != "" || len(vs) == 0) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("iptables-restore is not installed in CI: scripts/install-deps.sh must install iptables")
		}
		t.Skip("iptables-restore is not installed: install iptables to check Save output against the kernel")
	}
	return ip, vs
}

func newNS(t *testing.T, ip string) string {
	t.Helper()
	ns := fmt.Sprintf("nfpipe-rules-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("can't create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	return ns
}

// tool names iptables' restore or save program for a family and backend.
func (v variant) tool(f Family, verb string) string {
	if f == IPv6 {
		return "ip6tables" + v.suffix + verb
	}
	return "iptables" + v.suffix + verb
}

// restore loads a save file into the namespace's kernel tables.
func restore(ip, ns string, v variant, f Family, save string) (string, error) {
	cmd := exec.Command(ip, "netns", "exec", ns, v.tool(f, "-restore"))
	cmd.Stdin = strings.NewReader(save)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// missingModule reports whether iptables failed for want of a kernel
// module, which says nothing about the rules.
func missingModule(out string) bool {
	return strings.Contains(out, "Couldn't load") || strings.Contains(out, "kernel module")
}

// mergePorts folds consecutive tcp (or udp) matches that set different
// fields into one, as the nft backend stores them: the meaning is the same.
func mergePorts(ms []Match) []Match {
	var out []Match
	for _, m := range ms {
		if len(out) > 0 {
			switch prev := out[len(out)-1].(type) {
			case *TCP:
				if cur, ok := m.(*TCP); ok && (prev.Src == nil || cur.Src == nil) && (prev.Dst == nil || cur.Dst == nil) && (prev.Flags == nil || cur.Flags == nil) {
					merged := *prev
					merged.Src, merged.Dst, merged.Flags = cmp.Or(prev.Src, cur.Src), cmp.Or(prev.Dst, cur.Dst), cmp.Or(prev.Flags, cur.Flags)
					out[len(out)-1] = &merged
					continue
				}
			case *UDP:
				if cur, ok := m.(*UDP); ok && (prev.Src == nil || cur.Src == nil) && (prev.Dst == nil || cur.Dst == nil) {
					merged := *prev
					merged.Src, merged.Dst = cmp.Or(prev.Src, cur.Src), cmp.Or(prev.Dst, cur.Dst)
					out[len(out)-1] = &merged
					continue
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// normalRules lists each rule as "TABLE CHAIN spec | matches", its
// matches merged and sorted, since backends may store them differently.
func normalRules(rs *Ruleset, f Family) []string {
	var out []string
	for _, t := range rs.Tables(f) {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				var ms []string
				for _, m := range mergePorts(r.Matches) {
					var b strings.Builder
					b.WriteString("-m " + m.Module())
					m.appendOptions(&b)
					ms = append(ms, b.String())
				}
				slices.Sort(ms)
				x := *r
				x.Matches = nil
				out = append(out, fmt.Sprintf("%s %s %s | %s", t.Name, c.Name, x.Spec(), strings.Join(ms, " ")))
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestKernelAcceptsSave loads Save's output into a real kernel (in a fresh
// network namespace, with each iptables backend installed), reads it back
// with iptables-save and checks that it means the same; and checks that the
// kernel refuses what Validate refuses.
func TestKernelAcceptsSave(t *testing.T) {
	ip, variants := kernelVariants(t)

	var rs Ruleset
	for _, tt := range parseCases {
		fam := tt.fam
		if fam == 0 {
			fam = IPv4
		}
		var cmds []string
		for _, c := range append(append([]string(nil), tt.pre...), tt.cmd) {
			if strings.HasPrefix(c, "-N ") && rs.Table(fam, "filter") != nil && rs.Table(fam, "filter").Chain(c[3:]) != nil {
				c = "-F " + c[3:]
			}
			cmds = append(cmds, c)
		}
		if err := rs.AddCommands(tt.name, cmds, ParseOptions{Family: fam}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{realIPv4Save, realIPv6Save} {
		if err := rs.AddFile("real", []byte(f), ParseOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ns := newNS(t, ip)
			for _, f := range []Family{IPv4, IPv6} {
				save := rs.Save(f)
				if out, err := restore(ip, ns, v, f, save); err != nil {
					if missingModule(out) {
						t.Skipf("the kernel lacks a netfilter module: %s", out)
					}
					t.Fatalf("%v: the kernel refused Save's output: %v: %s\n%s", f, err, out, save)
				}
				out, err := exec.Command(ip, "netns", "exec", ns, v.tool(f, "-save")).Output()
				if err != nil {
					t.Fatalf("%s: %v", v.tool(f, "-save"), err)
				}
				var back Ruleset
				if err := back.AddFile(v.tool(f, "-save"), out, ParseOptions{Family: f}); err != nil {
					t.Fatalf("%s output does not parse: %v\n%s", v.tool(f, "-save"), err, out)
				}
				if got, want := normalRules(&back, f), normalRules(&rs, f); !slices.Equal(got, want) {
					t.Errorf("%v: the kernel holds other rules:\n%s", f, diffLines(got, want))
				}
			}

			// What Validate refuses, the kernel refuses too.
			for _, bad := range []string{
				"-t nat -N m\n-t nat -A PREROUTING -j m\n-t nat -A m -j MASQUERADE",
				"-t mangle -N m\n-t mangle -A m -m mac --mac-source 00:11:22:33:44:55\n-t mangle -A POSTROUTING -j m",
				"-N a\n-N b\n-A a -j b\n-A b -j a\n-A INPUT -j a",
				"-t raw -A PREROUTING -j REJECT",
				"-t mangle -A INPUT -j REJECT",
				"-t nat -A OUTPUT -j SNAT --to-source 10.0.0.1",
				"-t nat -N d\n-t nat -A d -j DNAT --to-destination 10.0.0.1\n-t nat -A INPUT -j d",
			} {
				var rs Ruleset
				if err := rs.AddFile("bad", []byte("iptables "+strings.ReplaceAll(bad, "\n", "\niptables ")), ParseOptions{}); err != nil {
					t.Fatal(err)
				}
				if rs.Validate() == nil {
					t.Fatalf("Validate accepts %q", bad)
				}
				if out, err := restore(ip, ns, v, IPv4, rs.Save(IPv4)); err == nil {
					t.Errorf("the kernel accepts what Validate refuses:\n%s", rs.Save(IPv4))
				} else if missingModule(out) {
					t.Logf("kernel module missing: %s", out)
				}
			}
		})
	}
}

// diffLines lists the lines only in got (+) and only in want (-).
func diffLines(got, want []string) string {
	var b strings.Builder
	for _, l := range got {
		if !slices.Contains(want, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range want {
		if !slices.Contains(got, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// TestKernelAgreesWithValidate makes random rules from pieces of every
// kind, in every table and chain (directly or through a user chain), and
// checks that the kernel (with iptables-restore) accepts exactly those that
// AddFile and Validate accept. -p icmp in IPv6, which Linux takes as
// protocol 1 and nfpipe refuses, is left out.
func TestKernelAgreesWithValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: one iptables-restore per rule")
	}
	ip, variants := kernelVariants(t)
	protos := []string{"", "-p tcp", "-p udp", "! -p tcp", "-p sctp", "-p udplite", "-p 47", "! -p udp"}
	protoOpts := map[string][]string{
		"-p tcp":    {"--dport 80", "--sport 1:2", "--syn", "-m multiport --dports 1,2:3", "--tcp-flags SYN,ACK SYN"},
		"-p udp":    {"--dport 53", "-m multiport --sports 5"},
		"-p icmp":   {"--icmp-type 8", "--icmp-type port-unreachable"},
		"-p icmpv6": {"--icmpv6-type echo-request", "--icmpv6-type 1/4"},
	}
	others := []string{
		"-m conntrack --ctstate NEW", "-m multiport --dports 1", "-m tcp --dport 1", "-m udp --sport 2",
		"-m state --state INVALID,UNTRACKED", "-m limit --limit 1/hour --limit-burst 10000", "-m limit --limit 5/min",
		"-m statistic --mode random --probability 0.3", "-m statistic --mode nth --every 2", "-i lo+", "! -o eth0",
		"-m mac --mac-source 00:11:22:33:44:55", "-m length --length 100:200", "-m mark --mark 1", "-m comment --comment x",
		"-i eth0", "-o eth1",
	}
	targets := []string{
		"", "-j ACCEPT", "-j DROP", "-j RETURN", "-j REJECT", "-j REJECT --reject-with tcp-reset", "-j LOG --log-prefix x",
		"-j MASQUERADE", "-j REDIRECT", "-j MARK --set-mark 1", "-j MASQUERADE --to-ports 5-6", "-j REDIRECT --to-ports 8080",
		"-j MARK --and-mark 3", "-j LOG --log-level 7", "-g uc2",
	}
	famPieces := map[Family]struct{ protos, others, targets []string }{
		IPv4: {[]string{"-p icmp"}, []string{"-s 10.0.0.0/8", "-m iprange --dst-range 10.0.0.1-10.0.0.5"}, []string{
			"-j SNAT --to-source 1.2.3.4", "-j DNAT --to-destination 1.2.3.4", "-j DNAT --to-destination 1.2.3.4:80",
			"-j SNAT --to-source 1.2.3.4:1-2 --random", "-j REJECT --reject-with icmp-admin-prohibited"}},
		IPv6: {[]string{"-p icmpv6"}, []string{"-s 2001:db8::/32", "-m iprange --dst-range 2001:db8::1-2001:db8::5"}, []string{
			"-j SNAT --to-source 2001:db8::1", "-j DNAT --to-destination [2001:db8::1]:80",
			"-j REJECT --reject-with icmp6-adm-prohibited"}},
	}
	tables := []string{"filter", "nat", "mangle", "raw"}
	pick := func(r *rand.Rand, s []string) string { return s[r.Intn(len(s))] }
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ns := newNS(t, ip)
			for _, f := range []Family{IPv4, IPv6} {
				r := rand.New(rand.NewSource(int64(f)))
				fp := famPieces[f]
				fprotos, fothers, ftargets := append(fp.protos, protos...), append(fp.others, others...), append(fp.targets, targets...)
				for range 100 {
					table := pick(r, tables)
					hook := tableHooks[table][r.Intn(len(tableHooks[table]))]
					var spec []string
					if p := pick(r, fprotos); p != "" {
						spec = append(spec, p)
						if opts := protoOpts[p]; len(opts) > 0 && r.Intn(2) == 0 {
							spec = append(spec, pick(r, opts))
						}
					}
					for k := r.Intn(3); k > 0; k-- {
						spec = append(spec, pick(r, fothers))
					}
					spec = append(spec, pick(r, ftargets))
					rule := strings.Join(spec, " ")
					save := fmt.Sprintf("*%s\n:uc2 - [0:0]\n-A %s %s\nCOMMIT\n", table, hook, rule)
					if r.Intn(3) == 0 {
						save = fmt.Sprintf("*%s\n:uc2 - [0:0]\n:uc - [0:0]\n-A uc %s\n-A %s -j uc\nCOMMIT\n", table, rule, hook)
					}
					var rs Ruleset
					_ = rs.AddFile("random", []byte(save), ParseOptions{Family: f})
					ours := rs.Validate()
					out, kerr := restore(ip, ns, v, f, save)
					if kerr != nil && missingModule(out) {
						continue
					}
					// The nft backend translates some matches to native
					// expressions and skips x_tables' checks (it takes
					// "! -p udp -m udp"), so only legacy must refuse what
					// Validate refuses.
					if ours == nil && kerr != nil || ours != nil && kerr == nil && v.name == "legacy" {
						t.Errorf("%v: nfpipe says %v; the kernel says %v %s\n%s", f, ours, kerr, strings.TrimSpace(out), save)
					}
				}
			}
		})
	}
}
