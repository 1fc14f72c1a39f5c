package tests

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/internal/hostecho"
	"github.com/nfpipe/nfpipe/vnf/gateway"
)

// listeningOn waits until a gateway has printed where a rule listens
// ("forward SPEC: listening on ADDR") and returns ADDR.
func listeningOn(t *testing.T, p *proc, spec string, d time.Duration) string {
	t.Helper()
	prefix := spec + ": listening on "
	deadline := time.Now().Add(d)
	for {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if a, ok := strings.CutPrefix(l, prefix); ok {
				return a
			}
		}
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("%s: no %q after %v:\nstdout:\n%s\nstderr:\n%s", p.name, prefix, d, p.stdout, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatewayStats stops a gateway, checks it exited 0, and returns its rules'
// counters by spec and its denied counts.
func gatewayStats(t *testing.T, p *proc) (map[string]gateway.Stats, gateway.Denied) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("gateway: exit status %d, want 0\nstderr:\n%s", code, p.stderr)
	}
	rep := parseStats(t, "gateway", p.stdout.String())
	out := map[string]gateway.Stats{}
	var denied gateway.Denied
	for _, a := range rep.Apps {
		if a.Spec == "denied" {
			rep.app(t, a.Spec, &denied)
			continue
		}
		var st gateway.Stats
		rep.app(t, a.Spec, &st)
		out[a.Spec] = st
	}
	return out, denied
}

// TestGatewayForward: the host's own HTTP clients (Go's and curl) reach an
// nfpipe host's web server inside the chain through --forward on
// 127.0.0.1, over IPv4 and IPv6 inside; UDP datagrams from two host
// clients come back to the right one; a port nobody serves inside, and an
// address nobody has, reset the host client and are counted as refused
// and timeout; --control shows the counters while it runs.
func TestGatewayForward(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 90*time.Second)
	dir := shortDir(t)
	sock, ctl := filepath.Join(dir, "gw"), filepath.Join(dir, "gw.ctl")
	const (
		web    = "forward tcp:127.0.0.1:0=192.0.2.10:80"
		web6   = "forward tcp:127.0.0.1:0=[2001:db8::10]:80"
		closed = "forward tcp:127.0.0.1:0=192.0.2.10:81"
		nobody = "forward tcp:127.0.0.1:0=192.0.2.99:80"
		dns    = "forward udp:127.0.0.1:0=192.0.2.10:7"
	)
	args := []string{"vnf", "gateway", "--if", "eth0=unix-listen:" + sock + ",ip=192.0.2.1/24,ip=2001:db8::1/64",
		"--dial-timeout", "1s", "--stats=json", "--control", ctl}
	for _, s := range []string{web, web6, closed, nobody, dns} {
		args = append(args, "--forward", strings.TrimPrefix(s, "forward "))
	}
	gw := start(t, ctx, "gateway", procSpec{Args: args})
	inside := start(t, ctx, "inside server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + sock,
		"--ip", "192.0.2.10/24", "--ip", "2001:db8::10/64", "--gw", "192.0.2.1", "--serve", "http :80", "--serve", "echo udp:7"}})
	gw.waitStderr(t, "peer connected", 10*time.Second)
	waitControl(t, ctx, ctl, 10*time.Second)
	addr := map[string]string{}
	for _, s := range []string{web, web6, closed, nobody, dns} {
		addr[s] = listeningOn(t, gw, s, 10*time.Second)
		if !strings.HasPrefix(addr[s], "127.0.0.1:") || strings.HasSuffix(addr[s], ":0") {
			t.Fatalf("%s listens on %s, want 127.0.0.1 and a real port", s, addr[s])
		}
	}

	// Go's HTTP client, through both families inside.
	// No keep-alive: one request, one connection, so that they can be counted.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, s := range []string{web, web6} {
		resp, err := client.Get("http://" + addr[s] + "/")
		if err != nil {
			t.Fatalf("GET through %s: %v", s, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The inside server sees the gateway as its client.
		want := "you are 192.0.2.1:"
		if s == web6 {
			want = "you are [2001:db8::1]:"
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET through %s: %s %q, want 200 and %q", s, resp.Status, body, want)
		}
	}
	// A bulk download, timed.
	const size = 20 << 20
	began := time.Now()
	resp, err := client.Get(fmt.Sprintf("http://%s/bytes/%d", addr[web], size))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Errorf("download: %d bytes of %d, %v", n, size, err)
	}
	t.Logf("20 MiB through the forward in %v: %.0f Mbit/s", time.Since(began).Round(time.Millisecond), float64(size*8)/time.Since(began).Seconds()/1e6)

	// The control socket shows the counters while the gateway runs.
	var live struct {
		Apps []struct {
			Spec  string        `json:"spec"`
			Stats gateway.Stats `json:"stats"`
		} `json:"apps"`
	}
	// The last bytes are counted just after the client may have read them:
	// ask until they are.
	for deadline := time.Now().Add(5 * time.Second); ; {
		controlStats(t, ctx, ctl, &live)
		if len(live.Apps) == 6 && live.Apps[0].Stats.BytesToHost > size || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(live.Apps) != 6 || live.Apps[0].Spec != web || live.Apps[0].Stats.Accepted != 2 || live.Apps[0].Stats.BytesToHost <= size {
		t.Errorf("control stats: %+v", live.Apps)
	}

	// Nothing serves port 81 inside, and nobody has 192.0.2.99: the host
	// client's connection is reset.
	for _, s := range []string{closed, nobody} {
		c, err := net.Dial("tcp", addr[s])
		if errors.Is(err, syscall.ECONNRESET) {
			continue // the reset beat the runtime's look at the finished connect
		}
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		// Only read: a write could take the reset's error first.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c)
		c.Close()
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: read %v, want a reset", s, err)
		}
	}

	// UDP: two host clients, each gets its own echoes back.
	for i, c := range []string{"first", "second"} {
		u, err := net.Dial("udp", addr[dns])
		if err != nil {
			t.Fatal(err)
		}
		for j := range i + 2 {
			msg := fmt.Sprintf("%s %d", c, j)
			u.SetDeadline(time.Now().Add(5 * time.Second))
			u.Write([]byte(msg))
			buf := make([]byte, 100)
			n, err := u.Read(buf)
			if err != nil || string(buf[:n]) != msg {
				t.Errorf("udp %q: got %q, %v", msg, buf[:n], err)
			}
		}
		u.Close()
	}

	// curl, the tool a user would reach for.
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.CommandContext(ctx, "curl", "-sS", "-m", "10", "http://"+addr[web]+"/healthz").CombinedOutput()
		if err != nil {
			t.Errorf("curl: %v\n%s", err, out)
		}
	} else {
		needTool(t, "curl") // skips outside CI only; the rest has run
	}

	stats, denied := gatewayStats(t, gw)
	// The inside host ends by itself when its peer, the gateway, is gone.
	inside.wait(t, 10*time.Second)
	check := func(spec string, ok bool, what string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %s: %+v", spec, what, stats[spec])
		}
	}
	s := stats[web]
	check(web, s.Accepted >= 3 && s.Failed == 0 && s.Active == 0, "want at least 3 connections (2 Go, 1 curl), none failed or active")
	check(web, s.BytesToHost > size && s.BytesToChain > 100, "bytes: want the download to the host and the requests to the chain")
	check(web, s.Listen == addr[web] && s.To == "192.0.2.10:80", "listen/to")
	s = stats[web6]
	check(web6, s.Accepted == 1 && s.Failed == 0 && s.To == "[2001:db8::10]:80", "want 1 connection to [2001:db8::10]:80")
	s = stats[closed]
	check(closed, s.Accepted == 1 && s.Failed == 1 && s.Failures == gateway.Failures{Refused: 1}, "want 1 connection, refused")
	s = stats[nobody]
	check(nobody, s.Accepted == 1 && s.Failed == 1 && s.Failures == gateway.Failures{Timeout: 1}, "want 1 connection, timed out")
	s = stats[dns]
	check(dns, s.Accepted == 2 && s.DatagramsToChain == 5 && s.DatagramsToHost == 5 && s.BytesToChain == 38 && s.BytesToHost == 38, "want 2 sessions, 5 datagrams (38 bytes) each way")
	if denied != (gateway.Denied{}) {
		t.Errorf("denied %+v, want none", denied)
	}
	wantContains(t, "gateway summary", gw.stdout.String(),
		closed+": 1 connection (1 failed: 1 refused), 0 bytes to the chain, 0 bytes to the host",
		dns+": 2 sessions, 5 datagrams (38 bytes) to the chain, 5 datagrams (38 bytes) to the host")
}

// TestGatewayExpose: an nfpipe host inside the chain reaches a TCP and a
// UDP echo service on the host's loopback through --expose, every byte
// checked on both sides; a host port nobody listens on is refused inside as
// a closed port would be, and a port not exposed is denied.
func TestGatewayExpose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	dir := shortDir(t)
	sock := filepath.Join(dir, "gw")
	echo := hostecho.Start(t)
	closedL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closedL.Addr().(*net.TCPAddr).Port
	closedL.Close()
	var (
		tcpRule    = fmt.Sprintf("expose tcp:192.0.2.1:7000=127.0.0.1:%d", echo.Port)
		udpRule    = fmt.Sprintf("expose udp:192.0.2.1:7000=127.0.0.1:%d", echo.Port)
		closedRule = fmt.Sprintf("expose tcp:192.0.2.1:7001=127.0.0.1:%d", closedPort)
	)
	args := []string{"vnf", "gateway", "--if", "eth0=unix-listen:" + sock + ",ip=192.0.2.1/24", "--stats=json"}
	for _, s := range []string{tcpRule, udpRule, closedRule} {
		args = append(args, "--expose", strings.TrimPrefix(s, "expose "))
	}
	gw := start(t, ctx, "gateway", procSpec{Args: args})
	listeningOn(t, gw, tcpRule, 10*time.Second)

	client := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.10/24", "--gw", "192.0.2.1",
		"--run", "echo tcp 192.0.2.1:7000 count=20 size=1000", "--run", "echo udp 192.0.2.1:7000 count=5 size=100")
	wantCode(t, "inside client", client, 0)
	wantContains(t, "inside client", client.Stdout, "echo tcp 192.0.2.1:7000: 20/20 messages echoed, 20000 bytes", "echo udp 192.0.2.1:7000: 5/5 messages echoed, 500 bytes")
	if n := echo.UDPMsgs.Load(); n != 5 {
		t.Errorf("host UDP echo server got %d datagrams, want 5", n)
	}
	// The TCP echo server counts when the connection ends.
	deadline := time.Now().Add(5 * time.Second)
	for echo.TCPBytes.Load() != 20000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := echo.TCPBytes.Load(); n != 20000 {
		t.Errorf("host TCP echo server got %d bytes, want 20000", n)
	}

	refused := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.10/24", "--gw", "192.0.2.1",
		"--run", "echo tcp 192.0.2.1:7001 count=1", "--run", "echo tcp 192.0.2.1:7002 count=1")
	wantCode(t, "inside client of closed ports", refused, 1)
	wantContains(t, "inside client of closed ports", refused.Stderr,
		"dial tcp 192.0.2.1:7001: connect tcp 192.0.2.1:7001: connection was refused",
		"dial tcp 192.0.2.1:7002: connect tcp 192.0.2.1:7002: connection was refused")

	stats, denied := gatewayStats(t, gw)
	for spec, want := range map[string]gateway.Stats{
		tcpRule:    {Accepted: 1, BytesToHost: 20000, BytesToChain: 20000},
		udpRule:    {Accepted: 1, BytesToHost: 500, BytesToChain: 500, DatagramsToHost: 5, DatagramsToChain: 5},
		closedRule: {Accepted: 1, Failed: 1, Failures: gateway.Failures{Refused: 1}},
	} {
		got := stats[spec]
		got.Listen, got.To = "", ""
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", spec, got, want)
		}
	}
	if want := (gateway.Denied{TCP: 1}); denied != want {
		t.Errorf("denied %+v, want %+v", denied, want)
	}
	if got := stats[tcpRule]; got.Listen != "192.0.2.1:7000" || got.To != "127.0.0.1:"+strconv.Itoa(int(echo.Port)) {
		t.Errorf("%s: listen %q to %q", tcpRule, got.Listen, got.To)
	}
}

// TestGatewayErrors: a host address that is not loopback is an option
// error (exit 2) before anything runs; a host port in use stops the
// gateway before frames flow (exit 1), naming the --forward.
func TestGatewayErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	dir := shortDir(t)
	res := nfpipe(t, ctx, 10*time.Second, "vnf", "gateway", "--if", "eth0=unix-listen:"+filepath.Join(dir, "a")+",ip=192.0.2.1/24",
		"--forward", "tcp:0.0.0.0:8080=192.0.2.10:80")
	wantCode(t, "forward on 0.0.0.0", res, 2)
	wantContains(t, "forward on 0.0.0.0", res.Stderr,
		`nfpipe vnf gateway: --forward "tcp:0.0.0.0:8080=192.0.2.10:80": host address 0.0.0.0 is not a loopback address: add --allow-host-any to listen on it`)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	spec := fmt.Sprintf("tcp:%s=192.0.2.10:80", busy.Addr())
	res = nfpipe(t, ctx, 10*time.Second, "vnf", "gateway", "--if", "eth0=unix-listen:"+filepath.Join(dir, "b")+",ip=192.0.2.1/24",
		"--forward", "udp:127.0.0.1:0=192.0.2.10:53", "--forward", spec)
	wantCode(t, "forward on a port in use", res, 1)
	wantContains(t, "forward on a port in use", res.Stderr,
		fmt.Sprintf(`--forward \"%s\": listen tcp %s: bind: address already in use`, spec, busy.Addr()))
	if strings.Contains(res.Stdout, "listening on") {
		t.Errorf("a gateway that failed to start says it listens:\n%s", res.Stdout)
	}
}
