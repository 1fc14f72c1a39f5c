package main

import (
	"context"
	"fmt"
	"time"
)

// udpPayload makes 60-byte frames (64 on the wire with the FCS): the
// minimum Ethernet frame, the classic small-packet forwarding test.
const udpPayload = 18

// runSmallPackets offers 64-byte UDP frames at several rates (gen rate=)
// through 1 and 4 routers and counts what the sink received. Nothing may
// be lost silently: every frame that did not arrive must show in some
// function's drop counters (--stats=json), and the note says how many did
// not. Each figure's baseline is the offered rate: the ratio is the
// delivered fraction.
func runSmallPackets(ctx context.Context, h *harness) error {
	secs := 3.0
	rates := []int{25_000, 50_000, 100_000, 200_000, 400_000, 0}
	if h.o.quick {
		secs = 1
		rates = []int{50_000, 200_000, 0}
	}
	// What gen and sink manage with no router between them: the most any
	// chain can be offered.
	type pcase struct{ hops, rate int }
	cases := []pcase{{0, 0}}
	for _, hops := range []int{1, 4} {
		for _, rate := range rates {
			cases = append(cases, pcase{hops, rate})
		}
	}
	for _, c := range cases {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		what := fmt.Sprintf("%d kpps", c.rate/1000)
		if c.rate == 0 {
			what = "as fast as gen can"
		}
		name := fmt.Sprintf("64-byte UDP, %s, offered %s", hopsStr(c.hops), what)
		res, err := h.udpRun(ctx, c.hops, c.rate, secs)
		if err != nil {
			h.fail(name, "kpps", err)
			continue
		}
		h.add(row{Name: name, Value: res.deliveredPPS / 1000, Unit: "kpps", Baseline: "offered (gen's achieved rate)", BaseVal: res.offeredPPS / 1000,
			Note: fmt.Sprintf("%d sent, %d received, %d lost: %d counted as drops, %d silent", res.sent, res.received, res.sent-res.received, res.counted, res.silent())})
		if c.hops == 0 {
			continue
		}
		h.plot("pps", hopsStr(c.hops), res.offeredPPS/1000, res.deliveredPPS/1000)
		h.mu.Lock()
		if h.pps == nil {
			h.pps = map[int]*ppsBest{}
		}
		b := h.pps[c.hops]
		if b == nil {
			b = &ppsBest{}
			h.pps[c.hops] = b
		}
		b.best = max(b.best, res.deliveredPPS)
		b.silent += res.silent()
		h.mu.Unlock()
	}
	runRawPPS(ctx, h)
	h.note("3. Small packets", fmt.Sprintf("gen udp size=%d (60-byte frames, 64 on the wire) for %gs at the rate in the row's name, then a ping that waits for the queues to drain; "+
		"offered = what gen managed to send (links push back on a full queue, so gen slows down rather than overrun them), "+
		"delivered = sink packets / gen's seconds; drops counted = every function's link drops, ip.outgoing_packet_errors and udp.receive_buffer_errors "+
		"(these may include an ARP or ping frame; silent = lost − counted, at least 0). "+
		"The raw rows take the hosts out: a bare process sends the same 60-byte frame into the router (sendmmsg, 32 at a time, as fast as the link takes them) "+
		"and another counts what comes out (recvmmsg), so the router's own rate is measured; the bare copy between the same two processes is its ceiling.", udpPayload, secs))
	return nil
}

// ppsBest is the best delivered rate at a hop count and the frames lost
// silently over all its runs.
type ppsBest struct {
	best   float64
	silent int64
}

// bestPPS returns the best delivered 64-byte rate through hops routers
// and the frames lost without being counted.
func (h *harness) bestPPS(hops int) (float64, int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.pps[hops]
	if b == nil {
		return 0, 0, false
	}
	return b.best, b.silent, true
}

// udpResult is one small-packet run.
type udpResult struct {
	sent, received, counted  int64
	offeredPPS, deliveredPPS float64
}

// silent is what was lost without a counter saying so. The counters may
// include a frame that was not a datagram (ARP, the drain ping), so more
// counted than lost is not a contradiction.
func (r udpResult) silent() int64 { return max(0, r.sent-r.received-r.counted) }

// udpRun runs gen → hops routers → sink once.
func (h *harness) udpRun(ctx context.Context, hops, rate int, secs float64) (udpResult, error) {
	t := topo{name: h.name("udp"), hops: hops, stats: true, serve: []string{"sink udp:9000"}}
	// The ping after gen waits behind the last datagrams in every queue:
	// when it is answered, what was sent has arrived or been dropped.
	t.client = []string{
		fmt.Sprintf("gen udp %s:9000 size=%d rate=%d duration=%gs", t.serverAddr(), udpPayload, rate, secs),
		fmt.Sprintf("ping %s count=3 interval=200ms", t.serverAddr()),
	}
	c, err := h.upChain(ctx, t)
	if err != nil {
		return udpResult{}, err
	}
	out, err := c.finish(time.Duration(secs*float64(time.Second)) + 40*time.Second)
	if err != nil {
		return udpResult{}, err
	}
	var res udpResult
	var gen struct {
		Packets int64   `json:"packets"`
		Seconds float64 `json:"seconds"`
		PPS     float64 `json:"pps"`
	}
	var sink struct {
		Packets int64 `json:"packets"`
	}
	for _, fn := range t.functions() {
		rep, err := out.stats(fn)
		if err != nil {
			return res, err
		}
		res.counted += int64(rep.countedDrops())
		switch fn {
		case "client":
			if err := rep.app("gen", &gen); err != nil {
				return res, err
			}
		case "server":
			if err := rep.app("sink", &sink); err != nil {
				return res, err
			}
		}
	}
	if gen.Seconds <= 0 {
		return res, fmt.Errorf("gen sent nothing: %s", lastLines(out.text("client"), 3))
	}
	res.sent, res.received = gen.Packets, sink.Packets
	res.offeredPPS = gen.PPS
	res.deliveredPPS = float64(sink.Packets) / gen.Seconds
	return res, nil
}
