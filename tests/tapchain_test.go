package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/internal/stalens"
)

// Chains with tap links between real network namespaces (root): the
// runner creates the namespaces, TAP devices and host nftables tables the
// spec asks for, ordinary programs (ping, curl, python3's http.server,
// iperf3, tcpdump) talk through nfpipe, and nothing of the chain's is left
// after `chain down`, or after a kill -9 of the runner and the next `up`.
// Every name carries the test's pid, so that parallel runs do not collide.

// tcStaleNS matches the namespaces these tests create (directly or through
// a spec); the number is the pid of the test process.
var tcStaleNS = regexp.MustCompile(`^(tgc|tgs|tuc|tue|tuw|tnc)-(\d+)$`)

// tapChainRoot skips the test unless it runs as root with the tools it
// names, and deletes the namespaces crashed runs of these tests left.
func tapChainRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chain up creates network namespaces, TAP devices and nftables tables")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		needTool(t, tool)
	}
	stalens.Delete(tcStaleNS, 2, nil)
}

// chainNetns names a namespace the chain creates, and deletes it at the
// end of the test if the chain did not (a failure). Call it before
// starting the runner: cleanups run last-in first-out, after the runner
// is killed.
func chainNetns(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	t.Cleanup(func() {
		if nsExists(name) {
			exec.Command("ip", "netns", "del", name).Run()
		}
	})
	return name
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// tapPlan is what the tests read of `chain check --json`.
type tapPlan struct {
	Links []struct{ Name, TAP, Netns string }
	Host  struct {
		TAPs []struct {
			Device, Netns string
		}
		NFTables []struct{ Name, Netns string }
	}
}

func checkPlan(t *testing.T, ctx context.Context, spec string) tapPlan {
	t.Helper()
	r := nfpipe(t, ctx, 10*time.Second, "chain", "check", "--json", spec)
	wantCode(t, "chain check --json", r, 0)
	var p tapPlan
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("chain check --json: %v\n%s", err, r.Stdout)
	}
	return p
}

func (p tapPlan) device(link string) string {
	for _, l := range p.Links {
		if l.Name == link {
			return l.TAP
		}
	}
	return ""
}

// waitInNetns runs a command in ns until it succeeds, for at most d.
func waitInNetns(t *testing.T, ctx context.Context, ns string, d time.Duration, what string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).Run() == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantGone fails if anything of the chain remains: its namespaces, its TAP
// devices (in the runner's namespace, or in a namespace that survives),
// its nftables tables.
func wantGone(t *testing.T, ctx context.Context, when string, created []string, devices []string, survivors []string, table string) {
	t.Helper()
	r := run(t, ctx, 10*time.Second, procSpec{Path: "ip", Args: []string{"netns", "list"}})
	for _, ns := range created {
		if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ns) + `\b`).MatchString(r.Stdout) {
			t.Errorf("%s: netns %s remains:\n%s", when, ns, r.Stdout)
		}
	}
	links := run(t, ctx, 10*time.Second, procSpec{Path: "ip", Args: []string{"-o", "link"}}).Stdout
	tables := run(t, ctx, 10*time.Second, procSpec{Path: "nft", Args: []string{"list", "tables"}}).Stdout
	for _, ns := range survivors {
		links += run(t, ctx, 10*time.Second, procSpec{Path: "ip", Args: []string{"-n", ns, "-o", "link"}}).Stdout
		tables += inNetns(t, ctx, ns, 10*time.Second, "nft", "list", "tables").Stdout
	}
	for _, d := range devices {
		if strings.Contains(links, " "+d+":") || strings.Contains(links, " "+d+"@") {
			t.Errorf("%s: TAP device %s remains:\n%s", when, d, links)
		}
	}
	if table != "" && strings.Contains(tables, table) {
		t.Errorf("%s: nftables table %s remains:\n%s", when, table, tables)
	}
}

// TestTapChainGateway runs configs/tap-gateway.yaml, its names made
// unique: real ping, curl to python3's http.server, and iperf3 from the
// client namespace through nfpipe's nat and firewall to the server
// namespace; a port the firewall does not allow fails while port 80
// works; tcpdump in the server namespace sees the nat's outside address;
// after `chain down` nothing of the chain remains.
func TestTapChainGateway(t *testing.T) {
	tapChainRoot(t, "ping", "curl", "python3", "iperf3", "tcpdump", "nft", "ss")
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	started := time.Now()
	pid := os.Getpid()
	chainName := fmt.Sprintf("tapgw-%d", pid)
	client, server := chainNetns(t, "tgc"), chainNetns(t, "tgs")
	example, err := os.ReadFile("../configs/tap-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := string(example)
	for _, r := range [][2]string{
		{"name: tap-gateway", "name: " + chainName},
		{"{name: client, create: true}", "{name: " + client + ", create: true}"},
		{"{name: server, create: true}", "{name: " + server + ", create: true}"},
	} {
		if !strings.Contains(spec, r[0]) {
			t.Fatalf("configs/tap-gateway.yaml has no %q any more: update this test", r[0])
		}
		spec = strings.Replace(spec, r[0], r[1], 1)
	}
	dir := shortDir(t)
	root := filepath.Join(dir, "run")
	specFile := filepath.Join(dir, "tapgw.yaml")
	if err := os.WriteFile(specFile, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := checkPlan(t, ctx, specFile)
	clientTAP, serverTAP := plan.device("nat.inside--tap"), plan.device("firewall.eth1--tap")
	if clientTAP == "" || serverTAP == "" || len(plan.Host.TAPs) != 2 {
		t.Fatalf("the plan's tap links: %+v", plan)
	}

	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", specFile, "--runtime-dir", root}})
	up.waitStderr(t, "chain "+chainName+" ready", 20*time.Second)

	// The servers, in the server namespace: HTTP on 80 (allowed) and 8080
	// (not allowed), iperf3 on 5201 (allowed).
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	page := fmt.Sprintf("nfpipe tap chain %d\n", pid)
	os.WriteFile(filepath.Join(www, "index.html"), []byte(page), 0o644)
	for _, port := range []string{"80", "8080"} {
		start(t, ctx, "http.server :"+port, procSpec{Path: "ip", Args: []string{"netns", "exec", server, "python3", "-m", "http.server", port, "--bind", "0.0.0.0", "--directory", www}})
		waitInNetns(t, ctx, server, 10*time.Second, "http.server :"+port, "curl", "-s", "-m", "2", "-o", "/dev/null", "http://127.0.0.1:"+port+"/")
	}
	start(t, ctx, "iperf3 -s", procSpec{Path: "ip", Args: []string{"netns", "exec", server, "iperf3", "-s", "-1"}})
	waitInNetns(t, ctx, server, 10*time.Second, "iperf3 -s", "sh", "-c", "ss -ltn | grep -q ':5201 '")

	r := inNetns(t, ctx, client, 15*time.Second, "ping", "-c", "3", "-W", "2", "203.0.113.10")
	wantCode(t, "ping through the chain", r, 0)
	wantContains(t, "ping", r.Stdout, "3 packets transmitted, 3 received, 0% packet loss")
	r = inNetns(t, ctx, client, 15*time.Second, "ping", "-6", "-c", "2", "-W", "2", "2001:db8:3::10")
	wantCode(t, "ping -6 through the chain", r, 0)

	// The NAT rewrite, seen by tcpdump on the server's side of the TAP:
	// the connection comes from the nat's outside address.
	dump := start(t, ctx, "tcpdump", procSpec{Path: "ip", Args: []string{"netns", "exec", server,
		"tcpdump", "-i", serverTAP, "-nn", "-l", "-c", "1", "tcp dst port 80 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"}})
	dump.waitStderr(t, "listening on "+serverTAP, 10*time.Second)
	r = inNetns(t, ctx, client, 10*time.Second, "curl", "-s", "-m", "5", "http://203.0.113.10/")
	wantCode(t, "curl :80 through the chain", r, 0)
	if r.Stdout != page {
		t.Errorf("curl :80 got %q, want %q", r.Stdout, page)
	}
	if code := dump.wait(t, 5*time.Second); code != 0 {
		t.Errorf("tcpdump exit %d", code)
	}
	if !regexp.MustCompile(`IP 198\.51\.100\.1\.\d+ > 203\.0\.113\.10\.80: Flags \[S\]`).MatchString(dump.stdout.String()) {
		t.Errorf("tcpdump in %s did not see the SYN come from the nat's outside address 198.51.100.1:\n%s", server, dump.stdout.String())
	}

	// The firewall allows port 80 only: 8080 is refused (reject: true),
	// though its server answers inside the server namespace.
	r = inNetns(t, ctx, client, 10*time.Second, "curl", "-s", "-m", "5", "http://203.0.113.10:8080/")
	if r.Code == 0 {
		t.Errorf("curl :8080 through the firewall succeeded:\n%s", r.Stdout)
	}
	r = inNetns(t, ctx, client, 10*time.Second, "curl", "-s", "-m", "5", "-o", "/dev/null", "http://203.0.113.10:80/")
	wantCode(t, "curl :80 after :8080 was refused", r, 0)

	// iperf3 for 5 seconds, bounded.
	r = inNetns(t, ctx, client, 30*time.Second, "iperf3", "-c", "203.0.113.10", "-t", "5", "-J")
	wantCode(t, "iperf3 -c", r, 0)
	var ip struct {
		End struct {
			SumReceived struct {
				Bytes         int64   `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ip); err != nil || ip.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3: %v, received %d bytes\n%s", err, ip.End.SumReceived.Bytes, abbrev(r.Stdout))
	} else {
		t.Logf("iperf3 through nat and firewall over TAPs: %.0f Mbit/s", ip.End.SumReceived.BitsPerSecond/1e6)
	}

	r = nfpipe(t, ctx, 30*time.Second, "chain", "down", "--runtime-dir", root, chainName)
	wantCode(t, "chain down", r, 0)
	if code := up.wait(t, 15*time.Second); code != 0 {
		t.Errorf("chain up after down: exit %d\n%s", code, up.stderr.String())
	}
	wantGone(t, ctx, "after chain down", []string{client, server}, []string{clientTAP, serverTAP}, nil, "nfpipe-"+chainName)
	if _, err := os.Stat(filepath.Join(root, chainName, "host.json")); err == nil {
		t.Errorf("the host record is still there after chain down")
	}
	t.Logf("%v", time.Since(started).Round(100*time.Millisecond))
}

// TestTapChainUplink: a chain's uplink TAP in a namespace the chain does
// not own, with host: {masquerade: true, forward: true}: the host kernel
// masquerades the chain's traffic onto its other network (a veth to a
// "world" namespace that has no route back to the chain) through the
// chain's own nftables table. kill -9 of the runner leaves the table, the
// TAP devices and the namespace it created; the next `up` removes them
// and makes them again; `chain down` removes them and nothing else (the
// uplink namespace and its veth stay).
func TestTapChainUplink(t *testing.T) {
	tapChainRoot(t, "curl", "python3", "tcpdump", "nft", "sysctl")
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	started := time.Now()
	pid := os.Getpid()
	chainName := fmt.Sprintf("tapup-%d", pid)
	table := "nfpipe-" + chainName
	edge, world := netns(t, "tue"), netns(t, "tuw")
	cli := chainNetns(t, "tuc")
	// edge forwards between the chain and world, like a host between its
	// containers and its network: a setting of the host's, made by the
	// test, which the runner checks and does not change.
	mustInNetns(t, ctx, edge, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	mustInNetns(t, ctx, edge, "ip", "link", "set", "lo", "up")
	mustInNetns(t, ctx, world, "ip", "link", "set", "lo", "up")
	mustInNetns(t, ctx, edge, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "w0", "netns", world)
	mustInNetns(t, ctx, edge, "ip", "addr", "add", "203.0.113.1/24", "dev", "up0")
	mustInNetns(t, ctx, edge, "ip", "link", "set", "up0", "up")
	mustInNetns(t, ctx, world, "ip", "addr", "add", "203.0.113.10/24", "dev", "w0")
	mustInNetns(t, ctx, world, "ip", "link", "set", "w0", "up")

	dir := shortDir(t)
	root := filepath.Join(dir, "run")
	specFile := filepath.Join(dir, "uplink.yaml")
	os.WriteFile(specFile, []byte(fmt.Sprintf(`name: %s
functions:
  r:
    kind: router
    interfaces:
      lan: 192.0.2.1/24
      wan: 198.51.100.1/24
    gateways: [198.51.100.2]
links:
  - ends: [r.lan]
    netns: {name: %s, create: true}
    host:
      addresses: [192.0.2.2/24]
      routes: [default via 192.0.2.1]
  - ends: [r.wan]
    netns: %s
    host:
      addresses: [198.51.100.2/24]
      routes: [192.0.2.0/24 via 198.51.100.1]
      masquerade: true
      forward: true
`, chainName, cli, edge)), 0o600)
	plan := checkPlan(t, ctx, specFile)
	lanTAP, wanTAP := plan.device("r.lan--tap"), plan.device("r.wan--tap")
	if len(plan.Host.NFTables) != 1 || plan.Host.NFTables[0].Name != table || plan.Host.NFTables[0].Netns != edge {
		t.Fatalf("the plan's nftables tables: %+v", plan.Host.NFTables)
	}
	r := nfpipe(t, ctx, 10*time.Second, "chain", "check", specFile)
	wantContains(t, "chain check", r.Stdout, "nftables  table inet "+table+" in netns "+edge,
		fmt.Sprintf(`iifname %q oifname != %q counter masquerade`, wanTAP, wanTAP))

	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("world\n"), 0o644)
	start(t, ctx, "http.server", procSpec{Path: "ip", Args: []string{"netns", "exec", world, "python3", "-m", "http.server", "80", "--bind", "0.0.0.0", "--directory", www}})
	waitInNetns(t, ctx, world, 10*time.Second, "http.server", "curl", "-s", "-m", "2", "-o", "/dev/null", "http://127.0.0.1/")

	// fetch checks that the chain's client reaches world, which sees the
	// uplink's own address: the host kernel masqueraded the connection.
	fetch := func(when string) {
		t.Helper()
		dump := start(t, ctx, "tcpdump "+when, procSpec{Path: "ip", Args: []string{"netns", "exec", world,
			"tcpdump", "-i", "w0", "-nn", "-l", "-c", "1", "tcp dst port 80 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"}})
		dump.waitStderr(t, "listening on w0", 10*time.Second)
		r := inNetns(t, ctx, cli, 10*time.Second, "curl", "-s", "-m", "5", "http://203.0.113.10/")
		wantCode(t, "curl to world "+when, r, 0)
		wantContains(t, "curl to world "+when, r.Stdout, "world")
		dump.wait(t, 5*time.Second)
		if !regexp.MustCompile(`IP 203\.0\.113\.1\.\d+ > 203\.0\.113\.10\.80: Flags \[S\]`).MatchString(dump.stdout.String()) {
			t.Errorf("%s: world did not see the connection come from the uplink's 203.0.113.1:\n%s", when, dump.stdout.String())
		}
		r = inNetns(t, ctx, edge, 10*time.Second, "nft", "list", "table", "inet", table)
		wantCode(t, "nft list table "+when, r, 0)
		if m := regexp.MustCompile(`counter packets (\d+) bytes \d+ masquerade`).FindStringSubmatch(r.Stdout); m == nil || m[1] == "0" {
			t.Errorf("%s: the masquerade rule counted nothing:\n%s", when, r.Stdout)
		}
	}

	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", specFile, "--runtime-dir", root}})
	up.waitStderr(t, "chain "+chainName+" ready", 20*time.Second)
	if strings.Contains(up.stderr.String(), "forwarding is off") {
		t.Errorf("a warning about forwarding, which the test turned on:\n%s", up.stderr.String())
	}
	fetch("first run")

	// kill -9: the runner's functions follow it; what it made in the host
	// stays, listed in its record.
	up.signal(t, syscall.SIGKILL)
	up.wait(t, 5*time.Second)
	if !nsExists(cli) {
		t.Fatalf("netns %s went away with the killed runner: expected it as a leftover", cli)
	}
	if r := inNetns(t, ctx, edge, 10*time.Second, "nft", "list", "tables"); !strings.Contains(r.Stdout, table) {
		t.Fatalf("table %s went away with the killed runner: expected it as a leftover:\n%s", table, r.Stdout)
	}
	up = start(t, ctx, "chain up again", procSpec{Args: []string{"chain", "up", specFile, "--runtime-dir", root}})
	up.waitStderr(t, "chain "+chainName+" ready", 20*time.Second)
	fetch("after kill -9 and up")

	r = nfpipe(t, ctx, 30*time.Second, "chain", "down", "--runtime-dir", root, chainName)
	wantCode(t, "chain down", r, 0)
	if code := up.wait(t, 15*time.Second); code != 0 {
		t.Errorf("chain up after down: exit %d\n%s", code, up.stderr.String())
	}
	wantGone(t, ctx, "after chain down", []string{cli}, []string{lanTAP, wanTAP}, []string{edge}, table)
	// What the test made stays.
	if r := inNetns(t, ctx, edge, 10*time.Second, "ip", "-o", "addr", "show", "up0"); !strings.Contains(r.Stdout, "203.0.113.1/24") {
		t.Errorf("the uplink's veth lost its address:\n%s", r.Stdout)
	}
	t.Logf("%v", time.Since(started).Round(100*time.Millisecond))
}

// TestTapChainNeedsCapNetAdmin: without CAP_NET_ADMIN, chain up says which
// link needs it, and makes nothing.
func TestTapChainNeedsCapNetAdmin(t *testing.T) {
	tapChainRoot(t, "setpriv")
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	ns := chainNetns(t, "tnc")
	dir := shortDir(t)
	specFile := filepath.Join(dir, "nocap.yaml")
	os.WriteFile(specFile, []byte(fmt.Sprintf(`name: nocap-%d
functions:
  h: {kind: host, interfaces: {eth0: 192.0.2.1/24}, serve: [http :80]}
links:
  - ends: [h.eth0]
    netns: {name: %s, create: true}
    host: {addresses: [192.0.2.2/24]}
`, os.Getpid(), ns)), 0o600)
	r := run(t, ctx, 15*time.Second, procSpec{Path: "setpriv", Args: []string{"--bounding-set=-net_admin", "--inh-caps=-net_admin",
		nfpipeBin, "chain", "up", specFile, "--runtime-dir", filepath.Join(dir, "run")}})
	wantCode(t, "chain up without CAP_NET_ADMIN", r, 2)
	wantNoPanic(t, "chain up without CAP_NET_ADMIN", r.Stderr)
	wantContains(t, "chain up without CAP_NET_ADMIN", r.Stderr, "link h.eth0--tap needs CAP_NET_ADMIN", "run `nfpipe chain up` as root")
	if nsExists(ns) {
		t.Errorf("netns %s was created by a chain that could not start", ns)
	}
}
