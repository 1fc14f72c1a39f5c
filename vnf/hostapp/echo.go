package hostapp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

const (
	echoClientUsage = "echo tcp|udp ADDR:PORT [count=10] [size=64] [timeout=2s]"
	echoServerUsage = "echo tcp:PORT | udp:PORT"
)

// echoClient sends messages one at a time and checks each echo.
type echoClient struct {
	proto   string
	dst     netip.AddrPort
	count   int
	size    int
	timeout time.Duration

	mu    sync.Mutex
	stats EchoClientStats
	rtt   time.Duration // sum over echoed messages
}

var _ App = (*echoClient)(nil)

// EchoClientStats is what the echo client reports in Stats.
type EchoClientStats struct {
	Proto    string  `json:"proto"`
	Dst      string  `json:"dst"`
	Sent     int     `json:"sent"`
	Echoed   int     `json:"echoed"`  // echoes identical to what was sent
	Missing  int     `json:"missing"` // no echo within timeout
	Corrupt  int     `json:"corrupt"` // an echo that differs from what was sent
	Bytes    int64   `json:"bytes"`   // bytes correctly echoed
	RTTAvgMs float64 `json:"rtt_avg_ms"`
}

func parseEchoClient(s *spec) (App, error) {
	if err := s.wantArgs(2, 2, []string{"tcp|udp", "ADDR:PORT"}, echoClientUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions("count", "size", "timeout"); err != nil {
		return nil, err
	}
	proto, err := s.proto(s.args[0])
	if err != nil {
		return nil, err
	}
	dst, err := s.dialAddr(s.args[1])
	if err != nil {
		return nil, err
	}
	count, err := s.intOpt("count", 10, 1, 1<<31-1)
	if err != nil {
		return nil, err
	}
	// A datagram carries at most 65507 bytes over IPv4; a TCP message
	// could be larger, but one size limit is easier to document.
	size, err := s.sizeOpt("size", 64, 1, 65507)
	if err != nil {
		return nil, err
	}
	timeout, err := s.durOpt("timeout", 2*time.Second, false)
	if err != nil {
		return nil, err
	}
	c := &echoClient{proto: proto, dst: dst, count: int(count), size: int(size), timeout: timeout}
	c.stats.Proto, c.stats.Dst = proto, dst.String()
	return c, nil
}

// Name implements App.
func (c *echoClient) Name() string { return "echo" }

// Stats implements App; it returns an EchoClientStats.
func (c *echoClient) Stats() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// echoMessage fills b with message i: an 8-byte big-endian sequence number
// (when it fits) so that a late UDP echo is recognised as such, then a
// pattern that differs per message so that a stale or shifted echo does
// not compare equal.
func echoMessage(b []byte, i int) {
	for j := range b {
		b[j] = byte(i*7 + j*13 + 1)
	}
	if len(b) >= 8 {
		binary.BigEndian.PutUint64(b, uint64(i))
	}
}

// Run implements App.
func (c *echoClient) Run(ctx context.Context, env *Env) error {
	out := newOutput(env)
	conn, err := dial(ctx, env, "echo", c.proto, c.dst, c.timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := closeOnDone(ctx, conn)
	defer stop()

	sent := make([]byte, c.size)
	got := make([]byte, c.size+1) // one spare byte tells a longer datagram apart
	var fatal error
	for i := range c.count {
		echoMessage(sent, i)
		start := time.Now()
		c.mu.Lock()
		c.stats.Sent++
		c.mu.Unlock()
		if _, err := writeFull(conn, sent); err != nil {
			fatal = fmt.Errorf("message %d: write: %w", i+1, err)
			break
		}
		if err := conn.SetReadDeadline(start.Add(c.timeout)); err != nil {
			fatal = fmt.Errorf("message %d: %w", i+1, err)
			break
		}
		var ok bool
		var err error
		if c.proto == "tcp" {
			ok, err = c.readTCP(conn, sent, got[:c.size])
		} else {
			ok, err = c.readUDP(conn, sent, got, i)
		}
		rtt := time.Since(start)
		c.mu.Lock()
		switch {
		case err != nil && isTimeout(err):
			c.stats.Missing++
		case err != nil:
		case ok:
			c.stats.Echoed++
			c.stats.Bytes += int64(c.size)
			c.rtt += rtt
			c.stats.RTTAvgMs = round3(float64(c.rtt) / float64(c.stats.Echoed) / float64(time.Millisecond))
		default:
			c.stats.Corrupt++
		}
		c.mu.Unlock()
		if err != nil && (c.proto == "tcp" || !isTimeout(err)) {
			// A TCP stream that timed out is out of step with its echoes:
			// what follows would all compare wrong.
			fatal = fmt.Errorf("message %d: read: %w", i+1, err)
			break
		}
	}
	st := c.Stats().(EchoClientStats)
	line := fmt.Sprintf("echo %s %s: %d/%d messages echoed, %d bytes", c.proto, c.dst, st.Echoed, c.count, st.Bytes)
	if st.Echoed > 0 {
		line += ", rtt avg " + fmtMs(st.RTTAvgMs) + " ms"
	}
	if st.Corrupt > 0 {
		line += fmt.Sprintf(", %d corrupt", st.Corrupt)
	}
	out.printf("%s", line)
	if ctx.Err() != nil {
		return fmt.Errorf("echo %s %s: stopped after %d of %d messages: %w", c.proto, c.dst, st.Sent, c.count, ctx.Err())
	}
	if fatal != nil {
		return fmt.Errorf("echo %s %s: %w", c.proto, c.dst, fatal)
	}
	if bad := c.count - st.Echoed; bad > 0 {
		var why []string
		if st.Missing > 0 {
			why = append(why, fmt.Sprintf("%d missing", st.Missing))
		}
		if st.Corrupt > 0 {
			why = append(why, fmt.Sprintf("%d corrupt", st.Corrupt))
		}
		return fmt.Errorf("echo %s %s: %d of %d messages not echoed (%s)", c.proto, c.dst, bad, c.count, strings.Join(why, ", "))
	}
	return nil
}

// readTCP reads one echo of len(sent) bytes and compares it.
func (c *echoClient) readTCP(conn net.Conn, sent, got []byte) (bool, error) {
	if _, err := io.ReadFull(conn, got); err != nil {
		return false, err
	}
	return bytes.Equal(sent, got), nil
}

// readUDP reads datagrams until the echo of message i arrives, skipping
// late echoes of earlier messages (which were already counted missing).
func (c *echoClient) readUDP(conn net.Conn, sent, got []byte, i int) (bool, error) {
	for {
		n, err := conn.Read(got)
		if err != nil {
			return false, err
		}
		if n == len(sent) && bytes.Equal(sent, got[:n]) {
			return true, nil
		}
		if n >= 8 && len(sent) >= 8 && binary.BigEndian.Uint64(got) < uint64(i) {
			continue
		}
		return false, nil
	}
}

// echoServer echoes TCP streams or UDP datagrams back to their sender.
type echoServer struct {
	proto string
	addr  netip.AddrPort
	label string
	bound *boundAddr

	mu    sync.Mutex
	stats EchoServerStats
}

var _ App = (*echoServer)(nil)

// EchoServerStats is what the echo server reports in Stats.
type EchoServerStats struct {
	Listen      string `json:"listen"`
	Connections int64  `json:"connections,omitempty"` // TCP connections accepted
	// Messages counts datagrams echoed (UDP) or reads echoed (TCP, where
	// segment boundaries are not messages).
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
}

func parseEchoServer(s *spec) (App, error) {
	if err := s.checkOptions(); err != nil {
		return nil, err
	}
	proto, addr, err := s.protoListen(echoServerUsage)
	if err != nil {
		return nil, err
	}
	e := &echoServer{proto: proto, addr: addr, label: listenLabel(proto, addr), bound: newBoundAddr()}
	e.stats.Listen = e.label
	return e, nil
}

// Name implements App.
func (e *echoServer) Name() string { return "echo" }

// Stats implements App; it returns an EchoServerStats.
func (e *echoServer) Stats() any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Run implements App: it echoes until ctx ends.
func (e *echoServer) Run(ctx context.Context, env *Env) error {
	log := logger(env, "echo")
	if e.proto == "udp" {
		pc, err := env.Net.ListenUDP(e.addr)
		if err != nil {
			return fmt.Errorf("echo %s: listen: %w", e.label, err)
		}
		defer pc.Close()
		log.Info("listening", "proto", "udp", "addr", pc.LocalAddr().String())
		e.setLabel(pc.LocalAddr())
		e.bound.set(pc.LocalAddr())
		return e.serveUDP(ctx, pc)
	}
	ln, err := env.Net.ListenTCP(e.addr)
	if err != nil {
		return fmt.Errorf("echo %s: listen: %w", e.label, err)
	}
	log.Info("listening", "proto", "tcp", "addr", ln.Addr().String())
	e.setLabel(ln.Addr())
	e.bound.set(ln.Addr())
	if err := serveTCP(ctx, ln, e.handleTCP); err != nil {
		return fmt.Errorf("echo %s: %w", e.label, err)
	}
	return nil
}

// setLabel names the port actually bound in the server's output.
func (e *echoServer) setLabel(a net.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.label = listenLabel(e.proto, boundPort(e.addr, a))
	e.stats.Listen = e.label
}

// handleTCP echoes one connection until it ends or ctx does.
func (e *echoServer) handleTCP(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()
	e.mu.Lock()
	e.stats.Connections++
	e.mu.Unlock()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := writeFull(c, buf[:n]); werr != nil {
				return
			}
			e.mu.Lock()
			e.stats.Messages++
			e.stats.Bytes += int64(n)
			e.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// serveUDP echoes datagrams until ctx ends.
func (e *echoServer) serveUDP(ctx context.Context, pc net.PacketConn) error {
	stop := closeOnDone(ctx, pc)
	defer stop()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("echo %s: read: %w", e.label, err)
		}
		if err := pc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return fmt.Errorf("echo %s: %w", e.label, err)
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("echo %s: write: %w", e.label, err)
			}
			// One unreachable sender must not stop the server.
			continue
		}
		e.mu.Lock()
		e.stats.Messages++
		e.stats.Bytes += int64(n)
		e.mu.Unlock()
	}
}
