package hostapp

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

const genUsage = "gen udp|tcp ADDR:PORT [count=N] [duration=D] [size=200] [rate=R]"

// genDefaultCount is how many packets gen sends when neither count nor
// duration bounds it: enough for a loss figure, quick on any link.
const genDefaultCount = 1000

// genDialTimeout bounds the TCP handshake and the wait for the receiver
// to close after the last byte.
const genDialTimeout = 5 * time.Second

// genApp is the traffic generator.
type genApp struct {
	proto    string
	dst      netip.AddrPort
	count    int64         // 0: bounded by duration only
	duration time.Duration // 0: bounded by count only
	size     int
	rate     rate

	mu    sync.Mutex
	stats GenStats
}

var _ App = (*genApp)(nil)

// GenStats is what gen reports in Stats. For TCP, Packets counts
// size-byte messages written.
type GenStats struct {
	Proto      string  `json:"proto"`
	Dst        string  `json:"dst"`
	Packets    int64   `json:"packets"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	PPS        float64 `json:"pps"`
	BitsPerSec float64 `json:"bits_per_sec"` // payload bits per second
}

func parseGen(s *spec) (App, error) {
	if err := s.wantArgs(2, 2, []string{"udp|tcp", "ADDR:PORT"}, genUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions("count", "duration", "size", "rate"); err != nil {
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
	g := &genApp{proto: proto, dst: dst}
	if g.count, err = s.intOpt("count", 0, 1, math.MaxInt64); err != nil {
		return nil, err
	}
	if g.duration, err = s.durOpt("duration", 0, false); err != nil {
		return nil, err
	}
	if g.count == 0 && g.duration == 0 {
		g.count = genDefaultCount
	}
	// UDP payloads carry gen's 8-byte sequence number and fit one IPv4
	// datagram; TCP messages are bounded only to keep the buffer sane.
	lo, hi := int64(8), int64(65507)
	if proto == "tcp" {
		lo, hi = 1, 16<<20
	}
	size, err := s.sizeOpt("size", 200, lo, hi)
	if err != nil {
		return nil, err
	}
	g.size = int(size)
	if g.rate, err = s.rateOpt("rate"); err != nil {
		return nil, err
	}
	g.stats.Proto, g.stats.Dst = proto, dst.String()
	return g, nil
}

// Name implements App.
func (g *genApp) Name() string { return "gen" }

// Stats implements App; it returns a GenStats.
func (g *genApp) Stats() any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// gap returns the time between packets for the configured rate, or 0 for
// as fast as the network accepts.
func (g *genApp) gap() time.Duration {
	pps := g.rate.PPS
	if g.rate.BPS > 0 {
		pps = g.rate.BPS / float64(g.size*8)
	}
	if pps <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / pps)
}

// Run implements App.
func (g *genApp) Run(ctx context.Context, env *Env) error {
	out := newOutput(env)
	conn, err := dial(ctx, env, "gen", g.proto, g.dst, genDialTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := closeOnDone(ctx, conn)
	defer stop()

	buf := make([]byte, g.size)
	gap := g.gap()
	start := time.Now()
	var deadlineSet time.Time
	var sendErr error
	for seq := int64(0); g.count == 0 || seq < g.count; seq++ {
		now := time.Now()
		if g.duration > 0 && now.Sub(start) >= g.duration {
			break
		}
		if gap > 0 {
			// Packets are due on an absolute schedule, so a late wake-up
			// is caught up by the next packets and the mean rate holds.
			if due := start.Add(time.Duration(seq) * gap); due.After(now) {
				if !sleepCtx(ctx, due.Sub(now)) {
					break
				}
				now = time.Now()
			}
		}
		// Refreshing the write deadline once a second instead of per write
		// keeps small-packet floods cheap; a write still fails after at
		// most writeTimeout stuck.
		if now.Sub(deadlineSet) > time.Second {
			if err := conn.SetWriteDeadline(now.Add(writeTimeout)); err != nil {
				sendErr = err
				break
			}
			deadlineSet = now
		}
		if len(buf) >= 8 {
			binary.BigEndian.PutUint64(buf, uint64(seq))
		}
		n, err := conn.Write(buf)
		g.mu.Lock()
		if err == nil {
			g.stats.Packets++
		}
		g.stats.Bytes += int64(n)
		g.mu.Unlock()
		if err != nil {
			sendErr = fmt.Errorf("write %d: %w", seq+1, err)
			break
		}
	}
	elapsed := time.Since(start)
	if sendErr == nil && ctx.Err() == nil && g.proto == "tcp" {
		sendErr = finishTCP(conn)
	}

	g.mu.Lock()
	g.stats.Seconds = round3(elapsed.Seconds())
	g.stats.PPS = round3(perSecond(float64(g.stats.Packets), elapsed))
	g.stats.BitsPerSec = math.Round(perSecond(float64(g.stats.Bytes*8), elapsed))
	st := g.stats
	g.mu.Unlock()
	unit := "packets"
	if g.proto == "tcp" {
		unit = "messages"
	}
	out.printf("gen %s -> %s: %d %s, %d bytes in %.2fs (%.0f pps, %s)", g.proto, g.dst, st.Packets, unit, st.Bytes, elapsed.Seconds(), st.PPS, fmtBits(st.BitsPerSec))
	if ctx.Err() != nil {
		return fmt.Errorf("gen %s %s: stopped after %d %s: %w", g.proto, g.dst, st.Packets, unit, ctx.Err())
	}
	if sendErr != nil {
		return fmt.Errorf("gen %s %s: %w", g.proto, g.dst, sendErr)
	}
	return nil
}

// finishTCP half-closes c and waits for the receiver to close its side,
// so that gen returns once the data has been taken, not merely queued.
// A receiver that never closes is not an error: the data was written.
func finishTCP(c net.Conn) error {
	hc, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return nil
	}
	if err := hc.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(genDialTimeout)); err != nil {
		return nil
	}
	_, _ = io.Copy(io.Discard, c)
	return nil
}

// sleepCtx sleeps for d, or less if ctx ends; it reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
