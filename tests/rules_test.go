package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ruleStats is the "rules" part of the --stats=json report.
type ruleStats struct {
	Rules []struct {
		Table, Chain, Policy string
		Packets              uint64 `json:"policy_packets"`
		Rules                []struct {
			Rule, Target string
			Packets      uint64
		}
	} `json:"rules"`
}

func parseRuleStats(t *testing.T, out string) ruleStats {
	t.Helper()
	i, j := strings.Index("\n"+out, "\n{\n"), strings.LastIndex(out, "\n}")
	if i < 0 || j < i {
		t.Fatalf("no JSON report in %s", out)
	}
	var rs ruleStats
	if err := json.Unmarshal([]byte(out[i:j+2]), &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestRulesThroughRouter runs a router with MASQUERADE, a TCP reset and a
// rate limit between two hosts, and checks what the hosts see and the
// per-rule counters.
func TestRulesThroughRouter(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	dir := shortDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	router := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router",
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24", "--if", "eth1=unix-listen:" + b + ",ip=198.51.100.1/24",
		"--rule", "-t nat -A POSTROUTING -o eth1 -j MASQUERADE",
		"--rule", "-A FORWARD -p tcp --dport 81 -j REJECT --reject-with tcp-reset",
		"--rule", "-A FORWARD -p icmp --icmp-type echo-request -m limit --limit 1/second --limit-burst 2 -j ACCEPT",
		"--rule", "-A FORWARD -p icmp --icmp-type echo-request -j REJECT",
		"--stats=json"}})
	server := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + b,
		"--ip", "198.51.100.2/24", "--serve", "http :80", "--serve", "http :81", "--serve", "sink udp:9000"}})
	router.waitStderr(t, "peer connected", 10*time.Second)
	client := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+a, "--ip", "192.0.2.2/24", "--gw", "192.0.2.1",
		"--run", "http get http://198.51.100.2/", "--run", "http get http://198.51.100.2:81/",
		"--run", "ping 198.51.100.2 count=4 interval=50ms", "--run", "gen udp 198.51.100.2:9000 count=3")
	wantCode(t, "client", client, 1) // port 81 refused and two pings rejected
	// MASQUERADE: the server saw the router's address, not the client's.
	wantContains(t, "client", client.Stdout+client.Stderr, "-> 200 OK",
		"connection was refused",
		"From 192.0.2.1 icmp_seq=3 Destination unreachable (code 3)",
		"4 packets transmitted, 2 received, +2 errors")
	server.signal(t, syscall.SIGTERM)
	server.wait(t, 5*time.Second)
	srv := server.stdout.String() + server.stderr.String()
	wantContains(t, "server", srv, "http server :80: 1 request", "sink udp:9000: 3 packets")
	// MASQUERADE: the sink saw the router's eth1 address, never the client's.
	wantContains(t, "server", srv, "198.51.100.1:")
	if strings.Contains(srv, "192.0.2.2") {
		t.Errorf("the server saw the client's own address: MASQUERADE did not apply:\n%s", srv)
	}
	router.signal(t, syscall.SIGTERM)
	if code := router.wait(t, 5*time.Second); code != 0 {
		t.Errorf("router exit %d", code)
	}
	rs := parseRuleStats(t, router.stdout.String())
	got := map[string]uint64{}
	for _, c := range rs.Rules {
		for _, r := range c.Rules {
			got[c.Table+"/"+c.Chain+"/"+r.Rule] = r.Packets
		}
	}
	for rule, want := range map[string]uint64{
		"nat/POSTROUTING/-o eth1 -j MASQUERADE":                                                         3, // first packets of HTTP to :80, the ping flow, the UDP flow
		"filter/FORWARD/-p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset":                     1,
		"filter/FORWARD/-p icmp -m icmp --icmp-type 8 -m limit --limit 1/sec --limit-burst 2 -j ACCEPT": 2,
		"filter/FORWARD/-p icmp -m icmp --icmp-type 8 -j REJECT --reject-with icmp-port-unreachable":    2,
	} {
		if got[rule] != want {
			t.Errorf("counter of %q = %d, want %d (all: %v)", rule, got[rule], want, got)
		}
	}
}

// TestRulesErrorsAndReload checks that bad rules stop a function before it
// starts, with every error named, and that SIGHUP reloads a rules file
// while a bad file leaves the rules in force.
func TestRulesErrorsAndReload(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	r := nfpipe(t, ctx, 10*time.Second, "vnf", "router", "--if", "eth0=stdin,ip=192.0.2.1/24",
		"--rule", "-t nat -A PREROUTING -j MASQUERADE", "--rule", "-A INPUT -p tcp --dprot 80 -j ACCEPT")
	wantCode(t, "bad rules", r, 2)
	wantContains(t, "bad rules", r.Stderr, "--rule[0]: MASQUERADE", "--rule[1]: unknown option \"--dprot\" (did you mean \"--dport\"?)")

	dir := shortDir(t)
	file := filepath.Join(dir, "fw.rules")
	sock := filepath.Join(dir, "l")
	os.WriteFile(file, []byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n"), 0o600)
	server := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock + ",ip=192.0.2.2/24", "--rules", file}})
	ping := func() result {
		return nfpipe(t, ctx, 20*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.1/24", "--run", "ping 192.0.2.2 count=1 timeout=500ms")
	}
	wantCode(t, "ping with icmp accepted", ping(), 0)
	os.WriteFile(file, []byte("-P INPUT DROP\n-A INPUT -p tcp -j ACCEPT\n"), 0o600)
	server.signal(t, syscall.SIGHUP)
	server.waitStderr(t, "rules reloaded", 5*time.Second)
	wantCode(t, "ping after reload to DROP", ping(), 1)
	os.WriteFile(file, []byte("-A INPUT -j NOSUCHCHAIN\n"), 0o600)
	server.signal(t, syscall.SIGHUP)
	server.waitStderr(t, "reload failed; the old rules stay in force", 5*time.Second)
	wantContains(t, "server", server.stderr.String(), "NOSUCHCHAIN")
	wantCode(t, "ping after a bad reload", ping(), 1)
}

// TestConntrackLimit runs a router whose conntrack table holds two flows:
// the third UDP flow is dropped and counted, the first two get through.
func TestConntrackLimit(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	dir := shortDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	router := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router",
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24", "--if", "eth1=unix-listen:" + b + ",ip=198.51.100.1/24",
		"--rule", "-A FORWARD -j ACCEPT", "--conntrack-max", "2", "--conntrack-timeout", "udp=1m", "--stats=json"}})
	server := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + b, "--ip", "198.51.100.2/24",
		"--gw", "198.51.100.1", "--serve", "sink udp:9001", "--serve", "sink udp:9002", "--serve", "sink udp:9003"}})
	router.waitStderr(t, "peer connected", 10*time.Second)
	client := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+a, "--ip", "192.0.2.2/24", "--gw", "192.0.2.1",
		"--run", "gen udp 198.51.100.2:9001 count=3", "--run", "gen udp 198.51.100.2:9002 count=3", "--run", "gen udp 198.51.100.2:9003 count=3")
	wantCode(t, "client", client, 0)
	time.Sleep(200 * time.Millisecond)
	server.signal(t, syscall.SIGTERM)
	server.wait(t, 5*time.Second)
	wantContains(t, "server", server.stdout.String()+server.stderr.String(), "sink udp:9001: 3 packets", "sink udp:9002: 3 packets", "sink udp:9003: 0 packets")
	router.signal(t, syscall.SIGTERM)
	if code := router.wait(t, 5*time.Second); code != 0 {
		t.Errorf("router exit %d", code)
	}
	rep := parseStats(t, "router", router.stdout.String())
	if ct := rep.Stack.Conntrack; ct == nil || ct.Count != 2 || ct.Max != 2 || ct.Dropped != 3 {
		t.Errorf("router conntrack %+v, want 2 of 2 entries and 3 dropped", ct)
	}
	wantContains(t, "router", router.stderr.String(), "conntrack table full, dropping new flows")
}

// TestReloadKeepsEstablished reloads a MASQUERADE router's rules (SIGHUP)
// in the middle of a TCP transfer: the connection, NATed before the reload,
// carries on and every byte arrives.
func TestReloadKeepsEstablished(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	dir := shortDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	file := filepath.Join(dir, "nat.rules")
	os.WriteFile(file, []byte("-t nat -A POSTROUTING -o eth1 -j MASQUERADE\n-P FORWARD DROP\n-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A FORWARD -i eth0 -j ACCEPT\n"), 0o600)
	router := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router",
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24", "--if", "eth1=unix-listen:" + b + ",ip=198.51.100.1/24", "--rules", file}})
	server := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + b, "--ip", "198.51.100.2/24", "--serve", "bulk"}})
	router.waitStderr(t, "peer connected", 10*time.Second)
	client := start(t, ctx, "client", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + a, "--ip", "192.0.2.2/24", "--gw", "192.0.2.1",
		"--run", "bulk 198.51.100.2 seconds=3"}})
	time.Sleep(1500 * time.Millisecond)
	router.signal(t, syscall.SIGHUP)
	router.waitStderr(t, "rules reloaded", 5*time.Second)
	if code := client.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("bulk transfer across a reload: exit %d", code)
	}
	// bulk exits 0 only if the receiver got every byte sent; the server
	// saw the router's address: the connection NATed before the reload.
	wantContains(t, "client", client.stdout.String(), "receiver got")
	server.signal(t, syscall.SIGTERM)
	server.wait(t, 5*time.Second)
	wantContains(t, "server", server.stdout.String()+server.stderr.String(), "198.51.100.1:")
}
