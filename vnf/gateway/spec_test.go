package gateway

import (
	"net/netip"
	"testing"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
)

func TestParseForward(t *testing.T) {
	for _, tt := range []struct {
		name, spec string
		anyHost    bool
		want       string // host:port>inside:port
	}{
		{"tcp", "tcp:127.0.0.1:8080=192.0.2.10:80", false, "127.0.0.1:8080>192.0.2.10:80"},
		{"udp same port", "udp:127.0.0.1:5353=192.0.2.53", false, "127.0.0.1:5353>192.0.2.53:5353"},
		{"any free port", "tcp:127.0.0.1:0=192.0.2.10:80", false, "127.0.0.1:0>192.0.2.10:80"},
		{"ipv6 both sides", "tcp:[::1]:8080=[2001:db8::10]:80", false, "[::1]:8080>[2001:db8::10]:80"},
		{"ipv6 inside without port", "tcp:127.0.0.2:8080=[2001:db8::10]", false, "127.0.0.2:8080>[2001:db8::10]:8080"},
		{"any host address when allowed", "tcp:0.0.0.0:8080=192.0.2.10:80", true, "0.0.0.0:8080>192.0.2.10:80"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseForward(tt.spec, tt.anyHost)
			if err != nil {
				t.Fatal(err)
			}
			if got := netip.AddrPortFrom(r.host, r.hostLo).String() + ">" + r.insideDst().String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseExpose(t *testing.T) {
	for _, tt := range []struct {
		name, spec string
		anyHost    bool
		listen, to string
		probe      uint16 // an inside port, and the host port it maps to
		probeTo    string
	}{
		{"one port", "tcp:192.0.2.1:7000=127.0.0.1:7", false, "192.0.2.1:7000", "127.0.0.1:7", 7000, "127.0.0.1:7"},
		{"same port", "udp:192.0.2.1:53=127.0.0.1", false, "192.0.2.1:53", "127.0.0.1:53", 53, "127.0.0.1:53"},
		{"range shifted", "tcp:192.0.2.1:8000-8100=127.0.0.1:9000-9100", false, "192.0.2.1:8000-8100", "127.0.0.1:9000-9100", 8042, "127.0.0.1:9042"},
		{"whole host loopback", "tcp:192.0.2.254:1-65535=127.0.0.1", false, "192.0.2.254:1-65535", "127.0.0.1:1-65535", 65535, "127.0.0.1:65535"},
		{"ipv6", "tcp:[2001:db8::1]:7000=[::1]:7", false, "[2001:db8::1]:7000", "[::1]:7", 7000, "[::1]:7"},
		{"other host when allowed", "tcp:192.0.2.1:7000=198.51.100.7:7", true, "192.0.2.1:7000", "198.51.100.7:7", 7000, "198.51.100.7:7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseExpose(tt.spec, tt.anyHost)
			if err != nil {
				t.Fatal(err)
			}
			if l, to := portsString(r.inside, r.insideLo, r.insideHi), portsString(r.host, r.hostLo, r.hostHi); l != tt.listen || to != tt.to {
				t.Errorf("listen %s to %s, want %s to %s", l, to, tt.listen, tt.to)
			}
			if got := r.hostDst(tt.probe).String(); got != tt.probeTo {
				t.Errorf("port %d goes to %s, want %s", tt.probe, got, tt.probeTo)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		flag, spec, want string
	}{
		{"forward", "tcp:127.0.0.1:8080", "want PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT], e.g. tcp:127.0.0.1:8080=192.0.2.10:80"},
		{"forward", "8080=192.0.2.10:80", "want PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT], e.g. tcp:127.0.0.1:8080=192.0.2.10:80"},
		{"forward", "sctp:127.0.0.1:8080=192.0.2.10:80", `protocol "sctp": want tcp or udp`},
		{"forward", "tcp:127.0.0.1=192.0.2.10:80", `"127.0.0.1": want ADDR:PORT ([ADDR]:PORT for IPv6)`},
		{"forward", "tcp:localhost:8080=192.0.2.10:80", `"localhost" is not an IP address`},
		{"forward", "tcp:127.0.0.1:99999=192.0.2.10:80", `port "99999" is not 0-65535`},
		{"forward", "tcp:127.0.0.1:8080=192.0.2.10:0", `port "0" is not 1-65535`},
		{"forward", "tcp:127.0.0.1:0=192.0.2.10", `192.0.2.10: give the inside port when the host port is 0`},
		{"forward", "tcp:127.0.0.1:8000-8001=192.0.2.10:80", "a forward takes one port on each side (port ranges are for --expose)"},
		{"forward", "tcp:::1:8080=192.0.2.10:80", `"::1:8080": write an IPv6 address in brackets: [ADDR]:PORT`},
		{"forward", "tcp:[::1:8080=192.0.2.10:80", `"[::1:8080": missing ']'`},
		{"forward", "tcp:0.0.0.0:8080=192.0.2.10:80", "host address 0.0.0.0 is not a loopback address: add --allow-host-any to listen on it"},
		{"forward", "tcp:192.168.1.5:8080=192.0.2.10:80", "host address 192.168.1.5 is not a loopback address: add --allow-host-any to listen on it"},
		{"forward", "tcp:127.0.0.1:8080=127.0.0.1:80", "inside address 127.0.0.1 is a loopback address: name an address in the chain"},
		{"forward", "tcp:127.0.0.1:8080=0.0.0.0:80", "inside address 0.0.0.0: name one address"},
		{"expose", "tcp:192.0.2.1:9-8=127.0.0.1", `port range "9-8" runs backwards`},
		{"expose", "tcp:192.0.2.1:8000-8100=127.0.0.1:9000", "101 inside ports but 1 host ports: give both sides as many"},
		{"expose", "tcp:192.0.2.1:0=127.0.0.1:7", `port "0" is not 1-65535`},
		{"expose", "tcp:192.0.2.1:7000=198.51.100.7:7", "host address 198.51.100.7 is not a loopback address: add --allow-host-any to connect to it"},
		{"expose", "tcp:192.0.2.1:7000=0.0.0.0:7", "host address 0.0.0.0: name the address to connect to"},
		{"expose", "udp:224.0.0.1:7000=127.0.0.1:7", "inside address 224.0.0.1 is a multicast address"},
	} {
		t.Run(tt.flag+" "+tt.spec, func(t *testing.T) {
			parse := parseForward
			if tt.flag == "expose" {
				parse = parseExpose
			}
			_, err := parse(tt.spec, false)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestNewErrors checks what New refuses, with the flag and value first.
func TestNewErrors(t *testing.T) {
	nic := func(addrs ...string) netstack.NICConfig {
		n := netstack.NICConfig{Name: "eth0"}
		for _, a := range addrs {
			n.Addrs = append(n.Addrs, netip.MustParsePrefix(a))
		}
		return n
	}
	for _, tt := range []struct {
		name   string
		nics   []netstack.NICConfig
		params map[string][]string
		want   string
	}{
		{"no interface", nil, map[string][]string{"forward": {"tcp:127.0.0.1:80=192.0.2.10:80"}},
			"a gateway needs an interface into the chain: give --if NAME=ENDPOINT,ip=ADDR/LEN"},
		{"nothing to do", []netstack.NICConfig{nic("192.0.2.1/24")}, nil,
			"nothing to relay: give --forward PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT] or --expose PROTO:INSIDEADDR:PORTS=HOSTADDR[:PORTS]"},
		{"bad forward", []netstack.NICConfig{nic("192.0.2.1/24")}, map[string][]string{"forward": {"tcp:127.0.0.1:80"}},
			`--forward "tcp:127.0.0.1:80": want PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT], e.g. tcp:127.0.0.1:8080=192.0.2.10:80`},
		{"no address of the family", []netstack.NICConfig{nic("192.0.2.1/24")}, map[string][]string{"forward": {"tcp:127.0.0.1:80=[2001:db8::10]:80"}},
			`--forward "tcp:127.0.0.1:80=[2001:db8::10]:80": the gateway has no IPv6 address to reach 2001:db8::10 from: add one with ip= on an --if`},
		{"expose on another address", []netstack.NICConfig{nic("192.0.2.1/24", "2001:db8::1/64")}, map[string][]string{"expose": {"tcp:192.0.2.9:7000=127.0.0.1:7"}},
			`--expose "tcp:192.0.2.9:7000=127.0.0.1:7": 192.0.2.9 is not an address of this gateway (have: 192.0.2.1, 2001:db8::1): add it with ip= on an --if`},
		{"two forwards on one port", []netstack.NICConfig{nic("192.0.2.1/24")}, map[string][]string{"forward": {"tcp:127.0.0.1:80=192.0.2.10:80", "tcp:127.0.0.1:80=192.0.2.11:80"}},
			`--forward "tcp:127.0.0.1:80=192.0.2.11:80": overlaps --forward "tcp:127.0.0.1:80=192.0.2.10:80"`},
		{"overlapping exposes", []netstack.NICConfig{nic("192.0.2.1/24")}, map[string][]string{"expose": {"tcp:192.0.2.1:8000-8100=127.0.0.1", "tcp:192.0.2.1:8100=127.0.0.1:7"}},
			`--expose "tcp:192.0.2.1:8100=127.0.0.1:7": overlaps --expose "tcp:192.0.2.1:8000-8100=127.0.0.1"`},
		{"bad timeout", []netstack.NICConfig{nic("192.0.2.1/24")}, map[string][]string{"expose": {"tcp:192.0.2.1:7=127.0.0.1"}, "udp-timeout": {"forever"}},
			`--udp-timeout "forever": want a positive duration, e.g. 10s`},
		{"applications", []netstack.NICConfig{nic("192.0.2.1/24")}, nil, "a gateway runs no applications (--run/--serve are for host)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &vnf.Config{Kind: "gateway", Params: tt.params, Expect: -1}
			cfg.Stack.NICs = tt.nics
			if tt.name == "applications" {
				cfg.Run = []string{"ping 192.0.2.2"}
			}
			_, err := New(cfg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v\nwant %q", err, tt.want)
			}
		})
	}
	// The same port for TCP and UDP, or on two addresses, is no overlap.
	cfg := &vnf.Config{Kind: "gateway", Expect: -1, Params: map[string][]string{
		"forward": {"tcp:127.0.0.1:80=192.0.2.10:80", "udp:127.0.0.1:80=192.0.2.10:80", "tcp:127.0.0.2:80=192.0.2.10:80", "tcp:127.0.0.1:0=192.0.2.10:80", "tcp:127.0.0.1:0=192.0.2.10:81"},
		"expose":  {"tcp:192.0.2.1:7=127.0.0.1", "udp:192.0.2.1:7=127.0.0.1"},
	}}
	cfg.Stack.NICs = []netstack.NICConfig{nic("192.0.2.1/24")}
	if _, err := New(cfg); err != nil {
		t.Errorf("distinct rules refused: %v", err)
	}
}
