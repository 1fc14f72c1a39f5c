// Package gateway is the gateway network function: it joins a chain to the
// host it runs on without root, the way slirp and gvisor-tap-vsock forward
// ports. Its stack terminates TCP and UDP and relays them to ordinary
// kernel sockets of the host: --forward takes connections on a host
// address and carries them to an address inside the chain; --expose takes
// connections inside the chain, on the gateway's own addresses, and
// carries them to a host service. Only what is exposed is reachable from
// inside: the --expose rules are the allow-list.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
)

// Summary is the gateway's line in `nfpipe vnf --list`.
const Summary = "relays host sockets to the chain and back without root: --forward host ports in, --expose host services to the chain"

// Doc is the gateway's help text.
const Doc = `gateway joins a chain to the host it runs on, without root.

Its own stack terminates TCP and UDP and relays them to ordinary sockets
of the host, like slirp's or gvisor-tap-vsock's port forwarding:

  --forward PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT]      (repeatable)
      listen on a host socket; carry each connection (UDP: each client
      address and port) to INSIDEADDR:PORT, dialed from the gateway's own
      addresses. Host port 0 takes any free port; the gateway prints the
      one it got ("listening on 127.0.0.1:PORT").
  --expose PROTO:INSIDEADDR:PORTS=HOSTADDR[:PORTS]     (repeatable)
      answer on INSIDEADDR, one of the gateway's addresses, and carry each
      connection to the host service. PORTS is a port or a range LO-HI
      (the host side has as many ports; the same ones when left out). A
      connection is accepted only once the host service has accepted it:
      when the host refuses, or does not answer within --dial-timeout, the
      inside client gets a reset, as from a closed port.

Nothing else is reachable: the --expose rules are the allow-list, and
other connections to the gateway's addresses are refused (TCP reset, ICMP
port unreachable) and counted as denied.

  --allow-host-any    host addresses are loopback only (127.0.0.0/8, ::1)
                      unless this is given: a lab tool must not open a port
                      to the network, or reach into it, by accident
  --dial-timeout D    how long to wait for the other side (default 10s)
  --udp-timeout D     a UDP session ends after D without a datagram either
                      way (default 60s)

Half-closes are passed on (a FIN is relayed as a FIN) and so are resets.
--stats shows per rule: connections (UDP sessions) accepted, active and
failed with the reason (refused, timeout, unreachable), bytes and
datagrams each way.

Example:
  nfpipe vnf gateway --if eth0=unix-listen:/tmp/gw.sock,ip=192.0.2.1/24 \
      --forward tcp:127.0.0.1:8080=192.0.2.10:80 --forward udp:127.0.0.1:5353=192.0.2.53:53 \
      --expose tcp:192.0.2.1:7000=127.0.0.1:7 --stats
  curl http://127.0.0.1:8080/       # reaches 192.0.2.10:80 in the chain`

// Kind returns the gateway kind for the registry.
func Kind() vnf.Kind {
	return vnf.Kind{
		Name:    "gateway",
		Summary: Summary,
		Doc:     Doc,
		Params: []vnf.Param{
			{Name: "forward", Usage: "carry a host port into the chain: PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT]", Repeatable: true},
			{Name: "expose", Usage: "let the chain reach a host service: PROTO:INSIDEADDR:PORTS=HOSTADDR[:PORTS]", Repeatable: true},
			{Name: "allow-host-any", Usage: "allow host addresses other than loopback", Bool: true},
			{Name: "dial-timeout", Usage: "how long to wait for the other side of a connection (default 10s)"},
			{Name: "udp-timeout", Usage: "end a UDP session after this long without a datagram (default 60s)"},
		},
		New: New,
	}
}

// Defaults.
const (
	// defaultDialTimeout bounds a connection attempt: long enough for a
	// chain of several hops, short enough that a client is not kept
	// waiting far beyond what it would wait for a dead server.
	defaultDialTimeout = 10 * time.Second
	// defaultUDPTimeout is between Linux's conntrack timeouts for UDP
	// (30s one-way, 120s streams): request/response protocols are done
	// long before, and a stream keeps its session alive.
	defaultUDPTimeout = 60 * time.Second
	// maxInFlight bounds exposed TCP connection attempts waiting for their
	// host side; SYNs beyond are dropped and retried by their clients.
	maxInFlight = 256
	// stopWait bounds how long a stopping gateway waits for its relays;
	// a handshake with a silent client is left to the stack's closing.
	stopWait = 3 * time.Second
	// udpWriteTimeout bounds one datagram's write into the stack (see
	// GVISOR-NOTES: a UDP write can block forever on a full link).
	udpWriteTimeout = time.Second
)

// entry is a rule with its counters and, for a forward, its host socket.
type entry struct {
	*rule
	c          counters
	listen, to string
	tcpLn      *net.TCPListener
	udpLn      *net.UDPConn
}

type gateway struct {
	forwards, exposes       []*entry
	dialTimeout, udpTimeout time.Duration
	deniedTCP, deniedUDP    atomic.Uint64

	ctx context.Context
	stk *netstack.Stack
	log *slog.Logger

	mu      sync.Mutex
	closing bool
	open    map[io.Closer]struct{}
	wg      sync.WaitGroup
}

var (
	_ vnf.Function = (*gateway)(nil)
	_ vnf.Starter  = (*gateway)(nil)
	_ vnf.Reporter = (*gateway)(nil)
)

// New checks the gateway's rules against its interfaces. It binds
// nothing: chain checks call it too.
func New(cfg *vnf.Config) (vnf.Function, error) {
	if len(cfg.Run) > 0 || len(cfg.Serve) > 0 {
		return nil, errors.New("a gateway runs no applications (--run/--serve are for host)")
	}
	if len(cfg.Stack.NICs) == 0 {
		return nil, errors.New("a gateway needs an interface into the chain: give --if NAME=ENDPOINT,ip=ADDR/LEN")
	}
	g := &gateway{dialTimeout: defaultDialTimeout, udpTimeout: defaultUDPTimeout, open: map[io.Closer]struct{}{}}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"dial-timeout", &g.dialTimeout}, {"udp-timeout", &g.udpTimeout}} {
		if s := cfg.Param(d.name); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("--%s %q: want a positive duration, e.g. 10s", d.name, s)
			}
			*d.to = v
		}
	}
	anyHost := cfg.Param("allow-host-any") == "true"
	var own []netip.Addr
	for _, n := range cfg.Stack.NICs {
		for _, p := range n.Addrs {
			own = append(own, p.Addr().Unmap())
		}
	}
	var all []*entry
	for _, s := range cfg.Params["forward"] {
		r, err := parseForward(s, anyHost)
		if err != nil {
			return nil, fmt.Errorf("--forward %q: %w", s, err)
		}
		if !hasFamily(own, r.inside) {
			return nil, fmt.Errorf("--forward %q: the gateway has no %s address to reach %s from: add one with ip= on an --if", s, family(r.inside), r.inside)
		}
		e := &entry{rule: r, to: r.insideDst().String()}
		g.forwards = append(g.forwards, e)
		all = append(all, e)
	}
	for _, s := range cfg.Params["expose"] {
		r, err := parseExpose(s, anyHost)
		if err != nil {
			return nil, fmt.Errorf("--expose %q: %w", s, err)
		}
		if !containsAddr(own, r.inside) {
			return nil, fmt.Errorf("--expose %q: %s is not an address of this gateway (have: %s): add it with ip= on an --if", s, r.inside, addrList(own))
		}
		e := &entry{rule: r, listen: portsString(r.inside, r.insideLo, r.insideHi), to: portsString(r.host, r.hostLo, r.hostHi)}
		g.exposes = append(g.exposes, e)
		all = append(all, e)
	}
	if len(all) == 0 {
		return nil, errors.New("nothing to relay: give --forward PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT] or --expose PROTO:INSIDEADDR:PORTS=HOSTADDR[:PORTS]")
	}
	for i, a := range all {
		for _, b := range all[:i] {
			if overlap(a.rule, b.rule) {
				return nil, fmt.Errorf("--%s %q: overlaps --%s %q", a.flag, a.text, b.flag, b.text)
			}
		}
	}
	return g, nil
}

func hasFamily(own []netip.Addr, a netip.Addr) bool {
	for _, o := range own {
		if o.Is4() == a.Is4() {
			return true
		}
	}
	return false
}

func containsAddr(own []netip.Addr, a netip.Addr) bool {
	for _, o := range own {
		if o == a {
			return true
		}
	}
	return false
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func addrList(as []netip.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// portsString writes ADDR:PORT or ADDR:LO-HI, bracketing IPv6.
func portsString(a netip.Addr, lo, hi uint16) string {
	s := netip.AddrPortFrom(a, lo).String()
	if hi != lo {
		s += fmt.Sprintf("-%d", hi)
	}
	return s
}

// Start binds the host sockets of the forwards and takes over the stack's
// unclaimed TCP and UDP ports for the exposes, before any frame flows. A
// host address in use fails the function here, naming its --forward.
func (g *gateway) Start(ctx context.Context, env *vnf.Env) error {
	g.ctx, g.stk, g.log = ctx, env.Stack, env.Log
	for _, e := range g.forwards {
		if err := g.bind(e); err != nil {
			g.closeAll()
			return fmt.Errorf("--forward %q: %w", e.text, err)
		}
	}
	for _, e := range append(append([]*entry{}, g.forwards...), g.exposes...) {
		fmt.Fprintf(env.Out, "%s: listening on %s\n", e.spec(), e.listen)
	}
	g.stk.HandleTCP(maxInFlight, g.matchTCP, g.exposeTCP)
	g.stk.HandleUDP(g.matchUDP, g.exposeUDP)
	return nil
}

func (g *gateway) bind(e *entry) error {
	addr := netip.AddrPortFrom(e.host, e.hostLo)
	if e.proto == "tcp" {
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			return err
		}
		e.tcpLn, e.listen = l, l.Addr().String()
		g.track(l)
		return nil
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	e.udpLn, e.listen = c, c.LocalAddr().String()
	g.track(c)
	return nil
}

// Run relays until ctx ends, then closes every socket and connection and
// prints what each rule did.
func (g *gateway) Run(ctx context.Context, env *vnf.Env) error {
	for _, e := range g.forwards {
		if e.proto == "tcp" {
			g.spawn(func() { g.acceptTCP(e) })
		} else {
			g.spawn(func() { g.forwardUDP(e) })
		}
	}
	<-ctx.Done()
	g.closeAll()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopWait):
		g.log.Warn("relays still running at stop; the stack's closing ends them", "waited", stopWait)
	}
	for _, e := range append(append([]*entry{}, g.forwards...), g.exposes...) {
		fmt.Fprintln(env.Out, summary(e.spec(), e.proto, e.c.snapshot()))
	}
	if t, u := g.deniedTCP.Load(), g.deniedUDP.Load(); t+u > 0 {
		fmt.Fprintf(env.Out, "denied (nothing exposed there): %d TCP connection attempts, %d UDP datagrams\n", t, u)
	}
	return nil
}

// Report implements vnf.Reporter: one entry per rule, as --stats shows
// a host's applications, then the denied attempts.
func (g *gateway) Report() any {
	var out []ReportItem
	for _, e := range append(append([]*entry{}, g.forwards...), g.exposes...) {
		st := e.c.snapshot()
		st.Listen, st.To = e.listen, e.to
		out = append(out, ReportItem{Spec: e.spec(), Stats: st})
	}
	out = append(out, ReportItem{Spec: "denied", Stats: Denied{TCP: g.deniedTCP.Load(), UDP: g.deniedUDP.Load()}})
	return out
}

// ReportItem is one entry of Report: a rule ("forward SPEC", "expose
// SPEC") with its Stats, or "denied" with Denied.
type ReportItem struct {
	Spec  string `json:"spec"`
	Stats any    `json:"stats"`
}

// Denied counts what reached the gateway's addresses on ports no --expose
// covers: TCP connection attempts (answered with a reset) and UDP
// datagrams (answered with ICMP port unreachable).
type Denied struct {
	TCP uint64 `json:"tcp"`
	UDP uint64 `json:"udp"`
}

// track registers something to close when the gateway stops; false (and
// nothing registered) when it is already stopping.
func (g *gateway) track(c io.Closer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.open[c] = struct{}{}
	return true
}

func (g *gateway) untrack(c io.Closer) {
	g.mu.Lock()
	delete(g.open, c)
	g.mu.Unlock()
}

// enter counts a goroutine the stop waits for; false when stopping.
func (g *gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

// spawn runs fn in a goroutine the stop waits for.
func (g *gateway) spawn(fn func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// closeAll stops taking new work and closes everything open.
func (g *gateway) closeAll() {
	g.mu.Lock()
	g.closing = true
	open := g.open
	g.open = map[io.Closer]struct{}{}
	g.mu.Unlock()
	for c := range open {
		c.Close()
	}
}

// exposed returns the expose rule covering dst, or nil.
func (g *gateway) exposed(proto string, dst netip.AddrPort) *entry {
	for _, e := range g.exposes {
		if e.exposes(proto, dst) {
			return e
		}
	}
	return nil
}
