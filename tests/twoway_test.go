package tests

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peerPlan is the addressing of two hosts on one link.
type peerPlan struct {
	name           string
	server, client string // ADDR/LEN
	addr           string // the server's address as apps take it
	hostPort       string // ADDR:PORT form, brackets for IPv6
	url            string
}

var peerPlans = []peerPlan{
	{"ipv4", "192.0.2.2/24", "192.0.2.1/24", "192.0.2.2", "192.0.2.2", "http://192.0.2.2/"},
	{"ipv6", "2001:db8::2/64", "2001:db8::1/64", "2001:db8::2", "[2001:db8::2]", "http://[2001:db8::2]/"},
}

// bulkClientStats is what the bulk client reports.
type bulkClientStats struct {
	Dst           string `json:"dst"`
	SentBytes     int64  `json:"sent_bytes"`
	ReceivedBytes int64  `json:"received_bytes"`
}

var bulkLine = regexp.MustCompile(`(?m)^bulk (\S+): sent (\S+ \S+) in [0-9.]+ s = [^;]+; receiver got (\S+ \S+) = `)

// twoHosts runs a server host and a client host on the two given interface
// specs and checks ping, TCP and UDP echo, HTTP and bulk TCP, both ways.
// stopServer ends the server after the client (nil: it ends by itself).
func twoHosts(t *testing.T, plan peerPlan, serverIf, clientIf string, stopServer func(*proc)) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", serverIf, "--ip", plan.server,
		"--serve", "echo tcp:7", "--serve", "echo udp:7", "--serve", "http :80", "--serve", "bulk",
		"--stats=json", "--timeout", "40s"}})
	cli := run(t, ctx, 40*time.Second, procSpec{Args: []string{"vnf", "host", "--if", clientIf, "--ip", plan.client,
		"--run", "ping " + plan.addr + " count=3 interval=100ms",
		"--run", "echo tcp " + plan.hostPort + ":7 count=10",
		"--run", "echo udp " + plan.hostPort + ":7 count=10",
		"--run", "http get " + plan.url,
		"--run", "bulk " + plan.addr + " seconds=1",
		"--stats=json", "--timeout", "30s"}})
	wantCode(t, "client", cli, 0)
	wantContains(t, "client", cli.Stdout,
		"3 packets transmitted, 3 received, 0% packet loss",
		"echo tcp "+plan.hostPort+":7: 10/10 messages echoed",
		"echo udp "+plan.hostPort+":7: 10/10 messages echoed",
		"GET "+plan.url+" -> 200 OK",
	)
	if n := strings.Count(cli.Stdout, "bytes from "+plan.addr+": icmp_seq="); n != 3 {
		t.Errorf("client: %d ping replies, want 3:\n%s", n, cli.Stdout)
	}
	m := bulkLine.FindStringSubmatch(cli.Stdout)
	if m == nil {
		t.Errorf("client: no bulk summary line in:\n%s", cli.Stdout)
	} else {
		if m[1] != plan.hostPort+":5201" {
			t.Errorf("bulk went to %s, want %s:5201", m[1], plan.hostPort)
		}
		if m[2] != m[3] {
			t.Errorf("bulk: sent %s, receiver got %s", m[2], m[3])
		}
	}
	rep := parseStats(t, "client", cli.Stdout)
	var bulk bulkClientStats
	rep.app(t, "bulk "+plan.addr+" seconds=1", &bulk)
	if bulk.SentBytes <= 0 || bulk.ReceivedBytes != bulk.SentBytes {
		t.Errorf("bulk: sent %d bytes, receiver got %d", bulk.SentBytes, bulk.ReceivedBytes)
	}
	// A two-way link may drop (and count) a frame when its queue stays
	// full under bulk TCP, which recovers; nothing else may be lost.
	for _, ifc := range rep.Stack.Interfaces {
		for _, k := range []string{"rx_malformed", "rx_other_host", "rx_dropped", "tx_no_path", "tx_errors"} {
			if ifc.Counters[k] != 0 {
				t.Errorf("client %s: %s = %d", ifc.Name, k, ifc.Counters[k])
			}
		}
	}

	if stopServer != nil {
		stopServer(srv)
	}
	code := srv.wait(t, 10*time.Second)
	if code != 0 {
		t.Errorf("server: exit status %d, want 0", code)
	}
	out := srv.stdout.String()
	wantContains(t, "server", out, "bulk: received ", "http server :80: 1 request")
	srep := parseStats(t, "server", out)
	var echo struct {
		Messages int64 `json:"messages"`
	}
	srep.app(t, "echo tcp:7", &echo)
	if echo.Messages != 10 {
		t.Errorf("server echo tcp:7 counted %d messages, want 10", echo.Messages)
	}
}

// TestTwoHostsUnixSocket: a listening host and a connecting host over a
// unix stream socket, IPv4 and IPv6.
func TestTwoHostsUnixSocket(t *testing.T) {
	t.Parallel()
	for _, plan := range peerPlans {
		t.Run(plan.name, func(t *testing.T) {
			t.Parallel()
			sock := filepath.Join(shortDir(t), "l.sock")
			twoHosts(t, plan, "eth0=unix-listen:"+sock, "eth0=unix:"+sock, func(p *proc) { p.signal(t, syscall.SIGTERM) })
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("socket %s left behind after the listener stopped", sock)
			}
		})
	}
}

// TestTwoHostsFIFO: the same over a FIFO pair; the server ends by itself
// when the client closes its side.
func TestTwoHostsFIFO(t *testing.T) {
	t.Parallel()
	for _, plan := range peerPlans {
		t.Run(plan.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ab, ba := filepath.Join(dir, "ab"), filepath.Join(dir, "ba")
			twoHosts(t, plan, "eth0=fifo:"+ab+"|fifo:"+ba, "eth0=fifo:"+ba+"|fifo:"+ab, nil)
		})
	}
}

// TestRouterUnixSockets: two hosts on two subnets through a router that
// listens on two unix sockets. Pings cross it (TTL 63); a ping with TTL 1
// gets time-exceeded from the router and never reaches the far host.
func TestRouterUnixSockets(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	dir := shortDir(t)
	a, b := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	rtr := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router",
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24,ip=2001:db8:1::1/64",
		"--if", "eth1=unix-listen:" + b + ",ip=198.51.100.1/24,ip=2001:db8:2::1/64",
		"--stats=json", "--timeout", "50s"}})
	far := start(t, ctx, "far host", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + b,
		"--ip", "198.51.100.7/24", "--ip", "2001:db8:2::7/64", "--gw", "198.51.100.1", "--gw", "2001:db8:2::1",
		"--serve", "http :80", "--stats=json", "--timeout", "50s"}})
	// Until the far host has connected, the router has nowhere to send
	// on eth1 (frames are dropped as tx_no_path, by design).
	rtr.waitStderr(t, `msg="peer connected" vnf=router kind=router if=eth1`, 15*time.Second)
	near := func(runs ...string) result {
		args := []string{"vnf", "host", "--if", "eth0=unix:" + a, "--ip", "192.0.2.10/24", "--ip", "2001:db8:1::10/64",
			"--gw", "192.0.2.1", "--gw", "2001:db8:1::1", "--timeout", "20s"}
		for _, r := range runs {
			args = append(args, "--run", r)
		}
		return run(t, ctx, 25*time.Second, procSpec{Args: args})
	}

	for _, dst := range []string{"198.51.100.7", "2001:db8:2::7"} {
		res := near("ping " + dst + " count=3 interval=100ms")
		wantCode(t, "ping "+dst, res, 0)
		wantContains(t, "ping "+dst, res.Stdout, "3 packets transmitted, 3 received, 0% packet loss")
		replies := regexp.MustCompile(`(?m)^64 bytes from `+regexp.QuoteMeta(dst)+`: icmp_seq=\d ttl=(\d+) `).FindAllStringSubmatch(res.Stdout, -1)
		if len(replies) != 3 {
			t.Errorf("ping %s: %d reply lines, want 3:\n%s", dst, len(replies), res.Stdout)
		}
		for _, r := range replies {
			if r[1] != "63" {
				t.Errorf("ping %s: reply with ttl=%s, want 63 (one router on the way)", dst, r[1])
			}
		}
	}
	for _, c := range []struct{ dst, router string }{{"198.51.100.7", "192.0.2.1"}, {"2001:db8:2::7", "2001:db8:1::1"}} {
		res := near("ping " + c.dst + " ttl=1 count=1")
		wantCode(t, "ping "+c.dst+" ttl=1", res, 1)
		wantContains(t, "ping "+c.dst+" ttl=1", res.Stdout, "From "+c.router+" icmp_seq=1 Time to live exceeded")
		if strings.Contains(res.Stdout, "bytes from ") {
			t.Errorf("ping %s ttl=1 got an echo reply:\n%s", c.dst, res.Stdout)
		}
	}

	rtr.signal(t, syscall.SIGTERM)
	far.signal(t, syscall.SIGTERM)
	if code := rtr.wait(t, 10*time.Second); code != 0 {
		t.Errorf("router: exit status %d", code)
	}
	if code := far.wait(t, 10*time.Second); code != 0 {
		t.Errorf("far host: exit status %d", code)
	}
	rrep := parseStats(t, "router", rtr.stdout.String())
	if got := rrep.proto(t, "ip.forwarding.exhausted_ttl"); got < 1 {
		t.Errorf("router ip.forwarding.exhausted_ttl = %d, want >= 1", got)
	}
	wantCounter(t, rrep, "eth0", "rx_ttl_expired", 1) // IPv4 only
	if got := rrep.proto(t, "icmp.v4.packets_sent.time_exceeded"); got != 1 {
		t.Errorf("router icmp.v4.packets_sent.time_exceeded = %d, want 1", got)
	}
	if got := rrep.proto(t, "icmp.v6.packets_sent.time_exceeded"); got != 1 {
		t.Errorf("router icmp.v6.packets_sent.time_exceeded = %d, want 1", got)
	}
	// The far host saw the 3+3 ordinary echo requests and none of the
	// TTL-1 ones.
	frep := parseStats(t, "far host", far.stdout.String())
	if got := frep.proto(t, "icmp.v4.packets_received.echo_request"); got != 3 {
		t.Errorf("far host icmp.v4.packets_received.echo_request = %d, want 3", got)
	}
	if got := frep.proto(t, "icmp.v6.packets_received.echo_request"); got != 3 {
		t.Errorf("far host icmp.v6.packets_received.echo_request = %d, want 3", got)
	}
}

// TestCaptureFile: --capture writes a pcap of an interface while it runs;
// the real tcpdump decodes the ping in it.
func TestCaptureFile(t *testing.T) {
	t.Parallel()
	needTool(t, "tcpdump")
	ctx := testContext(t, 40*time.Second)
	dir := shortDir(t)
	sock, capFile := filepath.Join(dir, "l.sock"), filepath.Join(dir, "ping.pcap")
	srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock,
		"--ip", "192.0.2.2/24", "--serve", "echo tcp:7", "--timeout", "30s"}})
	cli := nfpipe(t, ctx, 20*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.1/24",
		"--capture", "eth0="+capFile, "--run", "ping 192.0.2.2 count=2 interval=100ms", "--timeout", "15s")
	wantCode(t, "client", cli, 0)
	srv.signal(t, syscall.SIGTERM)
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("server: exit status %d", code)
	}
	td := run(t, ctx, 10*time.Second, procSpec{Path: "tcpdump", Args: []string{"-nr", capFile}})
	wantCode(t, "tcpdump", td, 0)
	req := regexp.MustCompile(`(?m)IP 192\.0\.2\.1 > 192\.0\.2\.2: ICMP echo request, id \d+, seq [12], length 64$`)
	rep := regexp.MustCompile(`(?m)IP 192\.0\.2\.2 > 192\.0\.2\.1: ICMP echo reply, id \d+, seq [12], length 64$`)
	if n := len(req.FindAllString(td.Stdout, -1)); n != 2 {
		t.Errorf("capture: %d echo requests, want 2:\n%s", n, td.Stdout)
	}
	if n := len(rep.FindAllString(td.Stdout, -1)); n != 2 {
		t.Errorf("capture: %d echo replies, want 2:\n%s", n, td.Stdout)
	}
}

// hostPair starts a server and a client host (`nfpipe vnf host` with the
// given arguments) on the two ends of a unix socketpair of type typ, handed
// down as fd 3. Only the children hold the ends once it returns: the
// server sees the end of the link when the client exits.
func hostPair(t *testing.T, ctx context.Context, typ int, srvArgs, cliArgs []string) (srv, cli *proc) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	srvEnd, cliEnd := os.NewFile(uintptr(fds[0]), "server-end"), os.NewFile(uintptr(fds[1]), "client-end")
	defer srvEnd.Close()
	defer cliEnd.Close()
	srv = start(t, ctx, "server", procSpec{ExtraFiles: []*os.File{srvEnd}, Args: append([]string{"vnf", "host"}, srvArgs...)})
	cli = start(t, ctx, "client", procSpec{ExtraFiles: []*os.File{cliEnd}, Args: append([]string{"vnf", "host"}, cliArgs...)})
	return srv, cli
}

// TestSeqpacketLink: two hosts on the two ends of a SOCK_SEQPACKET
// socketpair handed down as fd 3.
func TestSeqpacketLink(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	srv, cli := hostPair(t, ctx, syscall.SOCK_SEQPACKET, []string{
		"--if", "eth0=seqpacket:3", "--ip", "192.0.2.2/24", "--ip", "2001:db8::2/64",
		"--serve", "http :80", "--stats=json", "--timeout", "30s"}, []string{
		"--if", "eth0=seqpacket:3", "--ip", "192.0.2.1/24", "--ip", "2001:db8::1/64",
		"--run", "ping 192.0.2.2 count=3 interval=100ms", "--run", "http get http://192.0.2.2/",
		"--run", "ping 2001:db8::2 count=2 interval=100ms", "--run", "http get http://[2001:db8::2]/",
		"--stats=json", "--timeout", "20s"})
	if code := cli.wait(t, 25*time.Second); code != 0 {
		t.Errorf("client: exit status %d", code)
	}
	out := cli.stdout.String()
	wantContains(t, "client", out,
		"3 packets transmitted, 3 received, 0% packet loss",
		"2 packets transmitted, 2 received, 0% packet loss",
		"GET http://192.0.2.2/ -> 200 OK",
		"GET http://[2001:db8::2]/ -> 200 OK")
	crep := parseStats(t, "client", out)
	if l := crep.iface(t, "eth0").Link; !strings.Contains(l, "seqpacket:3") {
		t.Errorf("client eth0 link %q, want seqpacket:3", l)
	}
	wantCounter(t, crep, "eth0", "rx_malformed", 0)
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("server: exit status %d after the client left", code)
	}
	var hs struct {
		Requests int64 `json:"requests"`
	}
	parseStats(t, "server", srv.stdout.String()).app(t, "http :80", &hs)
	if hs.Requests != 2 {
		t.Errorf("server http :80 counted %d requests, want 2", hs.Requests)
	}
}

// TestREADMEExamples runs the shell examples of README.md as written (with
// /tmp paths moved into the test's own directory).
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	needTool(t, "tcpdump")
	type example struct {
		name, script string
		status       []int
		stdout       []string // fragments of stdout
		check        func(t *testing.T, dir string, res result)
	}
	examples := []example{
		{name: "chain", script: `nfpipe vnf host --if eth0=stdout --ip 192.0.2.10/24 --run 'gen udp 198.51.100.7:9000 count=1000 size=200' \
 | nfpipe vnf router --if eth0=stdin,ip=192.0.2.1/24 --if eth1=stdout,ip=198.51.100.1/24 --stats \
 | nfpipe vnf host --if eth0=stdin --ip 198.51.100.7/24 --serve 'sink udp:9000' --expect 1000`,
			status: []int{0, 0, 0},
			stdout: []string{"sink udp:9000: 1000 packets, 200000 bytes from 1 flow"},
			check: func(t *testing.T, _ string, res result) {
				// The router's text counters go to stderr.
				wantContains(t, "router", res.Stderr, "== router (router) counters ==")
				if !regexp.MustCompile(`(?m)^eth0\s+1000\s+\d+\s+0\s+0\s+0\s+stdin\|none$`).MatchString(res.Stderr) ||
					!regexp.MustCompile(`(?m)^eth1\s+0\s+0\s+1000\s+\d+\s+0\s+none\|stdout$`).MatchString(res.Stderr) {
					t.Errorf("router counters table does not show 1000 frames in on eth0 and out on eth1:\n%s", res.Stderr)
				}
			}},
		{name: "tcpdump", script: `nfpipe vnf host --if eth0=stdout,format=pcap --ip 192.0.2.10/24 --run 'gen udp 198.51.100.7:9000 count=5' | tcpdump -nr -`,
			status: []int{0, 0},
			check: func(t *testing.T, _ string, res result) {
				re := regexp.MustCompile(`(?m)^\S+ IP 192\.0\.2\.10\.\d+ > 198\.51\.100\.7\.9000: UDP, length 200$`)
				if n := len(re.FindAllString(res.Stdout, -1)); n != 5 {
					t.Errorf("tcpdump shows %d datagrams, want 5:\n%s", n, res.Stdout)
				}
			}},
		{name: "grep", script: `nfpipe vnf host --if eth0=stdout,format=hex --ip 192.0.2.10/24 \
    --run 'gen udp 192.0.2.7:8080 count=10' --run 'gen udp 192.0.2.7:9000 count=10' \
 | grep --line-buffered -v ' 1F 90 ' \
 | nfpipe vnf host --if eth0=stdin,format=hex --ip 192.0.2.7/24 --serve 'sink udp:9000' --expect 10`,
			status: []int{0, 0, 0},
			stdout: []string{"sink udp:9000: 10 packets, 2000 bytes from 1 flow"}},
		{name: "tee", script: `nfpipe vnf host --if eth0=stdout,format=pcap --ip 192.0.2.10/24 --run 'gen udp 192.0.2.7:9000 count=100' \
 | tee >(tcpdump -nr - >/tmp/mirror.txt) \
 | nfpipe vnf host --if eth0=stdin,format=pcap --ip 192.0.2.7/24 --serve 'sink udp:9000' --expect 100`,
			status: []int{0, 0, 0},
			stdout: []string{"sink udp:9000: 100 packets, 20000 bytes from 1 flow"},
			check: func(t *testing.T, dir string, _ result) {
				// tcpdump in the process substitution may finish after
				// the pipeline: wait for its 100 lines.
				re := regexp.MustCompile(`(?m)^\S+ IP 192\.0\.2\.10\.\d+ > 192\.0\.2\.7\.9000: UDP, length 200$`)
				var b []byte
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					b, _ = os.ReadFile(filepath.Join(dir, "mirror.txt"))
					if len(re.FindAll(b, -1)) == 100 {
						return
					}
				}
				t.Errorf("mirror.txt shows %d datagrams, want 100:\n%s", len(re.FindAll(b, -1)), b)
			}},
		{name: "unix", script: `nfpipe vnf host --if 'eth0=unix-listen:/tmp/l.sock' --ip 192.0.2.2/24 --serve 'echo tcp:7' --serve 'http :80' --serve bulk &
nfpipe vnf host --if 'eth0=unix:/tmp/l.sock' --ip 192.0.2.1/24 --run 'ping 192.0.2.2 count=5' \
    --run 'echo tcp 192.0.2.2:7' --run 'http get http://192.0.2.2/' --run 'bulk 192.0.2.2 seconds=3'
kill %1`,
			status: []int{0},
			stdout: []string{"5 packets transmitted, 5 received, 0% packet loss", "echo tcp 192.0.2.2:7: 10/10 messages echoed",
				"GET http://192.0.2.2/ -> 200 OK", "bulk 192.0.2.2:5201: sent "}},
		{name: "fifo", script: `nfpipe vnf host --if 'eth0=fifo:/tmp/ab|fifo:/tmp/ba' --ip 192.0.2.2/24 --serve 'echo tcp:7' --serve 'http :80' &
nfpipe vnf host --if 'eth0=fifo:/tmp/ba|fifo:/tmp/ab' --ip 192.0.2.1/24 --run 'ping 192.0.2.2 count=3' --run 'http get http://192.0.2.2/'`,
			status: []int{0},
			stdout: []string{"3 packets transmitted, 3 received, 0% packet loss", "GET http://192.0.2.2/ -> 200 OK"}},
	}
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 60*time.Second)
			dir := shortDir(t)
			script := strings.ReplaceAll(ex.script, "/tmp/", dir+"/")
			if ex.name == "unix" || ex.name == "fifo" {
				// The last command's status is the example's; the
				// background server's is reported on a line of its own
				// (by pid: the job may be reaped already).
				script = strings.Replace(script, " &\n", " &\nsrvpid=$!\n", 1)
				script += "\nrc=$?; wait $srvpid; echo \"server exit status $?\" >&2; (exit $rc)"
			}
			res, st := shell(t, ctx, 45*time.Second, dir, script)
			wantStatus(t, ex.name, st, ex.status...)
			wantNoPanic(t, ex.name, res.Stderr)
			wantContains(t, ex.name, res.Stdout, ex.stdout...)
			if ex.name == "unix" || ex.name == "fifo" {
				wantContains(t, ex.name, res.Stderr, "server exit status 0")
			}
			if ex.check != nil {
				ex.check(t, dir, res)
			}
		})
	}
}

// TestStdioLink: two hosts joined by two crossed OS pipes on their
// standard input and output (eth0=stdio). The client exits when its
// clients are done; the server then sees the end of its input and exits.
func TestStdioLink(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	toSrv, fromCli, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	toCli, fromSrv, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	srv := start(t, ctx, "server", procSpec{Stdin: toSrv, Stdout: fromSrv, Args: []string{"vnf", "host",
		"--if", "eth0=stdio", "--ip", "192.0.2.2/24", "--serve", "http :80", "--serve", "echo tcp:7",
		"--stats=json", "--timeout", "30s"}})
	cli := start(t, ctx, "client", procSpec{Stdin: toCli, Stdout: fromCli, Args: []string{"vnf", "host",
		"--if", "eth0=stdio", "--ip", "192.0.2.1/24",
		"--run", "ping 192.0.2.2 count=2 interval=100ms", "--run", "echo tcp 192.0.2.2:7 count=5",
		"--run", "http get http://192.0.2.2/", "--timeout", "30s"}})
	for _, f := range []*os.File{toSrv, fromCli, toCli, fromSrv} {
		f.Close()
	}
	// Reports go to stderr: stdout carries frames. The work takes well
	// under a second.
	if code := cli.wait(t, 5*time.Second); code != 0 {
		t.Errorf("client: exit status %d, want 0 once its clients are done", code)
	}
	wantContains(t, "client", cli.stderr.String(),
		"2 packets transmitted, 2 received, 0% packet loss",
		"echo tcp 192.0.2.2:7: 5/5 messages echoed",
		"GET http://192.0.2.2/ -> 200 OK")
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("server: exit status %d after the client left, want 0", code)
	}
	if srv.exited() {
		var hs struct {
			Requests int64 `json:"requests"`
		}
		parseStats(t, "server", srv.stderr.String()).app(t, "http :80", &hs)
		if hs.Requests != 1 {
			t.Errorf("server http :80 counted %d requests, want 1", hs.Requests)
		}
	}
}

// TestSeqpacketPackMismatch: two hosts whose ends of a seqpacket link
// disagree about packing cannot talk, and the packing end says why in its
// log, once, naming the setting to fix.
func TestSeqpacketPackMismatch(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	srv, cli := hostPair(t, ctx, syscall.SOCK_SEQPACKET, []string{
		"--if", "eth0=seqpacket:3,pack=on", "--ip", "192.0.2.2/24", "--serve", "echo udp:7", "--stats=json", "--timeout", "20s"}, []string{
		"--if", "eth0=seqpacket:3", "--ip", "192.0.2.1/24",
		"--run", "ping 192.0.2.2 count=2 interval=100ms timeout=500ms", "--timeout", "15s"})
	if code := cli.wait(t, 20*time.Second); code != 1 {
		t.Errorf("client: exit status %d, want 1 (no replies)", code)
	}
	wantContains(t, "client", cli.stdout.String(), "2 packets transmitted, 0 received, 100% packet loss")
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("server: exit status %d after the client left", code)
	}
	logs := srv.stderr.String()
	wantContains(t, "server log", logs, "is not packed", "this end has pack=on: set pack the same at both ends")
	if n := strings.Count(logs, "is not packed"); n != 1 {
		t.Errorf("server log says it %d times, want once:\n%s", n, logs)
	}
	if m := parseStats(t, "server", srv.stdout.String()).iface(t, "eth0").Counters["rx_malformed"]; m < 1 {
		t.Errorf("server rx_malformed %d, want the client's frames counted", m)
	}
}

// TestFDStreamLink: two hosts on the two ends of a unix stream socketpair
// handed down as fd 3 (eth0=fd:3), in the vde format.
func TestFDStreamLink(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	srv, cli := hostPair(t, ctx, syscall.SOCK_STREAM, []string{
		"--if", "eth0=fd:3,format=vde", "--ip", "2001:db8::2/64", "--serve", "echo udp:7", "--stats=json", "--timeout", "30s"}, []string{
		"--if", "eth0=fd:3,format=vde", "--ip", "2001:db8::1/64",
		"--run", "ping 2001:db8::2 count=2 interval=100ms", "--run", "echo udp [2001:db8::2]:7 count=5 size=1000",
		"--timeout", "20s"})
	// The client's work takes well under a second; then it must exit,
	// whatever its peer does.
	if code := cli.wait(t, 3*time.Second); code != 0 {
		t.Errorf("client: exit status %d, want 0 once its clients are done", code)
	}
	wantContains(t, "client", cli.stdout.String(),
		"2 packets transmitted, 2 received, 0% packet loss",
		"echo udp [2001:db8::2]:7: 5/5 messages echoed, 5000 bytes")
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("server: exit status %d after the client left", code)
	}
}

// TestDemo: the built-in demo (what `make demo` runs) passes every check.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	res := nfpipe(t, ctx, 45*time.Second, "demo")
	wantCode(t, "demo", res, 0)
	out := res.Stdout + res.Stderr
	wantContains(t, "demo", out, "== summary ==", "one-way pipeline              ok  1000 of 1000 UDP packets delivered")
	i := strings.Index(out, "== summary ==")
	if i < 0 {
		return
	}
	summary := lines(out[i+len("== summary =="):])
	if len(summary) < 6 {
		t.Errorf("demo summary has %d checks, want at least 6:\n%s", len(summary), out[i:])
	}
	for _, l := range summary {
		if !regexp.MustCompile(`\s ok\s`).MatchString(l) {
			t.Errorf("demo check not ok: %q", l)
		}
	}
}
