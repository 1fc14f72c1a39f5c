package hostapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// boundAddr publishes the address a server ended up listening on, which
// matters when the spec asked for port 0. Tests wait on it; production
// reads it from the "listening" log line.
type boundAddr struct {
	once  sync.Once
	ready chan struct{}
	addr  net.Addr
}

func newBoundAddr() *boundAddr { return &boundAddr{ready: make(chan struct{})} }

// set records a once the server listens.
func (b *boundAddr) set(a net.Addr) {
	b.once.Do(func() {
		b.addr = a
		close(b.ready)
	})
}

// wait returns the bound address once the server listens.
func (b *boundAddr) wait(ctx context.Context) (net.Addr, error) {
	select {
	case <-b.ready:
		return b.addr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// boundPort returns addr with the port the server actually got, so that a
// server asked for port 0 names its real port in its output.
func boundPort(addr netip.AddrPort, bound net.Addr) netip.AddrPort {
	if addr.Port() != 0 {
		return addr
	}
	return netip.AddrPortFrom(addr.Addr(), addrPortOf(bound).Port())
}

// serveTCP accepts connections on ln until ctx ends and runs handle for
// each in its own goroutine. handle must return soon after its ctx ends.
// serveTCP closes ln and returns once every handler has returned: nil if
// ctx ended, an error if accepting failed.
func serveTCP(ctx context.Context, ln net.Listener, handle func(context.Context, net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Closing the listener is what unblocks Accept when ctx ends.
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	var err error
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("accept: %w", aerr)
			}
			break
		}
		wg.Go(func() { handle(ctx, c) })
	}
	cancel()
	ln.Close()
	wg.Wait()
	return err
}

// dial connects to dst over proto ("tcp" or "udp"), giving up after
// timeout; the error names the application (app) and what it dialled.
func dial(ctx context.Context, env *Env, app, proto string, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if proto == "tcp" {
		conn, err = env.Net.DialTCP(dctx, dst)
	} else {
		conn, err = env.Net.DialUDP(dctx, dst)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: dial: %w", app, proto, dst, err)
	}
	return conn, nil
}

// closeOnDone closes c when ctx ends, to unblock the handler's reads and
// writes; call the returned stop when the handler is done with c.
func closeOnDone(ctx context.Context, c interface{ Close() error }) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// writeTimeout bounds every write, so that a stuck network is an error and
// not a hang (gonet's UDP Write can block forever on a full link).
const writeTimeout = 5 * time.Second

// writeFull writes all of b to c under a fresh write deadline.
func writeFull(c net.Conn, b []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return 0, err
	}
	return c.Write(b)
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
