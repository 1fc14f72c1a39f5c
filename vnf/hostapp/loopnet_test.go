package hostapp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// loopNet implements Net over the standard library, for tests on the real
// loopback.
type loopNet struct{}

var _ Net = loopNet{}

func (loopNet) DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr.String())
}

func (loopNet) ListenTCP(addr netip.AddrPort) (net.Listener, error) {
	return net.Listen("tcp", loopHostPort(addr))
}

func (loopNet) DialUDP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "udp", addr.String())
}

func (loopNet) ListenUDP(addr netip.AddrPort) (net.PacketConn, error) {
	return net.ListenPacket("udp", loopHostPort(addr))
}

func (loopNet) NewPinger(bool) (Pinger, error) {
	return nil, errors.New("ping needs a user-space stack")
}

// loopHostPort turns the contract's "unspecified or invalid = all
// addresses, both families" into Go's ":port", which is dual-stack.
func loopHostPort(addr netip.AddrPort) string {
	if !addr.Addr().IsValid() || addr.Addr().IsUnspecified() {
		return ":" + strconv.Itoa(int(addr.Port()))
	}
	return addr.String()
}

// syncBuffer is an Env.Out that several goroutines may write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv returns an Env on the loopback whose logs go to the test log.
func testEnv(t *testing.T, n Net) (*Env, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &Env{Net: n, Out: out, Log: log, Expect: -1}, out
}

// server is a running --serve application.
type server struct {
	app  App
	addr netip.AddrPort // where it listens, with the real port
	stop func() error   // cancels it and returns Run's result
}

// startServe parses spec with ParseServe, runs it and waits until it
// listens. The test fails if it is still running at the end.
func startServe(t *testing.T, spec string, env *Env) *server {
	t.Helper()
	app, err := ParseServe(spec)
	if err != nil {
		t.Fatalf("ParseServe(%q): %v", spec, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, env) }()
	var b *boundAddr
	switch a := app.(type) {
	case *echoServer:
		b = a.bound
	case *sinkApp:
		b = a.bound
	case *httpServer:
		b = a.bound
	case *bulkServer:
		b = a.bound
	default:
		t.Fatalf("%T is not a server", app)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	var addr net.Addr
	select {
	case addr = <-waitBound(wctx, b):
	case err := <-done:
		cancel()
		t.Fatalf("%q: Run returned before listening: %v", spec, err)
	}
	if addr == nil {
		cancel()
		t.Fatalf("%q: not listening after 5 s", spec)
	}
	var once sync.Once
	var result error
	s := &server{app: app, addr: addrPortOf(addr)}
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				result = errors.New("server did not stop within 10 s")
			}
		})
		return result
	}
	t.Cleanup(func() { s.stop() })
	return s
}

func waitBound(ctx context.Context, b *boundAddr) <-chan net.Addr {
	ch := make(chan net.Addr, 1)
	go func() {
		a, _ := b.wait(ctx)
		ch <- a
	}()
	return ch
}

// dialable turns a server's address into one a client can dial on the
// IPv4 loopback.
func (s *server) dialable() netip.AddrPort {
	a := s.addr.Addr()
	if !a.IsValid() || a.IsUnspecified() {
		a = netip.MustParseAddr("127.0.0.1")
	}
	return netip.AddrPortFrom(a, s.addr.Port())
}

// checkGoroutines fails the test if it leaves goroutines behind. Call it
// first, so that its cleanup runs after the servers' cleanups.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// runClient parses spec with ParseRun and runs it to completion.
func runClient(t *testing.T, spec string, env *Env) (App, error) {
	t.Helper()
	app, err := ParseRun(spec)
	if err != nil {
		t.Fatalf("ParseRun(%q): %v", spec, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	return app, app.Run(ctx, env)
}
