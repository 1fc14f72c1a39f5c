package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// topo describes a linear chain the harness generates: a client host,
// hops routers and a server host, every link of the same transport and
// MTU.
//
// Addresses (only the documentation ranges): the client's link is
// 192.0.2.0/24 (client .2, first router .1), the server's 198.51.100.0/24
// (last router .1, server .2), and the links between routers are /30s of
// 203.0.113.0/24, which leaves room for 64 of them. With no router the
// client (192.0.2.2) and the server (192.0.2.3) share one link.
type topo struct {
	name      string
	hops      int
	mtu       int    // 0: the default 1500
	transport string // "" or seqpacket (default), stream, pipe
	// client is what the client host runs (run: lines); none makes the
	// client a server too, so that the chain runs until stopped.
	client []string
	// clientServe is what the client serves when it runs nothing.
	clientServe []string
	serve       []string // what the server host serves
	stats       bool     // every function prints --stats=json on exit
	gsoOff      bool     // every link says gso: off
	masquerade  bool     // the last router masquerades what leaves by eth1
	cpus        string   // every function's cpus setting; "" leaves the default (auto)
}

// maxHops is how many routers a generated chain can have.
const maxHops = 65

// serverAddr is where the client reaches the server.
func (t topo) serverAddr() string {
	if t.hops == 0 {
		return "192.0.2.3"
	}
	return "198.51.100.2"
}

// spec renders the chain spec (YAML).
func (t topo) spec() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ndescription: %s\n", t.name, strconv.Quote(fmt.Sprintf("bench: %d router hops, %s links, MTU %d", t.hops, t.transportName(), t.mtuOr1500())))
	b.WriteString("functions:\n")
	iface := func(name, addr string) {
		if t.mtu == 0 || t.mtu == 1500 {
			fmt.Fprintf(&b, "      %s: %s\n", name, addr)
		} else {
			fmt.Fprintf(&b, "      %s: {addresses: [%s], mtu: %d}\n", name, addr, t.mtu)
		}
	}
	list := func(key string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "    %s:\n", key)
		for _, it := range items {
			fmt.Fprintf(&b, "      - %s\n", strconv.Quote(it))
		}
	}
	stats := func() {
		if t.cpus != "" {
			fmt.Fprintf(&b, "    cpus: %s\n", strconv.Quote(t.cpus))
		}
		if t.stats {
			b.WriteString("    stats: json\n")
		}
	}
	// The client.
	b.WriteString("  client:\n    kind: host\n    interfaces:\n")
	iface("eth0", "192.0.2.2/24")
	if t.hops > 0 {
		b.WriteString("    gateways: [192.0.2.1]\n")
	}
	if len(t.client) > 0 {
		list("run", t.client)
	} else {
		list("serve", t.clientServe)
	}
	stats()
	// The routers.
	mid := func(k int) (left, right string) { // the /30 between router k and k+1
		return fmt.Sprintf("203.0.113.%d", 4*(k-1)+1), fmt.Sprintf("203.0.113.%d", 4*(k-1)+2)
	}
	for k := 1; k <= t.hops; k++ {
		fmt.Fprintf(&b, "  r%d:\n    kind: router\n    interfaces:\n", k)
		if k == 1 {
			iface("eth0", "192.0.2.1/24")
		} else {
			_, r := mid(k - 1)
			iface("eth0", r+"/30")
		}
		if k == t.hops {
			iface("eth1", "198.51.100.1/24")
		} else {
			l, _ := mid(k)
			iface("eth1", l+"/30")
		}
		var routes []string
		if k < t.hops {
			_, r := mid(k)
			routes = append(routes, "198.51.100.0/24 via "+r)
		}
		if k > 1 {
			l, _ := mid(k - 1)
			routes = append(routes, "192.0.2.0/24 via "+l)
		}
		list("routes", routes)
		if t.masquerade && k == t.hops {
			list("rules", []string{"-t nat -A POSTROUTING -o eth1 -j MASQUERADE"})
		}
		stats()
	}
	// The server.
	b.WriteString("  server:\n    kind: host\n    interfaces:\n")
	if t.hops == 0 {
		iface("eth0", "192.0.2.3/24")
	} else {
		iface("eth0", "198.51.100.2/24")
		b.WriteString("    gateways: [198.51.100.1]\n")
	}
	list("serve", t.serve)
	stats()
	// The links, in order along the chain.
	names := []string{"client"}
	for k := 1; k <= t.hops; k++ {
		names = append(names, fmt.Sprintf("r%d", k))
	}
	names = append(names, "server")
	b.WriteString("links:\n")
	for i := 0; i+1 < len(names); i++ {
		a, z := names[i]+".eth1", names[i+1]+".eth0"
		if i == 0 {
			a = "client.eth0"
		}
		switch {
		case t.gsoOff:
			fmt.Fprintf(&b, "  - ends: [%s, %s]\n    transport: %s\n    gso: off\n", a, z, t.transportName())
		case t.transport == "" || t.transport == "seqpacket":
			fmt.Fprintf(&b, "  - [%s, %s]\n", a, z)
		default:
			fmt.Fprintf(&b, "  - ends: [%s, %s]\n    transport: %s\n", a, z, t.transport)
		}
	}
	return b.String()
}

func (t topo) transportName() string {
	if t.transport == "" {
		return "seqpacket"
	}
	return t.transport
}

func (t topo) mtuOr1500() int {
	if t.mtu == 0 {
		return 1500
	}
	return t.mtu
}

// functions lists the chain's function names.
func (t topo) functions() []string {
	n := []string{"client"}
	for k := 1; k <= t.hops; k++ {
		n = append(n, fmt.Sprintf("r%d", k))
	}
	return append(n, "server")
}

// chainRun is a running (or finished) `nfpipe chain up`.
type chainRun struct {
	h       *harness
	t       topo
	p       *proc
	runtime string // the chain's runtime directory
	start   time.Time
	ready   time.Duration // from start to the "ready" line; 0 until then
}

// upChain writes the spec and starts `nfpipe chain up` on it.
func (h *harness) upChain(ctx context.Context, t topo) (*chainRun, error) {
	dir := filepath.Join(h.work, t.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "chain.yaml")
	spec := t.spec()
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		return nil, err
	}
	h.saveRaw(t.name+".yaml", spec)
	rt := filepath.Join(h.work, "rt")
	c := &chainRun{h: h, t: t, runtime: filepath.Join(rt, t.name), start: time.Now()}
	p, err := h.start(ctx, "chain "+t.name, []string{h.nfpipe, "chain", "up", "--grace", "3s", path},
		procOpts{env: []string{"NFPIPE_RUNTIME_DIR=" + rt}})
	if err != nil {
		return nil, err
	}
	c.p = p
	return c, nil
}

// waitReady waits for the runner's "ready" line.
func (c *chainRun) waitReady(d time.Duration) error {
	err := c.p.waitFor("ready line from chain "+c.t.name, d, func() bool {
		return strings.Contains(c.p.stderr.String(), "chain "+c.t.name+" ready:")
	})
	if err != nil {
		return err
	}
	c.ready = time.Since(c.start)
	return nil
}

// pids returns every function's pid, from the runtime directory.
func (c *chainRun) pids() map[string]int {
	out := map[string]int{}
	for _, fn := range c.t.functions() {
		b, err := os.ReadFile(filepath.Join(c.runtime, "fn", fn+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out[fn] = pid
		}
	}
	return out
}

// finish waits for a chain with clients to end by itself (at most d),
// stopping it on timeout, and returns every function's output.
func (c *chainRun) finish(d time.Duration) (*chainOutput, error) {
	_, err := c.p.wait(d)
	c.h.saveRaw(c.t.name+".out", c.p.stdout.String()+"\n--- stderr ---\n"+c.p.stderr.String())
	o := parseChainOutput(c.p.stdout.String())
	o.stderr = c.p.stderr.String()
	return o, err
}

// down stops a chain (as Ctrl-C does) and returns its output.
func (c *chainRun) down() *chainOutput {
	c.p.stop(syscall.SIGINT, 8*time.Second)
	c.h.saveRaw(c.t.name+".out", c.p.stdout.String()+"\n--- stderr ---\n"+c.p.stderr.String())
	o := parseChainOutput(c.p.stdout.String())
	o.stderr = c.p.stderr.String()
	return o
}

// chainOutput is a chain's merged output split by function.
type chainOutput struct {
	lines  map[string][]string // by function, prefix removed
	stderr string              // the runner's own messages
}

// parseChainOutput splits "name | text" lines (the runner's prefix pads
// the name) by function.
func parseChainOutput(s string) *chainOutput {
	o := &chainOutput{lines: map[string][]string{}}
	for _, l := range strings.Split(s, "\n") {
		name, text, ok := strings.Cut(l, " | ")
		if !ok {
			if n, ok := strings.CutSuffix(l, " |"); ok { // an empty line
				o.lines[strings.TrimSpace(n)] = append(o.lines[strings.TrimSpace(n)], "")
			}
			continue
		}
		name = strings.TrimSpace(name)
		o.lines[name] = append(o.lines[name], text)
	}
	return o
}

// text returns a function's output.
func (o *chainOutput) text(fn string) string { return strings.Join(o.lines[fn], "\n") }

// stats decodes a function's --stats=json report.
func (o *chainOutput) stats(fn string) (*statsReport, error) {
	ls := o.lines[fn]
	first := -1
	for i, l := range ls {
		if l == "{" {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("%s printed no --stats=json report (%s)", fn, lastLines(o.text(fn)+"\n"+o.stderr, 3))
	}
	// The function's log lines share its prefix and can land inside the
	// report; the report's own lines are indented or braces.
	body := []string{"{"}
	for i := first + 1; i < len(ls); i++ {
		if strings.HasPrefix(ls[i], "time=") {
			continue
		}
		body = append(body, ls[i])
		if ls[i] == "}" {
			var r statsReport
			if err := json.Unmarshal([]byte(strings.Join(body, "\n")), &r); err != nil {
				return nil, fmt.Errorf("%s: --stats=json: %w", fn, err)
			}
			return &r, nil
		}
	}
	return nil, fmt.Errorf("%s: unterminated --stats=json report", fn)
}

// statsReport is the part of --stats=json the harness reads.
type statsReport struct {
	Name  string `json:"name"`
	Stack struct {
		Interfaces []struct {
			Name     string            `json:"name"`
			Counters map[string]uint64 `json:"counters"`
			Drops    uint64            `json:"drops"`
		} `json:"interfaces"`
		Protocols map[string]float64 `json:"protocols"`
	} `json:"stack"`
	Apps []struct {
		Spec  string          `json:"spec"`
		Stats json.RawMessage `json:"stats"`
	} `json:"apps"`
}

// app decodes the stats of the first application whose spec starts with
// prefix.
func (r *statsReport) app(prefix string, v any) error {
	for _, a := range r.Apps {
		if strings.HasPrefix(a.Spec, prefix) {
			return json.Unmarshal(a.Stats, v)
		}
	}
	return fmt.Errorf("%s: no application %q in the report", r.Name, prefix)
}

// countedDrops is every packet the function dropped and counted: the
// links' drops (queue drops, no path, errors), packets the stack could
// not hand to a link, and datagrams a full socket buffer refused.
func (r *statsReport) countedDrops() uint64 {
	var n uint64
	for _, ifc := range r.Stack.Interfaces {
		n += ifc.Drops
	}
	for _, k := range []string{"ip.outgoing_packet_errors", "udp.receive_buffer_errors"} {
		n += uint64(r.Stack.Protocols[k])
	}
	return n
}
