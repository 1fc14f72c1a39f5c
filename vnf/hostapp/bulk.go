package hostapp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	bulkClientUsage = "bulk ADDR[:PORT] [seconds=3] [size=128K] [port=5201]"
	bulkServerUsage = "bulk [[ADDR]:PORT]"
)

const (
	// bulkPort is the default port, iperf3's.
	bulkPort = 5201
	// bulkReplyTimeout bounds the wait for the receiver's byte count after
	// the last write: it covers draining the buffers in between.
	bulkReplyTimeout = 30 * time.Second
	// bulkIdleTimeout drops a receiver connection whose sender vanished.
	bulkIdleTimeout = 30 * time.Second
	// bulkRecentConns bounds the per-connection list in the server's Stats.
	bulkRecentConns = 100
)

// bulkClient sends as much as it can for a while and asks the receiver
// what arrived.
type bulkClient struct {
	dst     netip.AddrPort
	seconds time.Duration
	size    int

	mu    sync.Mutex
	stats BulkClientStats
}

var _ App = (*bulkClient)(nil)

// BulkClientStats is what the bulk client reports in Stats.
type BulkClientStats struct {
	Dst        string  `json:"dst"`
	SentBytes  int64   `json:"sent_bytes"`
	Seconds    float64 `json:"seconds"`
	BitsPerSec float64 `json:"bits_per_sec"`
	// ReceivedBytes is the receiver's count; -1 until it has answered (or
	// when the connection cannot half-close, so it never can).
	ReceivedBytes      int64          `json:"received_bytes"`
	ReceiverBitsPerSec float64        `json:"receiver_bits_per_sec"`
	Intervals          []BulkInterval `json:"intervals"`
}

// BulkInterval is one reporting interval of a bulk client.
type BulkInterval struct {
	Start      float64 `json:"start"` // seconds since the first write
	End        float64 `json:"end"`
	Bytes      int64   `json:"bytes"`
	BitsPerSec float64 `json:"bits_per_sec"`
}

func parseBulkClient(s *spec) (App, error) {
	if err := s.wantArgs(1, 1, []string{"ADDR[:PORT]"}, bulkClientUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions("seconds", "size", "port"); err != nil {
		return nil, err
	}
	port, err := s.intOpt("port", bulkPort, 1, 65535)
	if err != nil {
		return nil, err
	}
	tok := s.args[0]
	var dst netip.AddrPort
	if ap, err := netip.ParseAddrPort(tok); err == nil {
		if ap.Port() == 0 {
			return nil, s.badArg("address", tok, "want a port from 1 to 65535")
		}
		if o, ok := s.lookup("port"); ok && int64(ap.Port()) != port {
			return nil, s.badOption(o, fmt.Sprintf("the address already names port %d", ap.Port()))
		}
		dst = ap
	} else {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(tok, "["), "]"))
		if err != nil {
			return nil, s.badArg("address", tok, "want IP or IP:PORT such as 192.0.2.2 or [2001:db8::2]:5201 (there is no DNS)")
		}
		dst = netip.AddrPortFrom(a, uint16(port))
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	b := &bulkClient{dst: dst, seconds: 3 * time.Second}
	if o, ok := s.lookup("seconds"); ok {
		if b.seconds, err = parseSeconds(o.val); err != nil {
			return nil, s.badOption(o, "want a number of seconds such as 3 or 0.5, or a duration such as 500ms")
		}
		if b.seconds <= 0 || b.seconds > 24*time.Hour {
			return nil, s.badOption(o, "want a time from 1ms to 24h")
		}
	}
	size, err := s.sizeOpt("size", 128<<10, 1, 16<<20)
	if err != nil {
		return nil, err
	}
	b.size = int(size)
	b.stats = BulkClientStats{Dst: dst.String(), ReceivedBytes: -1, Intervals: []BulkInterval{}}
	return b, nil
}

// parseSeconds reads a plain number as seconds, anything else as a Go
// duration.
func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f != f || f > 1e6 || f < -1e6 {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// Name implements App.
func (b *bulkClient) Name() string { return "bulk" }

// Stats implements App; it returns a BulkClientStats.
func (b *bulkClient) Stats() any {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Intervals = append([]BulkInterval(nil), b.stats.Intervals...)
	return st
}

// Run implements App.
func (b *bulkClient) Run(ctx context.Context, env *Env) error {
	out := newOutput(env)
	conn, err := dial(ctx, env, "bulk", "tcp", b.dst, genDialTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := closeOnDone(ctx, conn)
	defer stop()

	buf := make([]byte, b.size)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	end := start.Add(b.seconds)
	mark, next := start, start.Add(time.Second)
	var sent, markSent int64
	var sendErr error
	now := start
	for now.Before(end) {
		n, err := writeFull(conn, buf)
		sent += int64(n)
		now = time.Now()
		if err != nil {
			sendErr = fmt.Errorf("write: %w", err)
			break
		}
		if !now.Before(next) || !now.Before(end) {
			b.interval(out, start, mark, now, sent-markSent)
			mark, markSent = now, sent
			for !next.After(now) {
				next = next.Add(time.Second)
			}
		}
	}
	sendTime := now.Sub(start)
	if sendErr == nil && sent > markSent {
		b.interval(out, start, mark, now, sent-markSent)
	}
	b.mu.Lock()
	b.stats.SentBytes = sent
	b.stats.Seconds = round3(sendTime.Seconds())
	b.stats.BitsPerSec = float64(int64(perSecond(float64(sent*8), sendTime)))
	b.mu.Unlock()
	if ctx.Err() != nil {
		return fmt.Errorf("bulk %s: stopped after %s: %w", b.dst, fmtBytes(sent), ctx.Err())
	}
	if sendErr != nil {
		return fmt.Errorf("bulk %s: %w", b.dst, sendErr)
	}

	got, err := b.receiverCount(conn)
	line := fmt.Sprintf("bulk %s: sent %s in %.2f s = %s", b.dst, fmtBytes(sent), sendTime.Seconds(), fmtBits(perSecond(float64(sent*8), sendTime)))
	if errors.Is(err, errNoHalfClose) {
		out.printf("%s; receiver count unavailable (%v)", line, err)
		return nil
	}
	if err != nil {
		out.printf("%s; no answer from the receiver", line)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("bulk %s: receiver count: %w", b.dst, err)
	}
	// The receiver's rate is measured up to its answer, which comes once
	// it has read the last byte.
	recvTime := time.Since(start)
	recvRate := perSecond(float64(got*8), recvTime)
	b.mu.Lock()
	b.stats.ReceivedBytes = got
	b.stats.ReceiverBitsPerSec = float64(int64(recvRate))
	b.mu.Unlock()
	out.printf("%s; receiver got %s = %s", line, fmtBytes(got), fmtBits(recvRate))
	if got != sent {
		return fmt.Errorf("bulk %s: receiver got %d bytes, sent %d", b.dst, got, sent)
	}
	return nil
}

// errNoHalfClose says the connection cannot signal the end of the data
// while staying open for the answer.
var errNoHalfClose = errors.New("the connection cannot half-close")

// receiverCount ends the data with a half-close and reads the receiver's
// 8-byte count.
func (b *bulkClient) receiverCount(conn net.Conn) (int64, error) {
	hc, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		conn.Close()
		return 0, errNoHalfClose
	}
	if err := hc.CloseWrite(); err != nil {
		return 0, fmt.Errorf("close write: %w", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(bulkReplyTimeout)); err != nil {
		return 0, err
	}
	var reply [8]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(reply[:])), nil
}

// interval records and prints one reporting interval.
func (b *bulkClient) interval(out *output, start, from, to time.Time, n int64) {
	iv := BulkInterval{
		Start:      round3(from.Sub(start).Seconds()),
		End:        round3(to.Sub(start).Seconds()),
		Bytes:      n,
		BitsPerSec: float64(int64(perSecond(float64(n*8), to.Sub(from)))),
	}
	b.mu.Lock()
	b.stats.Intervals = append(b.stats.Intervals, iv)
	b.mu.Unlock()
	out.printf("[%6.2f-%.2f s]  %s  %s", from.Sub(start).Seconds(), to.Sub(start).Seconds(), fmtBytes(n), fmtBits(iv.BitsPerSec))
}

// bulkServer receives bulk streams and answers each with its byte count.
type bulkServer struct {
	addr  netip.AddrPort
	label string
	bound *boundAddr

	mu    sync.Mutex
	stats BulkServerStats
}

var _ App = (*bulkServer)(nil)

// BulkServerStats is what the bulk server reports in Stats.
type BulkServerStats struct {
	Listen      string          `json:"listen"`
	Connections int64           `json:"connections"`
	Bytes       int64           `json:"bytes"`
	Recent      []BulkConnStats `json:"recent"` // the last 100 finished connections
}

// BulkConnStats is one finished bulk connection.
type BulkConnStats struct {
	From       string  `json:"from"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	BitsPerSec float64 `json:"bits_per_sec"`
	Complete   bool    `json:"complete"` // ended with the sender's half-close and our answer
}

func parseBulkServer(s *spec) (App, error) {
	if err := s.wantArgs(0, 1, nil, bulkServerUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions(); err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(netip.Addr{}, bulkPort)
	if len(s.args) == 1 {
		var err error
		if addr, err = s.listenAddr(s.args[0]); err != nil {
			return nil, err
		}
	}
	b := &bulkServer{addr: addr, label: addrLabel(addr), bound: newBoundAddr()}
	b.stats = BulkServerStats{Listen: b.label, Recent: []BulkConnStats{}}
	return b, nil
}

// Name implements App.
func (b *bulkServer) Name() string { return "bulk" }

// Stats implements App; it returns a BulkServerStats.
func (b *bulkServer) Stats() any {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Recent = append([]BulkConnStats(nil), b.stats.Recent...)
	return st
}

// Run implements App: it receives until ctx ends.
func (b *bulkServer) Run(ctx context.Context, env *Env) error {
	log := logger(env, "bulk")
	ln, err := env.Net.ListenTCP(b.addr)
	if err != nil {
		return fmt.Errorf("bulk server %s: listen: %w", b.label, err)
	}
	log.Info("listening", "proto", "tcp", "addr", ln.Addr().String())
	b.mu.Lock()
	b.label = addrLabel(boundPort(b.addr, ln.Addr()))
	b.stats.Listen = b.label
	label := b.label
	b.mu.Unlock()
	b.bound.set(ln.Addr())
	out := newOutput(env)
	err = serveTCP(ctx, ln, func(ctx context.Context, c net.Conn) { b.handle(ctx, c, out, log) })
	if err != nil {
		return fmt.Errorf("bulk server %s: %w", label, err)
	}
	return nil
}

// handle reads one stream to its end and answers with the byte count.
func (b *bulkServer) handle(ctx context.Context, c net.Conn, out *output, log *slog.Logger) {
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()
	b.mu.Lock()
	b.stats.Connections++
	b.mu.Unlock()
	from := addrPortOf(c.RemoteAddr()).String()
	start := time.Now()
	buf := make([]byte, 128<<10)
	var total int64
	var deadlineSet time.Time
	var rerr error
	for {
		// Refresh the idle deadline about once a second, not per read.
		if now := time.Now(); now.Sub(deadlineSet) > time.Second {
			if rerr = c.SetReadDeadline(now.Add(bulkIdleTimeout)); rerr != nil {
				break
			}
			deadlineSet = now
		}
		n, err := c.Read(buf)
		if n > 0 {
			total += int64(n)
			b.mu.Lock()
			b.stats.Bytes += int64(n)
			b.mu.Unlock()
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	elapsed := time.Since(start)
	cs := BulkConnStats{
		From:       from,
		Bytes:      total,
		Seconds:    round3(elapsed.Seconds()),
		BitsPerSec: float64(int64(perSecond(float64(total*8), elapsed))),
	}
	if rerr == nil {
		var reply [8]byte
		binary.BigEndian.PutUint64(reply[:], uint64(total))
		if _, err := writeFull(c, reply[:]); err != nil {
			rerr = fmt.Errorf("answer: %w", err)
		}
	}
	cs.Complete = rerr == nil
	b.mu.Lock()
	b.stats.Recent = append(b.stats.Recent, cs)
	if len(b.stats.Recent) > bulkRecentConns {
		b.stats.Recent = b.stats.Recent[1:]
	}
	b.mu.Unlock()
	if rerr != nil {
		log.Debug("bulk connection aborted", "from", from, "bytes", total, "err", rerr)
		out.printf("bulk: received %s from %s in %.2f s = %s (incomplete: %v)", fmtBytes(total), from, elapsed.Seconds(), fmtBits(cs.BitsPerSec), rerr)
		return
	}
	out.printf("bulk: received %s from %s in %.2f s = %s", fmtBytes(total), from, elapsed.Seconds(), fmtBits(cs.BitsPerSec))
}
