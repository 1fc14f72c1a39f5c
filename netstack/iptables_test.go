package netstack

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfpipe/nfpipe/netstack/rules"
)

// TestApplyRulesErrors checks that what the stack cannot do yet is refused
// with the rule's place, and that nothing is installed then.
func TestApplyRulesErrors(t *testing.T) {
	s := build(t, cfg(t, "r", true, nil, "eth0=none|file:"+filepath.Join(t.TempDir(), "out")+",ip=192.0.2.1/24"))[0]
	for _, tt := range []struct{ rule, want string }{
		{"-t mangle -A PREROUTING -j ACCEPT", "--rule[0]: table mangle is not supported by nfpipe's stack yet (filter and nat are)"},
		{"-N X\n-A FORWARD -g X", "--rule[1]: goto (-g) is not supported by nfpipe's stack yet; use -j"},
		{"-t nat -A POSTROUTING -o eth0 -p tcp -j SNAT --to-source 192.0.2.1-192.0.2.9", "address ranges are not supported by nfpipe's stack yet"},
		{"-A FORWARD -p tcp -j REJECT --reject-with icmp-proto-unreachable", "gVisor has no proto-unreachable"},
	} {
		rs := &rules.Ruleset{}
		if err := rs.AddCommands("--rule", strings.Split(tt.rule, "\n"), rules.ParseOptions{Family: rules.IPv4}); err != nil {
			t.Fatalf("%q: %v", tt.rule, err)
		}
		_, err := s.ApplyRules(rs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.rule, err, tt.want)
		}
	}
	rs := &rules.Ruleset{}
	rs.AddCommands("--rule", []string{"-P FORWARD DROP", "-A FORWARD -p udp --dport 53 -j ACCEPT"}, rules.ParseOptions{Family: rules.IPv4})
	cc, err := s.ApplyRules(rs)
	if err != nil {
		t.Fatal(err)
	}
	var fwd *ChainCounters
	for _, c := range cc {
		if c.Table == "filter" && c.Chain.Name == "FORWARD" {
			fwd = c
		}
	}
	if fwd == nil || fwd.Policy == nil || len(fwd.Rules) != 1 {
		t.Fatalf("counters %+v", cc)
	}
}
