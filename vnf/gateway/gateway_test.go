package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfpipe/nfpipe/internal/hostecho"
	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// lockedBuffer collects the gateway's report lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePort returns a 127.0.0.1 port nobody listens on (TCP and UDP).
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// TestGatewayInProcess runs a gateway and an inside host as two stacks of
// this process, with real loopback sockets on the host side, and checks
// both directions, half-close, resets, refusals, UDP sessions and their
// expiry, the counters, and that stopping leaves no goroutine behind.
func TestGatewayInProcess(t *testing.T) {
	echo := hostecho.Start(t)
	echoPort := echo.Port
	defer echo.Stop()
	closedPort := freePort(t)
	ps := func(p uint16) string { return fmt.Sprintf(":%d", p) }

	sock := filepath.Join(t.TempDir(), "gw.sock")
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := &vnf.Config{Kind: "gateway", Expect: -1, Params: map[string][]string{
		"forward": {"tcp:127.0.0.1:0=192.0.2.10:80", "tcp:127.0.0.1:0=192.0.2.10:81", "udp:127.0.0.1:0=192.0.2.10:53"},
		"expose": {"tcp:192.0.2.1:7000=127.0.0.1" + ps(echoPort), "udp:192.0.2.1:7000=127.0.0.1" + ps(echoPort),
			"tcp:192.0.2.1:7001=127.0.0.1" + ps(closedPort)},
		"udp-timeout": {"300ms"},
	}}
	gwNIC, err := netstack.ParseNIC("eth0=unix-listen:" + sock + ",ip=192.0.2.1/24")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stack = netstack.Config{Name: "gw", NICs: []netstack.NICConfig{gwNIC}}
	fn, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := fn.(*gateway)
	inNIC, err := netstack.ParseNIC("eth0=unix:" + sock + ",ip=192.0.2.10/24")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var gwStk, inStk *netstack.Stack
	var gwErr, inErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); gwStk, gwErr = netstack.New(ctx, cfg.Stack, log.With("vnf", "gw")) }()
	go func() {
		defer wg.Done()
		inStk, inErr = netstack.New(ctx, netstack.Config{Name: "in", NICs: []netstack.NICConfig{inNIC}}, log.With("vnf", "in"))
	}()
	wg.Wait()
	if gwErr != nil || inErr != nil {
		t.Fatal(gwErr, inErr)
	}
	defer gwStk.Close()
	defer inStk.Close()

	// The inside host: port 80 answers a request once the client has
	// half-closed; port 81 resets; 53/udp echoes.
	web, err := inStk.ListenTCP(netip.MustParseAddrPort("192.0.2.10:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	rst, err := inStk.ListenTCP(netip.MustParseAddrPort("192.0.2.10:81"))
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	dns, err := inStk.ListenUDP(netip.MustParseAddrPort("192.0.2.10:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	var servers sync.WaitGroup
	defer func() { web.Close(); rst.Close(); dns.Close(); servers.Wait() }()
	servers.Add(3)
	go func() {
		defer servers.Done()
		for {
			c, err := web.Accept()
			if err != nil {
				return
			}
			req, _ := io.ReadAll(c) // until the client's half-close
			c.Write(append([]byte("got "), req...))
			c.Close()
		}
	}()
	go func() {
		defer servers.Done()
		for {
			c, err := rst.Accept()
			if err != nil {
				return
			}
			// Closing with unread data resets (RFC 2525), in gVisor
			// as in Linux.
			c.Read(make([]byte, 1))
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	}()
	go func() {
		defer servers.Done()
		buf := make([]byte, 100)
		for {
			n, a, err := dns.ReadFrom(buf)
			if err != nil {
				return
			}
			dns.WriteTo(append([]byte("re:"), buf[:n]...), a)
		}
	}()

	out := &lockedBuffer{}
	env := &vnf.Env{Stack: gwStk, Log: log.With("vnf", "gw"), Out: out, Config: cfg}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if err := g.Start(runCtx, env); err != nil {
		t.Fatal(err)
	}
	gwStk.Start()
	inStk.Start()
	ran := make(chan error, 1)
	go func() { ran <- g.Run(runCtx, env) }()
	hostAddr := func(i int) string { return g.forwards[i].listen }

	// Host -> chain, with a half-close: the answer comes after our FIN.
	c, err := net.Dial("tcp", hostAddr(0))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "got GET" {
		t.Errorf("forward with half-close: %q, %v", got, err)
	}

	// A reset inside is a reset for the host client.
	c, err = net.Dial("tcp", hostAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("xy"))
	_, err = io.ReadAll(c)
	c.Close()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("forward to a server that resets: %v, want ECONNRESET", err)
	}

	// Host -> chain over UDP: two clients, two sessions.
	for _, msg := range []string{"a", "b"} {
		u, err := net.Dial("udp", hostAddr(2))
		if err != nil {
			t.Fatal(err)
		}
		u.SetDeadline(time.Now().Add(5 * time.Second))
		u.Write([]byte(msg))
		buf := make([]byte, 100)
		n, err := u.Read(buf)
		u.Close()
		if err != nil || string(buf[:n]) != "re:"+msg {
			t.Errorf("udp forward %q: %q, %v", msg, buf[:n], err)
		}
	}

	// Chain -> host: TCP echo through the exposed port.
	ic, err := inStk.DialTCPConn(ctx, netip.MustParseAddrPort("192.0.2.1:7000"))
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789"), 100000)
	go func() { ic.Write(payload); ic.CloseWrite() }()
	got, err = io.ReadAll(ic)
	ic.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("expose tcp: %d bytes back of %d, %v", len(got), len(payload), err)
	}
	// A host port nobody listens on: refused, as if the gateway's port
	// were closed; a port not exposed at all: refused by the stack.
	for _, port := range []string{"7001", "7002"} {
		_, err = inStk.DialTCPConn(ctx, netip.MustParseAddrPort("192.0.2.1:"+port))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("expose to port %s: %v, want ECONNREFUSED", port, err)
		}
	}
	// Chain -> host over UDP.
	iu, err := inStk.DialUDP(ctx, netip.MustParseAddrPort("192.0.2.1:7000"))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"one", "two"} {
		iu.SetDeadline(time.Now().Add(5 * time.Second))
		iu.Write([]byte(msg))
		buf := make([]byte, 100)
		n, err := iu.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Errorf("udp expose %q: %q, %v", msg, buf[:n], err)
		}
	}
	iu.Close()

	// Idle UDP sessions end after --udp-timeout (300ms).
	deadline := time.Now().Add(5 * time.Second)
	for g.forwards[2].c.active.Load()+g.exposes[1].c.active.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	stop()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	rep := map[string]Stats{}
	var denied Denied
	for _, it := range g.Report().([]ReportItem) {
		switch st := it.Stats.(type) {
		case Denied:
			denied = st
		case Stats:
			rep[it.Spec] = st
		}
	}
	for spec, want := range map[string]Stats{
		"forward tcp:127.0.0.1:0=192.0.2.10:80":                {Accepted: 1, BytesToChain: 3, BytesToHost: 7},
		"forward tcp:127.0.0.1:0=192.0.2.10:81":                {Accepted: 1, BytesToChain: 2},
		"forward udp:127.0.0.1:0=192.0.2.10:53":                {Accepted: 2, BytesToChain: 2, BytesToHost: 8, DatagramsToChain: 2, DatagramsToHost: 2, SessionsExpired: 2},
		"expose tcp:192.0.2.1:7000=127.0.0.1" + ps(echoPort):   {Accepted: 1, BytesToChain: 1000000, BytesToHost: 1000000},
		"expose udp:192.0.2.1:7000=127.0.0.1" + ps(echoPort):   {Accepted: 1, BytesToChain: 6, BytesToHost: 6, DatagramsToChain: 2, DatagramsToHost: 2, SessionsExpired: 1},
		"expose tcp:192.0.2.1:7001=127.0.0.1" + ps(closedPort): {Accepted: 1, Failed: 1, Failures: Failures{Refused: 1}},
	} {
		got, ok := rep[spec]
		if !ok {
			t.Errorf("no report for %q (have %v)", spec, rep)
			continue
		}
		got.Listen, got.To = "", ""
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", spec, got, want)
		}
	}
	if denied != (Denied{TCP: 1}) {
		t.Errorf("denied %+v, want 1 TCP", denied)
	}
	for _, want := range []string{
		"forward tcp:127.0.0.1:0=192.0.2.10:80: listening on 127.0.0.1:",
		"forward tcp:127.0.0.1:0=192.0.2.10:80: 1 connection, 3 bytes to the chain, 7 bytes to the host\n",
		"expose tcp:192.0.2.1:7001=127.0.0.1" + ps(closedPort) + ": 1 connection (1 failed: 1 refused), 0 bytes to the chain, 0 bytes to the host\n",
		"forward udp:127.0.0.1:0=192.0.2.10:53: 2 sessions, 2 datagrams (2 bytes) to the chain, 2 datagrams (8 bytes) to the host\n",
		"denied (nothing exposed there): 1 TCP connection attempts, 0 UDP datagrams\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
