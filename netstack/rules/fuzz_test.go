package rules

import (
	"strings"
	"testing"
)

// FuzzAddFile feeds arbitrary files (both forms) to the parser. It must
// never panic, and whatever it accepts must survive Save and a re-read
// unchanged (see checkRoundTrip).
func FuzzAddFile(f *testing.F) {
	for _, tt := range parseCases {
		prefix := ""
		if tt.fam == IPv6 {
			prefix = "ip6tables "
		}
		f.Add(prefix + strings.Join(append(append([]string(nil), tt.pre...), tt.cmd), "\n"+prefix))
	}
	f.Add(realIPv4Save)
	f.Add(realIPv6Save)
	f.Add("*filter\n:INPUT DROP [0:0]\n-4 -A INPUT -s 10.0.0.1 -j DROP\n-6 -A INPUT -s 2001:db8::1 -j DROP\nCOMMIT\n")
	f.Add("-N a\n-N b\n-A a -j b\n-A b -j a\n-A INPUT -j a\n")
	f.Add("-t nat -N m\n-t nat -A PREROUTING -j m\n-t nat -A m -j MASQUERADE\n")
	f.Add("iptables -A INPUT -m comment --comment 'it''s \"odd\"' -j LOG --log-prefix \"x\\\\y\"\n")
	f.Add("-A INPUT -s 10.0.0.1,10.0.0.2 -d ::1\n-I INPUT 1 -p tcp --dport 80 -j REJECT --reject-with tcp-reset\n-D INPUT 1\n-X\n-F\n")
	f.Add("*nat\n:POSTROUTING ACCEPT [0:0]\n[1:2] -A POSTROUTING -p udp -j SNAT --to-source [2001:db8::1-2001:db8::2]:1-2 --random\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, data string) {
		var rs Ruleset
		err := rs.AddFile("fuzz", []byte(data), ParseOptions{})
		verr := rs.Validate()
		if err != nil {
			if verr == nil {
				t.Fatalf("AddFile failed (%v) but Validate did not", err)
			}
			return
		}
		checkRoundTrip(t, &rs)
	})
}
