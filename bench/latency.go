package main

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// pingTime matches a reply line of the ping application and of iputils'
// ping alike: "64 bytes from ADDR: icmp_seq=N ttl=T time=0.380 ms".
var pingTime = regexp.MustCompile(`icmp_seq=\d+ ttl=\d+ time=([0-9.]+) ms`)

// pingSamples returns the round-trip times of a ping output, in µs.
func pingSamples(out string) []float64 {
	var s []float64
	for _, m := range pingTime.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			s = append(s, v*1000)
		}
	}
	return s
}

// quantile of a sample set (nearest rank).
func quantile(s []float64, q float64) float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(math.Ceil(q*float64(len(c)))) - 1
	return c[max(0, min(i, len(c)-1))]
}

func latencyRowName(hops int, q string) string {
	return fmt.Sprintf("nfpipe chain, %s, %s", hopsStr(hops), q)
}

// spreadRowName names the rows of the chains whose functions run with
// --cpus all: wherever the kernel puts them, as before packing existed.
func spreadRowName(hops int, q string) string {
	return fmt.Sprintf("nfpipe chain, %s, --cpus all (the kernel places every process), %s", hopsStr(hops), q)
}

// runLatency measures round trips (ICMP echo, one at a time every 2ms)
// through nfpipe chains of 0, 1 and 4 routers, and, for scale, between
// two kernels over a veth pair, through a kernel router, and through an
// nfpipe router on TAPs with kernels at both ends, and through chains of
// bare relays instead of routers (relay.go). Baselines: the kernel veth
// pair for the no-hop figures, the 0-hop chain for the chains with routers
// or relays, the kernel router for the nfpipe router on TAPs.
func runLatency(ctx context.Context, h *harness) error {
	count := 2000
	if h.o.quick {
		count = 300
	}
	const interval = 2 * time.Millisecond
	type res struct{ p50, p99 float64 }
	got := map[string]res{}
	add := func(key, name string, samples []float64, want int, baseKey, baseName string) {
		r := res{quantile(samples, 0.5), quantile(samples, 0.99)}
		got[key] = r
		for _, q := range []struct {
			name string
			v    float64
			b    func(res) float64
		}{{"p50", r.p50, func(x res) float64 { return x.p50 }}, {"p99", r.p99, func(x res) float64 { return x.p99 }}} {
			rw := row{Name: name + ", " + q.name, Value: q.v, Unit: "µs", Note: fmt.Sprintf("%d of %d replies", len(samples), want)}
			if b, ok := got[baseKey]; ok {
				rw.Baseline, rw.BaseVal = baseName+", "+q.name, q.b(b)
			}
			h.add(rw)
		}
		h.cdf(name, samples)
	}

	// The kernels first: they are the baselines.
	kernelCases := []struct{ variant, name, baseKey, baseName string }{
		{kvVeth, "kernel ↔ kernel, veth pair (no hop)", "", ""},
		{kvKernel, "kernel → Linux kernel router → kernel", kvVeth, "kernel ↔ kernel, veth pair (no hop)"},
		{kvNfpipeBare, "kernel → nfpipe router (TAP) → kernel", kvKernel, "kernel → Linux kernel router → kernel"},
	}
	for _, k := range kernelCases {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		samples, err := h.kernelPing(ctx, k.variant, count, interval)
		if err != nil {
			h.fail(k.name+", p50", "µs", err)
			continue
		}
		add(k.variant, k.name, samples, count, k.baseKey, k.baseName)
	}
	// The floor of a hop (two processes waking each other) and the
	// chains, in interleaved rounds: this machine's wake-up cost drifts by
	// tens of µs from one minute to the next, and a hop's cost is read as
	// the difference between two rows, so each row pools samples taken in
	// every round rather than in one stretch of its own.
	rounds := 3
	if h.o.quick {
		rounds = 1
	}
	per := count / rounds
	type series struct {
		key, name, baseKey, baseName string
		samples                      []float64
		err                          error
	}
	floor := &series{key: "pingpong", name: pingPongRowName}
	// Each chain twice: with the functions' default placement (--cpus
	// auto: packed on one CPU while lightly loaded, as under a ping) and
	// with --cpus all (the kernel's placement), for what packing changes.
	type chainCase struct {
		hops int
		cpus string
	}
	var cases []chainCase
	var chains []*series
	for _, cpus := range []string{"", "all"} {
		for _, hops := range []int{0, 1, 4} {
			c := &series{key: fmt.Sprintf("chain%d", hops), name: fmt.Sprintf("nfpipe chain, %s", hopsStr(hops)),
				baseKey: "chain0", baseName: trimComma(latencyRowName(0, ""))}
			if cpus != "" {
				c.key, c.name = "spread"+c.key, trimComma(spreadRowName(hops, ""))
				c.baseKey, c.baseName = "spreadchain0", trimComma(spreadRowName(0, ""))
			}
			if hops == 0 {
				c.baseKey, c.baseName = kvVeth, "kernel ↔ kernel, veth pair (no hop)"
			}
			cases = append(cases, chainCase{hops, cpus})
			chains = append(chains, c)
		}
	}
	// The same chain with relays where the routers would be: what passing
	// a packet through a process costs, without a router's work.
	const relayHops = 4
	var relays []*series
	for _, k := range relayKinds {
		relays = append(relays, &series{key: k.key, name: relayRowName(k, relayHops),
			baseKey: "chain0", baseName: trimComma(latencyRowName(0, ""))})
	}
	for round := 0; round < rounds && ctx.Err() == nil; round++ {
		if out, err := h.run(ctx, time.Duration(per)*interval+30*time.Second, h.self, "__pingpong", strconv.Itoa(per), interval.String()); err != nil {
			floor.err = err
		} else {
			floor.samples = append(floor.samples, pingSamples(out)...)
		}
		for i, cc := range cases {
			c := chains[i]
			if ctx.Err() != nil || c.err != nil {
				continue
			}
			t := topo{name: h.name("lat"), hops: cc.hops, serve: []string{"echo udp:7"}, cpus: cc.cpus}
			t.client = []string{fmt.Sprintf("ping %s count=%d interval=%v timeout=1s", t.serverAddr(), per, interval)}
			run, err := h.upChain(ctx, t)
			if err != nil {
				c.err = err
				continue
			}
			out, err := run.finish(time.Duration(per)*interval + 40*time.Second)
			if err != nil {
				c.err = err
				continue
			}
			got := pingSamples(out.text("client"))
			if len(got) == 0 {
				c.err = fmt.Errorf("no replies: %s", lastLines(out.text("client")+out.stderr, 3))
				continue
			}
			c.samples = append(c.samples, got...)
		}
		for i, k := range relayKinds {
			r := relays[i]
			if ctx.Err() != nil || r.err != nil {
				continue
			}
			got, err := h.relayChainPing(ctx, k, relayHops, per, interval)
			if err == nil && len(got) == 0 {
				err = fmt.Errorf("no replies")
			}
			if err != nil {
				r.err = err
				continue
			}
			r.samples = append(r.samples, got...)
		}
	}
	for _, sr := range append(append([]*series{floor}, chains...), relays...) {
		if sr.err != nil || len(sr.samples) == 0 {
			err := sr.err
			if err == nil {
				err = ctx.Err()
			}
			h.fail(sr.name+", p50", "µs", err)
			continue
		}
		add(sr.key, sr.name, sr.samples, per*rounds, sr.baseKey, sr.baseName)
	}
	h.note("4. Latency", fmt.Sprintf("%d ICMP echo requests %v apart, 56-byte payload; nfpipe chains use the host's ping application, "+
		"kernels iputils ping; quantiles by nearest rank. The floor, the chains and the relay chains run in %d interleaved rounds of %d requests each, "+
		"their samples pooled, so that the machine's drift weighs on every row alike. A relay chain is the 4-hop chain with a bare relay "+
		"in each router's place (a process that passes every message between its two sockets on, and nothing else; bench/relay.go, "+
		"bench/crelay): the part of a hop's cost that any process in the path pays, whatever it does. nfpipe functions run with "+
		"their default placement (--cpus auto: packed on the lowest CPU while lightly loaded, as under these pings; spread over every "+
		"CPU under load), and the relays are pinned to that CPU; the rows marked --cpus all run the same chains with placement left "+
		"to the kernel.", per*rounds, interval, rounds, per))
	return nil
}

// trimComma drops the ", " a row name helper leaves with no quantile.
func trimComma(s string) string {
	if len(s) >= 2 && s[len(s)-2:] == ", " {
		return s[:len(s)-2]
	}
	return s
}

// kernelPing builds a kernel topology and pings S from C with iputils.
func (h *harness) kernelPing(ctx context.Context, variant string, count int, interval time.Duration) ([]float64, error) {
	kt, err := h.newKernelTopo(ctx, variant, 1500)
	if err != nil {
		return nil, err
	}
	defer kt.close()
	// One ping first resolves the neighbours, so that the first sample
	// does not carry an ARP exchange.
	h.run(ctx, 5*time.Second, inNS(kt.c, "ping", "-c", "1", "-W", "1", kt.serverAddr())...)
	out, err := h.run(ctx, time.Duration(count)*interval+30*time.Second,
		inNS(kt.c, "ping", "-c", strconv.Itoa(count), "-i", fmt.Sprintf("%g", interval.Seconds()), "-W", "1", kt.serverAddr())...)
	samples := pingSamples(out)
	if len(samples) == 0 {
		if err == nil {
			err = fmt.Errorf("no replies")
		}
		return nil, err
	}
	return samples, nil
}
