package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// chainStatus is `nfpipe chain status --json`.
type chainStatus struct {
	Chain     string
	PID       int
	Functions []struct {
		Name, Kind, State string
		PID, Restarts     int
	}
}

func (s chainStatus) fn(name string) (pid, restarts int, state string) {
	for _, f := range s.Functions {
		if f.Name == name {
			return f.PID, f.Restarts, f.State
		}
	}
	return 0, 0, ""
}

// TestChainUpQuickstart runs `nfpipe chain up` with no file: the built-in
// quickstart chain must pass, report a summary and leave nothing behind
// but its logs.
func TestChainUpQuickstart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	root := shortDir(t)
	r := nfpipe(t, ctx, 90*time.Second, "chain", "up", "--runtime-dir", root)
	wantCode(t, "chain up", r, 0)
	wantContains(t, "chain up", r.Stderr, "chain quickstart ready: 4 functions up", "chain quickstart passed")
	wantContains(t, "chain up", r.Stdout, "client   | 3 packets transmitted, 3 received", "-> 200 OK",
		"server   | sink udp:9999: 0 packets", "receiver got")
	for _, line := range []string{"client", "nat", "firewall", "server"} {
		if !strings.Contains(r.Stderr, "\n"+line) {
			t.Errorf("summary has no line for %s:\n%s", line, r.Stderr)
		}
	}
	wantLeftovers(t, filepath.Join(root, "quickstart"))
	if b, err := os.ReadFile(filepath.Join(root, "quickstart", "logs", "client.log")); err != nil || !strings.Contains(string(b), "200 OK") {
		t.Errorf("client.log: %v\n%s", err, b)
	}
}

// wantLeftovers fails if a stopped chain left a socket, FIFO, PID file or
// process record in its runtime directory (logs may stay).
func wantLeftovers(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		switch {
		case fi.Mode()&(os.ModeSocket|os.ModeNamedPipe) != 0, strings.HasSuffix(path, ".pid"):
			t.Errorf("left behind: %s (%v)", path, fi.Mode())
		}
		return nil
	})
}

// TestChainControl runs a chain without clients, reaches it from outside
// through a unix link, and drives it with status, capture, stats, reload,
// a crash of one function (restarted, traffic resumes, the others keep
// running) and down.
func TestChainControl(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	dir := shortDir(t)
	root := filepath.Join(dir, "run")
	sock := filepath.Join(dir, "in.sock")
	spec := filepath.Join(dir, "ctl.yaml")
	os.WriteFile(spec, []byte(`name: ctl
defaults:
  restart: {policy: on-failure, backoff: 50ms, max-restarts: 5, window: 1m}
functions:
  r:
    kind: router
    interfaces:
      eth0: 192.0.2.1/24
      eth1: 198.51.100.1/24
    rules:
      - -A FORWARD -p icmp -j ACCEPT
      - -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
      - -A FORWARD -p tcp --dport 80 -j ACCEPT
      - -P FORWARD DROP
  srv:
    kind: host
    interfaces:
      eth0: 198.51.100.2/24
    gateways: [198.51.100.1]
    serve: [http :80]
links:
  - {ends: [r.eth0], path: `+sock+`}
  - [r.eth1, srv.eth0]
`), 0o600)
	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", spec, "--runtime-dir", root}})
	up.waitStderr(t, "chain ctl ready", 20*time.Second)

	status := func() chainStatus {
		t.Helper()
		r := nfpipe(t, ctx, 10*time.Second, "chain", "status", "--runtime-dir", root, "--json")
		wantCode(t, "chain status", r, 0)
		var st chainStatus
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, r.Stdout)
		}
		return st
	}
	st := status()
	rPID, _, rState := st.fn("r")
	srvPID, _, srvState := st.fn("srv")
	if st.Chain != "ctl" || rState != "ready" || srvState != "ready" || rPID == 0 || srvPID == 0 {
		t.Fatalf("status %+v", st)
	}
	client := func(what string, want int, runs ...string) result {
		t.Helper()
		args := []string{"vnf", "host", "--if", "eth0=unix:" + sock, "--ip", "192.0.2.2/24", "--gw", "192.0.2.1"}
		for _, r := range runs {
			args = append(args, "--run", r)
		}
		res := nfpipe(t, ctx, 30*time.Second, args...)
		wantCode(t, what, res, want)
		return res
	}

	// A live capture of r:eth1 while a client pings through the chain.
	capFile := filepath.Join(dir, "cap.pcap")
	f, _ := os.Create(capFile)
	capture := start(t, ctx, "chain capture", procSpec{Args: []string{"chain", "capture", "--runtime-dir", root, "ctl", "r:eth1"}, Stdout: f})
	time.Sleep(200 * time.Millisecond)
	client("ping through the chain", 0, "ping 198.51.100.2 count=3 interval=50ms", "http get http://198.51.100.2/")
	time.Sleep(100 * time.Millisecond)
	capture.signal(t, syscall.SIGINT)
	if code := capture.wait(t, 5*time.Second); code != 0 {
		t.Errorf("chain capture exit %d", code)
	}
	f.Close()
	pcap, _ := os.Open(capFile)
	rd := frame.NewReader(frame.PCAP, pcap)
	echoes := 0
	for {
		fr, err := rd.ReadFrame()
		if err != nil {
			break
		}
		if len(fr) > 34 && fr[12] == 0x08 && fr[13] == 0 && fr[23] == 1 {
			echoes++
		}
	}
	pcap.Close()
	if echoes != 6 {
		t.Errorf("the capture of r:eth1 holds %d ICMP frames, want 6 (3 requests, 3 replies)", echoes)
	}
	// The real tcpdump reads it too.
	needTool(t, "tcpdump")
	td := run(t, ctx, 10*time.Second, procSpec{Path: "tcpdump", Args: []string{"-nr", capFile, "icmp"}})
	wantCode(t, "tcpdump -nr", td, 0)
	if n := strings.Count(td.Stdout, "ICMP echo request"); n != 3 {
		t.Errorf("tcpdump saw %d echo requests in the capture, want 3:\n%s", n, td.Stdout)
	}

	// Stats of every function, with r's rule counters.
	r := nfpipe(t, ctx, 10*time.Second, "chain", "stats", "--runtime-dir", root, "--json")
	wantCode(t, "chain stats", r, 0)
	var stats struct {
		Functions map[string]struct {
			Rules []struct {
				Chain string
				Rules []struct {
					Rule    string
					Packets uint64
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &stats); err != nil {
		t.Fatalf("stats: %v\n%s", err, r.Stdout)
	}
	if _, ok := stats.Functions["srv"]; !ok {
		t.Errorf("stats has no srv: %s", r.Stdout)
	}
	icmp := uint64(0)
	for _, c := range stats.Functions["r"].Rules {
		for _, rule := range c.Rules {
			if c.Chain == "FORWARD" && strings.Contains(rule.Rule, "icmp") {
				icmp += rule.Packets
			}
		}
	}
	if icmp != 6 {
		t.Errorf("r's icmp rule counted %d packets, want 6 (both families' chains summed):\n%s", icmp, r.Stdout)
	}
	r = nfpipe(t, ctx, 10*time.Second, "chain", "stats", "--runtime-dir", root)
	wantContains(t, "chain stats (text)", r.Stdout, "== r (router) counters ==", "Chain FORWARD (IPv4 filter, policy DROP")

	r = nfpipe(t, ctx, 10*time.Second, "chain", "reload", "--runtime-dir", root, "ctl", "r")
	wantCode(t, "chain reload", r, 0)
	wantContains(t, "chain reload", r.Stdout, "rules reloaded")
	r = nfpipe(t, ctx, 10*time.Second, "chain", "reload", "--runtime-dir", root, "ctl", "nosuch")
	wantCode(t, "chain reload of an unknown function", r, 2)
	wantContains(t, "chain reload nosuch", r.Stderr, `no function "nosuch" in chain ctl (have: r, srv)`)

	// srv crashes: it is restarted with its link, r keeps running, and
	// traffic resumes.
	syscall.Kill(srvPID, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = status()
		if pid, restarts, state := st.fn("srv"); restarts == 1 && state == "ready" && pid != srvPID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("srv was not restarted: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pid, restarts, _ := st.fn("r"); pid != rPID || restarts != 0 {
		t.Errorf("r was disturbed by srv's crash: pid %d (was %d), restarts %d", pid, rPID, restarts)
	}
	client("HTTP after the restart", 0, "http get http://198.51.100.2/")

	r = nfpipe(t, ctx, 30*time.Second, "chain", "down", "--runtime-dir", root)
	wantCode(t, "chain down", r, 0)
	if code := up.wait(t, 10*time.Second); code != 0 {
		t.Errorf("chain up after down: exit %d\n%s", code, up.stderr.String())
	}
	for _, pid := range []int{rPID, st.Functions[1].PID} {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d is still alive after chain down", pid)
		}
	}
	wantLeftovers(t, filepath.Join(root, "ctl"))
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("the unix link's socket %s is still there", sock)
	}
}

// TestChainRunnerKilled kills the runner with SIGKILL: its functions follow
// it, and the next `chain up` of the chain cleans what was left and runs.
func TestChainRunnerKilled(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	dir := shortDir(t)
	root := filepath.Join(dir, "run")
	spec := filepath.Join(dir, "k.yaml")
	os.WriteFile(spec, []byte(`name: k
functions:
  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}, serve: [http :80]}
  b: {kind: router, interfaces: {eth0: 192.0.2.2/24, eth1: 198.51.100.1/24}}
  c: {kind: host, interfaces: {eth0: 198.51.100.2/24}, gateways: [198.51.100.1], serve: [echo udp:7]}
links:
  - [a.eth0, b.eth0]
  - {ends: [b.eth1, c.eth0], transport: fifo}
`), 0o600)
	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", spec, "--runtime-dir", root}})
	up.waitStderr(t, "chain k ready", 20*time.Second)
	r := nfpipe(t, ctx, 10*time.Second, "chain", "status", "--runtime-dir", root, "--json")
	var st chainStatus
	json.Unmarshal([]byte(r.Stdout), &st)
	if len(st.Functions) != 3 {
		t.Fatalf("status %s", r.Stdout)
	}
	up.signal(t, syscall.SIGKILL)
	up.wait(t, 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range st.Functions {
		for syscall.Kill(f.PID, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("function %s (pid %d) outlived its runner", f.Name, f.PID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The crashed runner's PID file, FIFOs and sockets are still there.
	if _, err := os.Stat(filepath.Join(root, "k", "runner.pid")); err != nil {
		t.Fatalf("expected the killed runner's leftovers: %v", err)
	}
	up2 := start(t, ctx, "chain up again", procSpec{Args: []string{"chain", "up", spec, "--runtime-dir", root}})
	up2.waitStderr(t, "chain k ready", 20*time.Second)
	r = nfpipe(t, ctx, 30*time.Second, "chain", "down", "--runtime-dir", root, "k")
	wantCode(t, "chain down", r, 0)
	if code := up2.wait(t, 10*time.Second); code != 0 {
		t.Errorf("second chain up: exit %d\n%s", code, up2.stderr.String())
	}
	wantLeftovers(t, filepath.Join(root, "k"))
}

// TestChainCrashLoop: a function that keeps dying is reported and the
// chain fails, with the summary saying why.
func TestChainCrashLoop(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	dir := shortDir(t)
	root := filepath.Join(dir, "run")
	spec := filepath.Join(dir, "loop.yaml")
	os.WriteFile(spec, []byte(`name: loop
functions:
  a: {kind: host, interfaces: {eth0: 192.0.2.1/24}, serve: [http :80]}
  b:
    kind: host
    interfaces: {eth0: 192.0.2.2/24}
    serve: [echo udp:7]
    restart: {policy: always, backoff: 10ms, max-restarts: 2, window: 1m}
links:
  - [a.eth0, b.eth0]
`), 0o600)
	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", spec, "--runtime-dir", root}})
	up.waitStderr(t, "chain loop ready", 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 3; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("b was not restarted %d times", i)
		}
		r := nfpipe(t, ctx, 10*time.Second, "chain", "status", "--runtime-dir", root, "--json")
		var st chainStatus
		json.Unmarshal([]byte(r.Stdout), &st)
		pid, restarts, _ := st.fn("b")
		if pid == 0 || restarts != i {
			// wait for the restart to be up
			i--
			time.Sleep(30 * time.Millisecond)
			continue
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	code := up.wait(t, 20*time.Second)
	if code != 1 {
		t.Errorf("chain up with a crash-looping function: exit %d, want 1", code)
	}
	wantContains(t, "chain up", up.stderr.String(), "function b crashed 3 times within 1m0s", "crash-loop", "chain loop FAILED")
	wantLeftovers(t, filepath.Join(root, "loop"))
}

// TestChainConfigs runs every example chain in configs/ that finishes by
// itself: each must pass.
func TestChainConfigs(t *testing.T) {
	t.Parallel()
	t.Cleanup(func() {
		// The captures the examples' mirrors write.
		os.Remove("/tmp/nfpipe-nat-firewall.pcap")
		os.Remove("/tmp/nfpipe-mirror.pcap")
		os.Remove("/tmp/nfpipe-replay-out.pcap")
	})
	for name, outcome := range map[string][]string{
		"nat-firewall":    {"client | 3 packets transmitted, 3 received", "[2001:db8:3::10]/ -> 200 OK"},
		"loadbalancer":    {"nfpipe host web1:", "nfpipe host web2:", "nfpipe host web3:"},
		"mirror":          {"client | 3 packets transmitted, 3 received"},
		"seed-nat-filter": {"sink udp:9000: 50 packets", "100.64.0.1:"},
		"dualstack":       {"sink udp:9000: 20 packets", "198.51.100.1:", "[2001:db8:1::2]:", "2 packets transmitted, 2 received"},
		"replay":          {"fw | Chain FORWARD (IPv4 filter, policy DROP 10 packets"},
		"conntrack-scale": {"client | conns 198.51.100.2:7: 5000/5000 opened", "5000/5000 echoed again once all were open", "nat    | conntrack: 5000 of "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 2*time.Minute)
			root := shortDir(t)
			r := run(t, ctx, 90*time.Second, procSpec{Args: []string{"chain", "up", name + ".yaml", "--runtime-dir", root}, Dir: "../configs"})
			wantCode(t, "chain up "+name, r, 0)
			wantContains(t, "chain up "+name, r.Stderr, "chain "+name+" passed")
			wantContains(t, "chain up "+name, r.Stdout, outcome...)
			if name == "replay" {
				// The recorded capture holds the 10 datagrams to port 53.
				needTool(t, "tcpdump")
				td := run(t, ctx, 10*time.Second, procSpec{Path: "tcpdump", Args: []string{"-nr", "/tmp/nfpipe-replay-out.pcap"}})
				if n := strings.Count(td.Stdout, "> 198.51.100.7.53:"); n != 10 || strings.Count(td.Stdout, "\n") != 10 {
					t.Errorf("the recorded capture holds %d datagrams to port 53, want 10 and nothing else:\n%s", n, td.Stdout)
				}
			}
			if name == "mirror" {
				// The monitoring function got the mirrored frames.
				if m := regexp.MustCompile(`mon +\| in +(\d+) `).FindStringSubmatch(r.Stdout); m == nil || m[1] == "0" {
					t.Errorf("mon received no mirrored frames:\n%s", r.Stdout)
				}
			}
			wantLeftovers(t, filepath.Join(root, name))
		})
	}
}

// TestChainPipelineStdio runs configs/pipeline.yaml as the middle stage of
// a shell pipeline, as docs/chain.md shows: 100 datagrams in on stdin, out
// on stdout, masqueraded by the nat stage; the end of input travels through
// the chain and every process exits 0.
func TestChainPipelineStdio(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	root := shortDir(t)
	res := pipeline(t, ctx, 30*time.Second,
		[]string{"vnf", "host", "--if", "eth0=stdout", "--ip", "10.0.0.10/24", "--gw", "10.0.0.1", "--run", "gen udp 198.51.100.7:9000 count=100"},
		[]string{"chain", "up", "../configs/pipeline.yaml", "--runtime-dir", root},
		[]string{"vnf", "host", "--if", "eth0=stdin", "--ip", "198.51.100.7/24", "--serve", "sink udp:9000", "--expect", "100"})
	for i, r := range res {
		wantCode(t, fmt.Sprintf("stage %d", i+1), r, 0)
	}
	wantContains(t, "chain", res[1].Stderr, "nat            router    ok             0        0        0  finished", "chain nat-filter passed")
	wantContains(t, "sink", res[2].Stdout+res[2].Stderr, "sink udp:9000: 100 packets", "100.64.0.1:")
	wantLeftovers(t, filepath.Join(root, "nat-filter"))
}

// TestChainKillMiddle kills the router in the middle of a chain with
// SIGKILL while a client streams UDP through it: the router is restarted
// with its links (frames wait in the runner-held socketpairs meanwhile),
// the stream goes on, and no other function is restarted.
func TestChainKillMiddle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	dir := shortDir(t)
	root := filepath.Join(dir, "run")
	spec := filepath.Join(dir, "mid.yaml")
	os.WriteFile(spec, []byte(`name: mid
defaults:
  restart: {policy: on-failure, backoff: 50ms}
functions:
  client:
    kind: host
    interfaces: {eth0: 192.0.2.2/24}
    gateways: [192.0.2.1]
    run: [gen udp 198.51.100.2:9000 duration=3s rate=200]
    restart: never
  r:
    kind: router
    interfaces: {eth0: 192.0.2.1/24, eth1: 198.51.100.1/24}
  server:
    kind: host
    interfaces: {eth0: 198.51.100.2/24}
    gateways: [198.51.100.1]
    serve: [sink udp:9000]
pipeline: [client, r, server]
`), 0o600)
	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", spec, "--runtime-dir", root}})
	up.waitStderr(t, "chain mid ready", 20*time.Second)
	time.Sleep(time.Second)
	r := nfpipe(t, ctx, 10*time.Second, "chain", "status", "--runtime-dir", root, "--json")
	var st chainStatus
	json.Unmarshal([]byte(r.Stdout), &st)
	pid, _, _ := st.fn("r")
	if pid == 0 {
		t.Fatalf("no pid for r: %s", r.Stdout)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if code := up.wait(t, 30*time.Second); code != 0 {
		t.Errorf("chain up: exit %d", code)
	}
	out, errs := up.stdout.String(), up.stderr.String()
	wantContains(t, "chain up", errs, "r was killed by a signal; restarting",
		"client         host      passed         0        0",
		"r              router    ok             0        1",
		"server         host      ok             0        0")
	m := regexp.MustCompile(`sink udp:9000: (\d+) packets`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no sink summary:\n%s", out)
	}
	var got int
	fmt.Sscan(m[1], &got)
	if got < 540 { // 600 sent; what was in flight in the dead router may be lost
		t.Errorf("the sink got %d of 600 datagrams across the router's restart", got)
	}
}
