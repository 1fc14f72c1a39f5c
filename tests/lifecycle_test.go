package tests

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/vnf"
)

// stopWithin sends sig and checks that the process exits with status 0
// within d.
func stopWithin(t *testing.T, p *proc, sig syscall.Signal, d time.Duration) {
	t.Helper()
	began := time.Now()
	p.signal(t, sig)
	select {
	case <-p.done:
	case <-time.After(d):
		t.Errorf("%s still running %v after %v", p.name, d, sig)
		p.dumpAndKill()
		return
	}
	if p.code != 0 {
		t.Errorf("%s: exit status %d after %v, want 0", p.name, p.code, sig)
	}
	t.Logf("%s stopped %v after %v", p.name, time.Since(began).Round(time.Millisecond), sig)
}

// TestSIGTERM: a serving host stops promptly on SIGTERM, exits 0 and
// prints its counters, whether it listens on a socket or reads a pipe
// whose writer is still there.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	t.Run("unix-listen", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 30*time.Second)
		sock := filepath.Join(shortDir(t), "l.sock")
		srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock,
			"--ip", "192.0.2.2/24", "--serve", "echo tcp:7", "--serve", "http :80", "--stats=json", "--timeout", "25s"}})
		// A client comes and goes first, so there are counters to show.
		cli := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.1/24",
			"--run", "echo tcp 192.0.2.2:7 count=5", "--timeout", "10s")
		wantCode(t, "client", cli, 0)
		stopWithin(t, srv, syscall.SIGTERM, 2*time.Second)
		rep := parseStats(t, "server", srv.stdout.String())
		if rep.Name != "host" || rep.Kind != "host" {
			t.Errorf("report name/kind %q/%q, want host/host", rep.Name, rep.Kind)
		}
		if rx := rep.iface(t, "eth0").Counters["rx_frames"]; rx == 0 {
			t.Errorf("server eth0 rx_frames = 0 after a client talked to it")
		}
		var echo struct {
			Messages int64 `json:"messages"`
		}
		rep.app(t, "echo tcp:7", &echo)
		if echo.Messages != 5 {
			t.Errorf("server echo tcp:7 counted %d messages, want 5", echo.Messages)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("socket %s left behind", sock)
		}
	})
	t.Run("stdin-pipe-open", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 30*time.Second)
		// The test keeps the write end open, as an idle upstream function
		// in a shell pipeline does.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		sink := start(t, ctx, "sink", procSpec{Stdin: r, Args: []string{"vnf", "host", "--if", "eth0=stdin",
			"--ip", "198.51.100.7/24", "--serve", "sink udp:9000", "--stats=json", "--timeout", "25s"}})
		r.Close()
		sink.waitStderr(t, "listening", 10*time.Second)
		stopWithin(t, sink, syscall.SIGTERM, 2*time.Second)
		if sink.exited() {
			rep := parseStats(t, "sink", sink.stdout.String())
			wantCounter(t, rep, "eth0", "rx_frames", 0)
		}
	})
}

// TestSIGTERMUnderLoad: a router stops promptly on SIGTERM while frames
// keep arriving that it must answer (UDP to a closed port of its own:
// ICMP errors, each needing a route), and reports its counters. A stack
// closed in the middle of such a frame once waited forever.
func TestSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	gen := start(t, ctx, "gen", procSpec{Stdout: w, Args: []string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24",
		"--run", "gen udp 192.0.2.1:9 size=18 duration=30s"}})
	w.Close()
	ctl := filepath.Join(shortDir(t), "r.ctl")
	router := start(t, ctx, "router", procSpec{Stdin: r, Stdout: io.Discard, Args: []string{"vnf", "router", "--control", ctl,
		"--if", "eth0=stdin,ip=192.0.2.1/24", "--if", "eth1=stdout,ip=198.51.100.1/24", "--stats=json"}})
	r.Close()
	waitControl(t, ctx, ctl, 10*time.Second)
	// Well into the flood: thousands of frames in.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var rep vnf.StatsReport
		controlStats(t, ctx, ctl, &rep)
		if rep.Net.Interfaces[0].Counters["rx_frames"] >= 5000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("router eth0 received %d frames in 10s, want 5000", rep.Net.Interfaces[0].Counters["rx_frames"])
		}
	}
	if gen.exited() {
		t.Fatal("the generator ended before the router was stopped")
	}
	stopWithin(t, router, syscall.SIGTERM, 3*time.Second)
	if !router.exited() {
		return
	}
	rep := parseStats(t, "router", router.stderr.String())
	if rx := rep.iface(t, "eth0").Counters["rx_frames"]; rx < 5000 {
		t.Errorf("router eth0 rx_frames = %d in the final report, want at least 5000", rx)
	}
	if rep.proto(t, "icmp.v4.packets_sent.dst_unreachable") == 0 {
		t.Error("the router sent no port-unreachable errors: the flood did not reach its stack")
	}
}

// TestTimeoutWithIdleInput: --timeout stops a function even while its
// input pipe stays open and silent.
func TestTimeoutWithIdleInput(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	began := time.Now()
	rtr := start(t, ctx, "router", procSpec{Stdin: r, Stdout: devNull(t), Args: []string{"vnf", "router",
		"--if", "eth0=stdin,ip=192.0.2.1/24", "--if", "eth1=stdout,ip=198.51.100.1/24", "--timeout", "1s"}})
	r.Close()
	code := rtr.wait(t, 4*time.Second)
	took := time.Since(began)
	if code != 0 {
		t.Errorf("router: exit status %d at --timeout, want 0", code)
	}
	if took > 3*time.Second {
		t.Errorf("router with --timeout 1s ran %v", took)
	}
	wantContains(t, "router", rtr.stderr.String(), "timeout reached")
}

// TestSIGUSR1: SIGUSR1 prints the counters to stderr and the function
// keeps running.
func TestSIGUSR1(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	sock := filepath.Join(shortDir(t), "l.sock")
	srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock,
		"--ip", "192.0.2.2/24", "--serve", "echo tcp:7", "--timeout", "25s"}})
	cli := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.1/24",
		"--run", "echo tcp 192.0.2.2:7 count=10", "--timeout", "10s")
	wantCode(t, "client", cli, 0)

	srv.signal(t, syscall.SIGUSR1)
	srv.waitStderr(t, "apps: ", 5*time.Second)
	errOut := srv.stderr.String()
	wantContains(t, "server", errOut, "== host (host) counters ==", `"spec":"echo tcp:7"`, `"messages":10`)
	row := regexp.MustCompile(`(?m)^eth0\s+(\d+)\s+\d+\s+(\d+)\s+\d+\s+0\s+unix-listen:`).FindStringSubmatch(errOut)
	if row == nil {
		t.Errorf("no eth0 row in the counters:\n%s", errOut)
	} else if row[1] == "0" || row[2] == "0" {
		t.Errorf("eth0 rx/tx frames %s/%s after a client talked to it", row[1], row[2])
	}
	time.Sleep(300 * time.Millisecond)
	if srv.exited() {
		t.Fatalf("server exited (status %d) after SIGUSR1", srv.code)
	}
	// Still serving: another client gets its echoes.
	cli = nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", "192.0.2.1/24",
		"--run", "echo tcp 192.0.2.2:7 count=3", "--timeout", "10s")
	wantCode(t, "second client", cli, 0)
	stopWithin(t, srv, syscall.SIGTERM, 2*time.Second)
}

// TestUnixListenReconnect: after one peer leaves, the next one that
// connects to the same listener is served.
func TestUnixListenReconnect(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	sock := filepath.Join(shortDir(t), "l.sock")
	srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock,
		"--ip", "192.0.2.2/24", "--ip", "2001:db8::2/64", "--serve", "http :80", "--stats=json", "--timeout", "30s"}})
	for i, c := range []struct{ ip, dst string }{
		{"192.0.2.1/24", "192.0.2.2"},
		{"192.0.2.3/24", "192.0.2.2"}, // another host, another MAC
		{"2001:db8::1/64", "2001:db8::2"},
	} {
		res := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock, "--ip", c.ip,
			"--run", "ping "+c.dst+" count=2 interval=100ms", "--timeout", "10s")
		wantCode(t, "client "+c.ip, res, 0)
		wantContains(t, "client "+c.ip, res.Stdout, "2 packets transmitted, 2 received, 0% packet loss")
		if i == 0 {
			srv.waitStderr(t, "peer disconnected", 5*time.Second)
		}
	}
	stopWithin(t, srv, syscall.SIGTERM, 2*time.Second)
	rep := parseStats(t, "server", srv.stdout.String())
	if got := rep.proto(t, "icmp.v4.packets_received.echo_request"); got != 4 {
		t.Errorf("server icmp.v4.packets_received.echo_request = %d, want 4", got)
	}
	if got := rep.proto(t, "icmp.v6.packets_received.echo_request"); got != 2 {
		t.Errorf("server icmp.v6.packets_received.echo_request = %d, want 2", got)
	}
}
