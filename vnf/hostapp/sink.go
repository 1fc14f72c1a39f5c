package hostapp

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const sinkUsage = "sink udp:PORT | tcp:PORT"

const (
	// sinkDrainIdle is how long a stopping sink waits after the last
	// datagram (or read) for more: packets already on their way or in the
	// socket buffer must be counted, or --expect fails for nothing.
	sinkDrainIdle = 100 * time.Millisecond
	// sinkDrainMax bounds draining, so that a sender that never stops
	// cannot keep the function from stopping.
	sinkDrainMax = 2 * time.Second
	// sinkReadBuffer is the receive buffer a sink asks for: a burst from
	// an unpaced gen must not overflow it while the sink is scheduled out.
	sinkReadBuffer = 8 << 20
	// sinkTableRows bounds the per-flow table printed on exit.
	sinkTableRows = 50
)

// sinkApp counts what arrives, per flow.
type sinkApp struct {
	proto string
	addr  netip.AddrPort
	label string
	bound *boundAddr

	mu    sync.Mutex
	flows map[netip.AddrPort]*flow
}

var _ App = (*sinkApp)(nil)

// flow is what one source sent.
type flow struct {
	from        netip.AddrPort
	packets     int64
	bytes       int64
	first, last time.Time
	short       int64 // datagrams too short for a sequence number
	seq         seqTracker
	hasSeq      bool
	conns       int64 // TCP: connections seen
}

// SinkStats is what a sink reports in Stats.
type SinkStats struct {
	Listen string `json:"listen"`
	Proto  string `json:"proto"`
	// Packets counts UDP datagrams; 0 for TCP, whose byte stream has no
	// packets the receiver can see.
	Packets    int64       `json:"packets"`
	Bytes      int64       `json:"bytes"`
	Lost       int64       `json:"lost"`
	Duplicates int64       `json:"duplicates"`
	Reordered  int64       `json:"reordered"`
	Flows      []FlowStats `json:"flows"`
}

// FlowStats is one source's line in SinkStats. Lost, Duplicates and
// Reordered come from the 8-byte sequence numbers gen writes (UDP only).
type FlowStats struct {
	From        string    `json:"from"`
	Packets     int64     `json:"packets"`
	Bytes       int64     `json:"bytes"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Seconds     float64   `json:"seconds"`
	BitsPerSec  float64   `json:"bits_per_sec"`
	Lost        int64     `json:"lost,omitempty"`
	Duplicates  int64     `json:"duplicates,omitempty"`
	Reordered   int64     `json:"reordered,omitempty"`
	Short       int64     `json:"short,omitempty"`       // datagrams under 8 bytes
	Connections int64     `json:"connections,omitempty"` // TCP
}

func parseSink(s *spec) (App, error) {
	if _, ok := s.lookup("expect"); ok {
		// The count belongs to the host, which may run several sinks
		// from one --expect; say where it goes.
		return nil, fmt.Errorf("unknown option %q in %q (sink takes no options; use the host's --expect N)", "expect", s.text)
	}
	if err := s.checkOptions(); err != nil {
		return nil, err
	}
	proto, addr, err := s.protoListen(sinkUsage)
	if err != nil {
		return nil, err
	}
	return &sinkApp{
		proto: proto,
		addr:  addr,
		label: listenLabel(proto, addr),
		bound: newBoundAddr(),
		flows: map[netip.AddrPort]*flow{},
	}, nil
}

// Name implements App.
func (k *sinkApp) Name() string { return "sink" }

// Stats implements App; it returns a SinkStats with flows sorted by bytes,
// largest first.
func (k *sinkApp) Stats() any {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := SinkStats{Listen: k.label, Proto: k.proto, Flows: []FlowStats{}}
	for _, f := range k.flows {
		fs := FlowStats{
			From:        f.from.String(),
			Packets:     f.packets,
			Bytes:       f.bytes,
			First:       f.first,
			Last:        f.last,
			Short:       f.short,
			Connections: f.conns,
		}
		d := f.last.Sub(f.first)
		fs.Seconds = round3(d.Seconds())
		fs.BitsPerSec = float64(int64(perSecond(float64(f.bytes*8), d)))
		if f.hasSeq {
			fs.Lost, fs.Duplicates, fs.Reordered = f.seq.lost(), f.seq.dups, f.seq.reordered
		}
		st.Packets += fs.Packets
		st.Bytes += fs.Bytes
		st.Lost += fs.Lost
		st.Duplicates += fs.Duplicates
		st.Reordered += fs.Reordered
		st.Flows = append(st.Flows, fs)
	}
	slices.SortFunc(st.Flows, func(a, b FlowStats) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.From, b.From))
	})
	return st
}

// setLabel names the port actually bound in the sink's output.
func (k *sinkApp) setLabel(a net.Addr) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.label = listenLabel(k.proto, boundPort(k.addr, a))
}

// flowFor returns the flow of from, creating it. The caller holds k.mu.
func (k *sinkApp) flowFor(from netip.AddrPort, now time.Time) *flow {
	f := k.flows[from]
	if f == nil {
		f = &flow{from: from, first: now}
		k.flows[from] = f
	}
	return f
}

// Run implements App: it counts until ctx ends, drains, prints the flow
// table and checks Env.Expect.
func (k *sinkApp) Run(ctx context.Context, env *Env) error {
	log := logger(env, "sink")
	var err error
	if k.proto == "udp" {
		err = k.runUDP(ctx, env)
	} else {
		err = k.runTCP(ctx, env)
	}
	select {
	case <-k.bound.ready:
	default:
		return err // never listened: nothing to report
	}
	st := k.Stats().(SinkStats)
	k.report(newOutput(env), st)
	label := st.Listen
	log.Info("stopped", "packets", st.Packets, "bytes", st.Bytes, "flows", len(st.Flows))
	if err != nil {
		return err
	}
	if env.Expect >= 0 {
		if k.proto == "udp" && st.Packets != env.Expect {
			return fmt.Errorf("sink %s: got %d packets, expected %d", label, st.Packets, env.Expect)
		}
		if k.proto == "tcp" && st.Bytes != env.Expect {
			return fmt.Errorf("sink %s: got %d bytes, expected %d", label, st.Bytes, env.Expect)
		}
	}
	return nil
}

// drainer turns a stop into a drain: when ctx ends it sets a short read
// deadline, and every read after that pushes the deadline on, so the
// reader ends once nothing has come for sinkDrainIdle.
type drainer struct {
	draining atomic.Bool
	since    time.Time // when the reader first saw draining
	c        interface{ SetReadDeadline(time.Time) error }
}

// start arms the drainer on ctx; call the returned stop when done.
func (d *drainer) start(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		d.draining.Store(true)
		_ = d.c.SetReadDeadline(time.Now().Add(sinkDrainIdle))
	})
}

// afterRead is called by the reader after each successful read; it
// reports whether to keep reading.
func (d *drainer) afterRead(now time.Time) bool {
	if !d.draining.Load() {
		return true
	}
	if d.since.IsZero() {
		d.since = now
	}
	if now.Sub(d.since) > sinkDrainMax {
		return false
	}
	_ = d.c.SetReadDeadline(now.Add(sinkDrainIdle))
	return true
}

func (k *sinkApp) runUDP(ctx context.Context, env *Env) error {
	pc, err := env.Net.ListenUDP(k.addr)
	if err != nil {
		return fmt.Errorf("sink %s: listen: %w", k.label, err)
	}
	defer pc.Close()
	log := logger(env, "sink")
	if rb, ok := pc.(interface{ SetReadBuffer(int) error }); ok {
		if err := rb.SetReadBuffer(sinkReadBuffer); err != nil {
			log.Debug("cannot raise the receive buffer", "err", err)
		}
	}
	log.Info("listening", "proto", "udp", "addr", pc.LocalAddr().String())
	k.setLabel(pc.LocalAddr())
	k.bound.set(pc.LocalAddr())

	d := &drainer{c: pc}
	stop := d.start(ctx)
	defer stop()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if d.draining.Load() {
				return nil // a timeout while draining is the normal end
			}
			return fmt.Errorf("sink %s: read: %w", k.label, err)
		}
		k.recordUDP(addrPortOf(from), buf[:n], now)
		if !d.afterRead(now) {
			log.Warn("still receiving after the drain limit; stopping", "limit", sinkDrainMax)
			return nil
		}
	}
}

// recordUDP counts one datagram.
func (k *sinkApp) recordUDP(from netip.AddrPort, b []byte, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.flowFor(from, now)
	f.packets++
	f.bytes += int64(len(b))
	f.last = now
	if len(b) < 8 {
		f.short++
		return
	}
	f.hasSeq = true
	f.seq.add(binary.BigEndian.Uint64(b))
}

// addrPortOf turns a packet source into a map key. Dual-stack sockets
// report IPv4 peers as v4-mapped IPv6; unmapping keeps one flow one key.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case nil:
		return ap
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (k *sinkApp) runTCP(ctx context.Context, env *Env) error {
	ln, err := env.Net.ListenTCP(k.addr)
	if err != nil {
		return fmt.Errorf("sink %s: listen: %w", k.label, err)
	}
	logger(env, "sink").Info("listening", "proto", "tcp", "addr", ln.Addr().String())
	k.setLabel(ln.Addr())
	k.bound.set(ln.Addr())
	if err := serveTCP(ctx, ln, k.handleTCP); err != nil {
		return fmt.Errorf("sink %s: %w", k.label, err)
	}
	return nil
}

// handleTCP counts one connection's bytes until it ends, or ctx ends and
// the connection has drained.
func (k *sinkApp) handleTCP(ctx context.Context, c net.Conn) {
	defer c.Close()
	from := addrPortOf(c.RemoteAddr())
	k.mu.Lock()
	k.flowFor(from, time.Now()).conns++
	k.mu.Unlock()
	d := &drainer{c: c}
	stop := d.start(ctx)
	defer stop()
	buf := make([]byte, 128<<10)
	for {
		n, err := c.Read(buf)
		now := time.Now()
		if n > 0 {
			k.mu.Lock()
			f := k.flowFor(from, now)
			f.bytes += int64(n)
			f.last = now
			k.mu.Unlock()
		}
		// EOF (the sender is done: closing tells gen its data was taken),
		// a drain timeout or a reset all end the connection.
		if err != nil || !d.afterRead(now) {
			return
		}
	}
}

// report prints the flow table and the total line in one write.
func (k *sinkApp) report(out *output, st SinkStats) {
	var b bytes.Buffer
	if len(st.Flows) > 0 {
		// The tabwriter right-aligns the figures; padding the addresses to
		// one width keeps them left-aligned.
		rows := st.Flows[:min(len(st.Flows), sinkTableRows)]
		width := len("from")
		for _, f := range rows {
			width = max(width, len(f.From))
		}
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		if k.proto == "udp" {
			fmt.Fprintf(tw, "  %-*s\tpackets\tbytes\tlost\tdup\treord\tseconds\tpps\trate\t\n", width, "from")
		} else {
			fmt.Fprintf(tw, "  %-*s\tconns\tbytes\tseconds\trate\t\n", width, "from")
		}
		for _, f := range rows {
			d := f.Last.Sub(f.First)
			if k.proto == "udp" {
				fmt.Fprintf(tw, "  %-*s\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.0f\t%s\t\n", width, f.From, f.Packets, f.Bytes, f.Lost, f.Duplicates, f.Reordered,
					d.Seconds(), perSecond(float64(f.Packets), d), fmtBits(f.BitsPerSec))
			} else {
				fmt.Fprintf(tw, "  %-*s\t%d\t%d\t%.2f\t%s\t\n", width, f.From, f.Connections, f.Bytes, d.Seconds(), fmtBits(f.BitsPerSec))
			}
		}
		tw.Flush()
		if more := len(st.Flows) - len(rows); more > 0 {
			fmt.Fprintf(&b, "  ... and %d more flows\n", more)
		}
	}
	plural := "s"
	if len(st.Flows) == 1 {
		plural = ""
	}
	if k.proto == "udp" {
		fmt.Fprintf(&b, "sink %s: %d packets, %d bytes from %d flow%s", st.Listen, st.Packets, st.Bytes, len(st.Flows), plural)
		if st.Lost+st.Duplicates+st.Reordered > 0 {
			fmt.Fprintf(&b, " (%d lost, %d duplicate, %d reordered)", st.Lost, st.Duplicates, st.Reordered)
		}
	} else {
		fmt.Fprintf(&b, "sink %s: %d bytes from %d flow%s", st.Listen, st.Bytes, len(st.Flows), plural)
	}
	out.printf("%s", b.String())
}

// seqWindow is how far back, in sequence numbers, a late datagram can
// still be told apart from a duplicate: 64 Kibit (8 KiB) per flow.
const seqWindow = 1 << 16

// seqTracker follows the sequence numbers of one flow in bounded memory:
// a bitmap of the last seqWindow numbers below the highest seen.
type seqTracker struct {
	started         bool
	lowest, highest uint64
	unique          int64 // distinct sequence numbers seen
	dups, reordered int64
	seen            []uint64 // ring bitmap indexed by seq % seqWindow
}

// add records sequence number s.
func (t *seqTracker) add(s uint64) {
	if !t.started {
		t.started = true
		t.seen = make([]uint64, seqWindow/64)
		t.lowest, t.highest = s, s
		t.set(s)
		t.unique = 1
		return
	}
	switch {
	case s > t.highest:
		// Forget the numbers that slide out of the window, so their bits
		// can stand for the new ones.
		if s-t.highest >= seqWindow {
			clear(t.seen)
		} else {
			for x := t.highest + 1; x < s; x++ {
				t.clearBit(x)
			}
		}
		t.set(s)
		t.highest = s
		t.unique++
	case t.highest-s >= seqWindow:
		// Too old to check for a duplicate: count it as a late arrival.
		t.unique++
		t.reordered++
		t.lowest = min(t.lowest, s)
	case s < t.lowest:
		t.set(s)
		t.unique++
		t.reordered++
		t.lowest = s
	case t.isSet(s):
		t.dups++
	default:
		t.set(s)
		t.unique++
		t.reordered++
	}
}

// lost returns how many numbers between the lowest and highest seen never
// arrived.
func (t *seqTracker) lost() int64 {
	if !t.started {
		return 0
	}
	span := t.highest - t.lowest + 1
	if span > uint64(1<<62) || int64(span) < t.unique {
		return 0 // not gen's numbering
	}
	return int64(span) - t.unique
}

func (t *seqTracker) set(s uint64)        { t.seen[s%seqWindow/64] |= 1 << (s % 64) }
func (t *seqTracker) clearBit(s uint64)   { t.seen[s%seqWindow/64] &^= 1 << (s % 64) }
func (t *seqTracker) isSet(s uint64) bool { return t.seen[s%seqWindow/64]&(1<<(s%64)) != 0 }
