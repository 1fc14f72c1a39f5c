package hostapp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

const pingUsage = "ping ADDR [count=5] [interval=1s] [size=56] [ttl=64] [timeout=2s]"

// pingPoll bounds each Recv so that the receiver notices promptly that
// the sender has finished or given up.
const pingPoll = 50 * time.Millisecond

// pingApp is the ping client.
type pingApp struct {
	dst      netip.Addr
	count    int
	interval time.Duration
	size     int
	ttl      uint8
	timeout  time.Duration

	mu    sync.Mutex
	stats PingStats
	rtts  []time.Duration
}

var _ App = (*pingApp)(nil)

// PingStats is what ping reports in Stats.
type PingStats struct {
	Dst         string  `json:"dst"`
	Transmitted int     `json:"transmitted"`
	Received    int     `json:"received"`
	Errors      int     `json:"errors"`     // ICMP errors (time exceeded, unreachable) and send failures
	Duplicates  int     `json:"duplicates"` // echo replies for a sequence number already answered
	LossPercent float64 `json:"loss_percent"`
	RTTMinMs    float64 `json:"rtt_min_ms"`
	RTTAvgMs    float64 `json:"rtt_avg_ms"`
	RTTMaxMs    float64 `json:"rtt_max_ms"`
	RTTMdevMs   float64 `json:"rtt_mdev_ms"`
}

func parsePing(s *spec) (App, error) {
	if err := s.wantArgs(1, 1, []string{"ADDR"}, pingUsage); err != nil {
		return nil, err
	}
	if err := s.checkOptions("count", "interval", "size", "ttl", "timeout"); err != nil {
		return nil, err
	}
	dst, err := netip.ParseAddr(s.args[0])
	if err != nil {
		return nil, s.badArg("address", s.args[0], "want an IP address such as 192.0.2.2 or 2001:db8::2 (there is no DNS)")
	}
	p := &pingApp{dst: dst.Unmap()}
	count, err := s.intOpt("count", 5, 1, 65535) // sequence numbers are 16 bits
	if err != nil {
		return nil, err
	}
	p.interval, err = s.durOpt("interval", time.Second, true)
	if err != nil {
		return nil, err
	}
	// 65507 is the largest ICMP payload an IPv4 packet can carry.
	size, err := s.sizeOpt("size", 56, 0, 65507)
	if err != nil {
		return nil, err
	}
	ttl, err := s.intOpt("ttl", 64, 1, 255)
	if err != nil {
		return nil, err
	}
	p.timeout, err = s.durOpt("timeout", 2*time.Second, false)
	if err != nil {
		return nil, err
	}
	p.count, p.size, p.ttl = int(count), int(size), uint8(ttl)
	p.stats.Dst = p.dst.String()
	return p, nil
}

// Name implements App.
func (p *pingApp) Name() string { return "ping" }

// Stats implements App; it returns a PingStats.
func (p *pingApp) Stats() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Run implements App: it sends count echo requests, prints iputils-style
// lines, and fails if any reply is missing.
func (p *pingApp) Run(ctx context.Context, env *Env) error {
	out := newOutput(env)
	log := logger(env, "ping")
	pinger, err := env.Net.NewPinger(p.dst.Is6())
	if err != nil {
		return fmt.Errorf("ping %s: %w", p.dst, err)
	}
	defer pinger.Close()

	// A random identifier keeps concurrent pings on one stack apart.
	id := uint16(rand.N(1 << 16))
	overhead := 28 // IPv4 + ICMP headers
	if p.dst.Is6() {
		overhead = 48 // IPv6 + ICMPv6 headers
	}
	out.printf("PING %s %d(%d) bytes of data.", p.dst, p.size, p.size+overhead)
	log.Debug("ping start", "dst", p.dst, "id", id, "count", p.count)

	payload := make([]byte, p.size)
	for i := range payload {
		payload[i] = byte(i)
	}

	r := &pingRound{
		p:        p,
		out:      out,
		id:       id,
		sentAt:   make([]time.Time, p.count+1),
		answered: make([]bool, p.count+1),
		done:     make(chan struct{}),
	}
	// One goroutine receives while this one sends on schedule, so that a
	// slow reply never delays the next request.
	var recvErr error
	recvDone := make(chan struct{})
	stopRecv := make(chan struct{})
	go func() {
		defer close(recvDone)
		recvErr = r.receive(pinger, stopRecv)
	}()

	start := time.Now()
	r.mu.Lock()
	r.last = start
	r.mu.Unlock()
	var runErr error
	tick, err := newPreciseTicker(p.interval)
	if err != nil {
		return fmt.Errorf("ping %s: %w", p.dst, err)
	}
	defer tick.Stop()
send:
	for seq := 1; seq <= p.count; seq++ {
		r.mu.Lock()
		r.sentAt[seq] = time.Now()
		r.last = r.sentAt[seq]
		r.mu.Unlock()
		err := pinger.Send(p.dst, id, uint16(seq), p.ttl, payload)
		p.mu.Lock()
		p.stats.Transmitted++
		if err != nil {
			p.stats.Errors++
		}
		p.mu.Unlock()
		if err != nil {
			// Like iputils: report the failed send and go on; it counts
			// as a missing reply.
			out.printf("ping: send icmp_seq=%d: %v", seq, err)
			r.mu.Lock()
			r.answered[seq] = true
			r.mu.Unlock()
		}
		if seq == p.count {
			break
		}
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			break send
		case <-recvDone:
			break send
		case <-tick.C:
		}
	}
	r.mu.Lock()
	r.allSent = true
	r.checkDone()
	r.mu.Unlock()

	// Wait for stragglers: up to timeout after the last request, less if
	// every request has been answered.
	tick.Stop()
	timer := time.NewTimer(p.timeout)
	if runErr == nil {
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
		case <-r.done:
		case <-recvDone:
		case <-timer.C:
		}
	}
	timer.Stop()
	close(stopRecv)
	<-recvDone
	if recvErr != nil {
		runErr = fmt.Errorf("ping %s: receive: %w", p.dst, recvErr)
	}

	r.mu.Lock()
	elapsed := r.last.Sub(start)
	r.mu.Unlock()
	st := p.summarize()
	p.printSummary(out, st, elapsed)
	if runErr != nil {
		if errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded) {
			return fmt.Errorf("ping %s: stopped after %d of %d requests: %w", p.dst, st.Transmitted, p.count, runErr)
		}
		return runErr
	}
	if missing := st.Transmitted - st.Received; missing > 0 {
		return fmt.Errorf("ping %s: %d of %d replies missing (%s%% loss)", p.dst, missing, st.Transmitted, fmtPercent(st.LossPercent))
	}
	return nil
}

// pingRound is the state shared by ping's sender and receiver.
type pingRound struct {
	p   *pingApp
	out *output
	id  uint16

	mu       sync.Mutex
	sentAt   []time.Time // by sequence number; zero until sent
	answered []bool      // a reply or an error came back, or the send failed
	allSent  bool
	last     time.Time // the last send or reply, for the "time" figure
	done     chan struct{}
	closed   bool
}

// checkDone closes done once every request has been sent and answered.
// The caller holds mu.
func (r *pingRound) checkDone() {
	if r.closed || !r.allSent {
		return
	}
	for seq := 1; seq < len(r.answered); seq++ {
		if !r.sentAt[seq].IsZero() && !r.answered[seq] {
			return
		}
	}
	r.closed = true
	close(r.done)
}

// receive reads replies until stop is closed, printing and counting those
// that match our identifier and a sequence number we sent.
func (r *pingRound) receive(pinger Pinger, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		reply, err := pinger.Recv(time.Now().Add(pingPoll))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		now := time.Now()
		r.handle(reply, now)
	}
}

// handle accounts for one reply.
func (r *pingRound) handle(reply PingReply, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := int(reply.Seq)
	// Other pings on this stack share the socket's traffic: ignore what
	// is not ours.
	if reply.ID != r.id || seq < 1 || seq >= len(r.sentAt) || r.sentAt[seq].IsZero() {
		return
	}
	p := r.p
	r.last = now
	switch reply.Kind {
	case EchoReply:
		rtt := now.Sub(r.sentAt[seq])
		p.mu.Lock()
		dup := ""
		if r.answered[seq] {
			p.stats.Duplicates++
			dup = " (DUP!)"
		} else {
			p.stats.Received++
			p.rtts = append(p.rtts, rtt)
		}
		p.mu.Unlock()
		r.answered[seq] = true
		r.out.printf("%d bytes from %s: icmp_seq=%d ttl=%d time=%s ms%s", reply.Size, reply.From, seq, reply.TTL, fmtRTT(rtt), dup)
	case TimeExceeded:
		r.countError(seq)
		r.out.printf("From %s icmp_seq=%d Time to live exceeded", reply.From, seq)
	case Unreachable:
		r.countError(seq)
		r.out.printf("From %s icmp_seq=%d Destination unreachable (code %d)", reply.From, seq, reply.Code)
	default:
		r.countError(seq)
		r.out.printf("From %s icmp_seq=%d %s (code %d)", reply.From, seq, reply.Kind, reply.Code)
	}
	r.checkDone()
}

// countError counts an ICMP error for seq. The caller holds r.mu.
func (r *pingRound) countError(seq int) {
	r.p.mu.Lock()
	r.p.stats.Errors++
	r.p.mu.Unlock()
	r.answered[seq] = true
}

// summarize computes loss and RTT statistics into p.stats and returns a
// copy.
func (p *pingApp) summarize() PingStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &p.stats
	if st.Transmitted > 0 {
		st.LossPercent = float64(st.Transmitted-st.Received) * 100 / float64(st.Transmitted)
	}
	if n := len(p.rtts); n > 0 {
		var sum, sum2 float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, d := range p.rtts {
			ms := float64(d) / float64(time.Millisecond)
			sum += ms
			sum2 += ms * ms
			lo, hi = min(lo, ms), max(hi, ms)
		}
		avg := sum / float64(n)
		st.RTTMinMs, st.RTTAvgMs, st.RTTMaxMs = round3(lo), round3(avg), round3(hi)
		// mdev as iputils computes it: the standard deviation.
		st.RTTMdevMs = round3(math.Sqrt(max(0, sum2/float64(n)-avg*avg)))
	}
	return *st
}

// printSummary prints the iputils statistics block in one write.
func (p *pingApp) printSummary(out *output, st PingStats, elapsed time.Duration) {
	errs := ""
	if st.Errors > 0 {
		errs = fmt.Sprintf("+%d errors, ", st.Errors)
	}
	dups := ""
	if st.Duplicates > 0 {
		dups = fmt.Sprintf("+%d duplicates, ", st.Duplicates)
	}
	text := fmt.Sprintf("\n--- %s ping statistics ---\n%d packets transmitted, %d received, %s%s%s%% packet loss, time %dms",
		p.dst, st.Transmitted, st.Received, dups, errs, fmtPercent(st.LossPercent), elapsed.Milliseconds())
	if st.Received > 0 {
		text += fmt.Sprintf("\nrtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms", st.RTTMinMs, st.RTTAvgMs, st.RTTMaxMs, st.RTTMdevMs)
	}
	out.printf("%s", text)
}

// fmtPercent formats a percentage as iputils does (%g: 40, 66.6667).
func fmtPercent(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}
