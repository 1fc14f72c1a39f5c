package hostapp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const connsUsage = "conns ADDR:PORT [count=1000] [parallel=64] [size=16] [hold=0s] [timeout=10s]"

// connsClient opens many TCP connections to an echo server and keeps them
// all open at once: what a NAT's or a firewall's connection tracking must
// hold. Each connection echoes a message when it opens and again once all
// are open, so a connection that a middlebox forgot in between fails.
type connsClient struct {
	dst      netip.AddrPort
	count    int
	parallel int
	size     int
	hold     time.Duration
	timeout  time.Duration

	mu    sync.Mutex
	stats ConnsStats
}

var _ App = (*connsClient)(nil)

// ConnsStats is what the conns client reports in Stats.
type ConnsStats struct {
	Dst          string  `json:"dst"`
	Count        int     `json:"count"`
	Opened       int     `json:"opened"`      // connected and echoed once
	OpenFailed   int     `json:"open_failed"` // dial or first echo failed
	SetupSeconds float64 `json:"setup_seconds"`
	SetupRate    float64 `json:"setup_per_second"` // opened / setup_seconds
	Echoed       int     `json:"echoed_again"`     // second echo, all open
	EchoFailed   int     `json:"echo_failed"`
	FirstError   string  `json:"first_error,omitempty"`
}

func parseConns(s *spec) (App, error) {
	if err := s.wantArgs(1, 1, []string{"ADDR:PORT"}, connsUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions("count", "parallel", "size", "hold", "timeout"); err != nil {
		return nil, err
	}
	dst, err := s.dialAddr(s.args[0])
	if err != nil {
		return nil, err
	}
	count, err := s.intOpt("count", 1000, 1, 1<<20)
	if err != nil {
		return nil, err
	}
	parallel, err := s.intOpt("parallel", 64, 1, 4096)
	if err != nil {
		return nil, err
	}
	size, err := s.sizeOpt("size", 16, 8, 65536)
	if err != nil {
		return nil, err
	}
	hold, err := s.durOpt("hold", 0, true)
	if err != nil {
		return nil, err
	}
	timeout, err := s.durOpt("timeout", 10*time.Second, false)
	if err != nil {
		return nil, err
	}
	c := &connsClient{dst: dst, count: int(count), parallel: int(parallel), size: int(size), hold: hold, timeout: timeout}
	c.stats.Dst, c.stats.Count = dst.String(), int(count)
	return c, nil
}

// Name implements App.
func (c *connsClient) Name() string { return "conns" }

// Stats implements App; it returns a ConnsStats.
func (c *connsClient) Stats() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// fail counts a failure and keeps the first error.
func (c *connsClient) fail(n *int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*n++
	if c.stats.FirstError == "" {
		c.stats.FirstError = err.Error()
	}
}

// echoOn sends message (conn i, round r) on conn and checks its echo.
func (c *connsClient) echoOn(conn net.Conn, i, r int) error {
	msg := make([]byte, c.size)
	echoMessage(msg, i)
	binary.BigEndian.PutUint32(msg[:4], uint32(i))
	binary.BigEndian.PutUint32(msg[4:8], uint32(r))
	if err := conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("connection %d: write: %w", i, err)
	}
	got := make([]byte, c.size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("connection %d: echo %d: %w", i, r, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("connection %d: echo %d differs from what was sent", i, r)
	}
	return nil
}

// each runs f(i) for i in [0, count) on c.parallel goroutines, stopping
// early when ctx ends.
func (c *connsClient) each(ctx context.Context, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c.parallel, c.count) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= c.count {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// Run implements App.
func (c *connsClient) Run(ctx context.Context, env *Env) error {
	out := newOutput(env)
	conns := make([]net.Conn, c.count)
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.Close()
			}
		}
	}()
	start := time.Now()
	c.each(ctx, func(i int) {
		conn, err := dial(ctx, env, "conns", "tcp", c.dst, c.timeout)
		if err == nil {
			if err = c.echoOn(conn, i, 1); err != nil {
				conn.Close()
			}
		}
		if err != nil {
			c.fail(&c.stats.OpenFailed, err)
			return
		}
		conns[i] = conn
		c.mu.Lock()
		c.stats.Opened++
		c.mu.Unlock()
	})
	setup := time.Since(start)
	c.mu.Lock()
	c.stats.SetupSeconds = setup.Seconds()
	if setup > 0 {
		c.stats.SetupRate = float64(c.stats.Opened) / setup.Seconds()
	}
	c.mu.Unlock()
	if c.hold > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(c.hold):
		}
	}
	c.each(ctx, func(i int) {
		if conns[i] == nil {
			return
		}
		if err := c.echoOn(conns[i], i, 2); err != nil {
			c.fail(&c.stats.EchoFailed, err)
			return
		}
		c.mu.Lock()
		c.stats.Echoed++
		c.mu.Unlock()
	})
	st := c.Stats().(ConnsStats)
	out.printf("conns %s: %d/%d opened in %.2fs (%.0f/s), %d/%d echoed again once all were open",
		c.dst, st.Opened, c.count, st.SetupSeconds, st.SetupRate, st.Echoed, st.Opened)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("conns %s: stopped after %d of %d connections: %w", c.dst, st.Opened+st.OpenFailed, c.count, err)
	}
	if st.OpenFailed > 0 || st.EchoFailed > 0 {
		return fmt.Errorf("conns %s: %d of %d connections failed to open, %d failed their second echo; first error: %s",
			c.dst, st.OpenFailed, c.count, st.EchoFailed, st.FirstError)
	}
	return nil
}
