package tests

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPresetNATFirewall chains inside host — nat — firewall — server and
// checks what the presets promise: inside connections go out masqueraded,
// a port the firewall does not allow is refused with a reset, replies come
// back, a --forward port reaches the inside host from outside, and the
// rule counters show it.
func TestPresetNATFirewall(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 90*time.Second)
	dir := shortDir(t)
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	nat := start(t, ctx, "nat", procSpec{Args: []string{"vnf", "nat",
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24", "--if", "eth1=unix-listen:" + b + ",ip=203.0.113.1/24",
		"--gw", "203.0.113.2", "--outside", "eth1", "--forward", "tcp:8080=192.0.2.2:80", "--forward", "udp:9000=192.0.2.2", "--stats=json"}})
	fw := start(t, ctx, "firewall", procSpec{Args: []string{"vnf", "firewall",
		"--if", "eth0=unix:" + b + ",ip=203.0.113.2/24", "--if", "eth1=unix-listen:" + c + ",ip=198.51.100.1/24",
		"--allow", "tcp:80", "--allow", "icmp", "--allow", "tcp:8080,in=eth1,to=203.0.113.1", "--allow", "udp:9000", "--reject", "--stats=json"}})
	nat.waitStderr(t, "peer connected", 10*time.Second)

	// From outside in: only the forwarded port reaches the inside host.
	inside := start(t, ctx, "inside server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + a,
		"--ip", "192.0.2.2/24", "--gw", "192.0.2.1", "--serve", "http :80", "--serve", "sink udp:9000"}})
	nat.waitStderr(t, "peer connected", 10*time.Second)
	outside := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+c, "--ip", "198.51.100.10/24", "--gw", "198.51.100.1",
		"--run", "http get http://203.0.113.1:8080/", "--run", "gen udp 203.0.113.1:9000 count=2")
	wantCode(t, "outside client", outside, 0)
	wantContains(t, "outside client", outside.Stdout, "-> 200 OK")
	inside.signal(t, syscall.SIGTERM)
	inside.wait(t, 5*time.Second)
	// No SNAT inbound: the inside server saw the outside client's address.
	wantContains(t, "inside server", inside.stdout.String()+inside.stderr.String(), "http server :80: 1 request", "sink udp:9000: 2 packets", "198.51.100.10:")

	// From inside out: masqueraded; port 81 is not allowed and is reset.
	server := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + c,
		"--ip", "198.51.100.10/24", "--gw", "198.51.100.1", "--serve", "http :80", "--serve", "http :81", "--serve", "sink udp:9000"}})
	client := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+a, "--ip", "192.0.2.2/24", "--gw", "192.0.2.1",
		"--run", "http get http://198.51.100.10/", "--run", "http get http://198.51.100.10:81/", "--run", "ping 198.51.100.10 count=2 interval=100ms", "--run", "gen udp 198.51.100.10:9000 count=2")
	wantCode(t, "inside client", client, 1) // port 81 refused
	wantContains(t, "inside client", client.Stdout+client.Stderr, "-> 200 OK", "connection was refused", "2 packets transmitted, 2 received")
	server.signal(t, syscall.SIGTERM)
	server.wait(t, 5*time.Second)
	srv := server.stdout.String() + server.stderr.String()
	wantContains(t, "server", srv, "http server :80: 1 request", "sink udp:9000: 2 packets", "203.0.113.1:")
	if strings.Contains(srv, "192.0.2.2") {
		t.Errorf("the server saw the inside address: the nat did not masquerade:\n%s", srv)
	}

	counters := func(p *proc) map[string]uint64 {
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, 5*time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		got := map[string]uint64{}
		for _, ch := range parseRuleStats(t, p.stdout.String()).Rules {
			for _, r := range ch.Rules {
				got[ch.Table+"/"+ch.Chain+"/"+r.Rule] += r.Packets
			}
		}
		return got
	}
	// The firewall first: it ends by itself when the nat (its eth0 peer) goes.
	for _, check := range []struct {
		name string
		p    *proc
		want map[string]uint64
	}{
		{"firewall", fw, map[string]uint64{
			"filter/FORWARD/-p tcp -j REJECT --reject-with tcp-reset": 1,
		}},
		{"nat", nat, map[string]uint64{
			"nat/POSTROUTING/-o eth1 -j MASQUERADE":                                                     4, // HTTP :80, :81 (refused further on), ping, UDP
			"nat/PREROUTING/-i eth1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80":   1,
			"nat/PREROUTING/-i eth1 -p udp -m udp --dport 9000 -j DNAT --to-destination 192.0.2.2:9000": 1,
		}},
	} {
		name, want := check.name, check.want
		got := counters(check.p)
		for rule, w := range want {
			if got[rule] < w {
				t.Errorf("%s: counter of %q = %d, want at least %d (all: %v)", name, rule, got[rule], w, got)
			}
		}
	}
}
