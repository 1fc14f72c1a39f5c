// Package host is the host network function: an endpoint whose applications
// (ping, echo, gen, sink, http, bulk) run on its own user-space stack.
package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/nfpipe/nfpipe/internal/syncwriter"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/hostapp"
)

// Doc is the host's help text.
var Doc = `host is an endpoint: applications run on its own stack.

--serve starts a server that runs until the function stops; --run runs a
client, one after the other in the order given. A host with clients and no
servers exits when its clients are done; its exit status is 1 if any client
failed (ping loss, a wrong echo, an HTTP status other than expected) or if a
sink did not receive exactly --expect packets (TCP: bytes).

Applications:
` + hostapp.Usage() + `
Examples:
  nfpipe vnf host --if eth0=unix-listen:/tmp/l.sock --ip 192.0.2.2/24 --serve 'echo tcp:7' --serve 'http :80' --serve bulk
  nfpipe vnf host --if eth0=unix:/tmp/l.sock --ip 192.0.2.1/24 --run 'ping 192.0.2.2 count=5' --run 'bulk 192.0.2.2 seconds=3'
  nfpipe vnf host --if eth0=stdin --ip 198.51.100.7/24 --serve 'sink udp:9000' --expect 1000`

// Kind returns the host kind for the registry.
func Kind() vnf.Kind {
	return vnf.Kind{
		Name:    "host",
		Summary: "an endpoint running ping, echo, gen, sink, http, bulk (TCP throughput) and conns (many connections at once) on its own stack",
		Doc:     Doc,
		New:     New,
	}
}

type host struct {
	run, serve []hostapp.App
	specs      map[hostapp.App]string

	envOnce sync.Once
	aenv    *hostapp.Env
	served  chan error // one result per server
	readyMu sync.Mutex
	bound   int
	boundCh chan struct{}
}

// New parses the applications in cfg.
func New(cfg *vnf.Config) (vnf.Function, error) {
	h := &host{specs: map[hostapp.App]string{}, boundCh: make(chan struct{}, 64)}
	for _, s := range cfg.Serve {
		a, err := hostapp.ParseServe(s)
		if err != nil {
			return nil, fmt.Errorf("--serve: %w", err)
		}
		h.serve = append(h.serve, a)
		h.specs[a] = s
	}
	for _, s := range cfg.Run {
		a, err := hostapp.ParseRun(s)
		if err != nil {
			return nil, fmt.Errorf("--run: %w", err)
		}
		h.run = append(h.run, a)
		h.specs[a] = s
	}
	if cfg.Expect >= 0 {
		sinks := 0
		for _, a := range h.serve {
			if a.Name() == "sink" {
				sinks++
			}
		}
		if sinks == 0 {
			return nil, fmt.Errorf("--expect needs a sink: add --serve 'sink udp:PORT'")
		}
	}
	return h, nil
}

// appEnv returns the one environment all applications share, so that their
// report lines never interleave.
func (h *host) appEnv(env *vnf.Env) *hostapp.Env {
	h.envOnce.Do(func() {
		h.aenv = &hostapp.Env{Net: &stackNet{s: env.Stack, h: h}, Out: syncwriter.New(env.Out), Log: env.Log, Expect: env.Config.Expect, Host: env.Config.Stack.Name}
	})
	return h.aenv
}

// Start starts the servers and waits until each has bound its socket, so
// that no packet arrives before its listener exists.
func (h *host) Start(ctx context.Context, env *vnf.Env) error {
	aenv := h.appEnv(env)
	h.served = make(chan error, len(h.serve))
	for _, a := range h.serve {
		go func() {
			err := a.Run(ctx, aenv)
			if err != nil {
				err = fmt.Errorf("%s: %w", h.specs[a], err)
			}
			h.served <- err
		}()
	}
	deadline := time.After(5 * time.Second)
	for bound := 0; bound < len(h.serve); {
		select {
		case <-h.boundCh:
			bound++
		case err := <-h.served:
			if err == nil {
				err = errors.New("server stopped at once")
			}
			return err
		case <-deadline:
			return fmt.Errorf("servers did not start within 5s")
		}
	}
	return nil
}

// Run runs the clients in order, then serves until ctx ends.
func (h *host) Run(ctx context.Context, env *vnf.Env) error {
	aenv := h.appEnv(env)
	var errs []error
	for _, a := range h.run {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: not run: function stopping", h.specs[a]))
			continue
		}
		if err := a.Run(ctx, aenv); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.specs[a], err))
		}
	}
	if len(h.serve) == 0 && len(h.run) > 0 {
		return errors.Join(errs...)
	}
	<-ctx.Done()
	for range h.serve {
		if err := <-h.served; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Report implements vnf.Reporter.
func (h *host) Report() any {
	type app struct {
		Spec  string `json:"spec"`
		Stats any    `json:"stats"`
	}
	var out []app
	for _, a := range append(append([]hostapp.App{}, h.serve...), h.run...) {
		out = append(out, app{Spec: h.specs[a], Stats: a.Stats()})
	}
	return out
}

func (h *host) markBound() {
	select {
	case h.boundCh <- struct{}{}:
	default:
	}
}

// stackNet adapts the host's stack to hostapp.Net, and tells Start when a
// server has bound.
type stackNet struct {
	s *netstack.Stack
	h *host
}

func (n *stackNet) DialTCP(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
	return n.s.DialTCP(ctx, a)
}

func (n *stackNet) ListenTCP(a netip.AddrPort) (net.Listener, error) {
	l, err := n.s.ListenTCP(a)
	if err == nil {
		n.h.markBound()
	}
	return l, err
}

func (n *stackNet) DialUDP(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
	return n.s.DialUDP(ctx, a)
}

func (n *stackNet) ListenUDP(a netip.AddrPort) (net.PacketConn, error) {
	c, err := n.s.ListenUDP(a)
	if err == nil {
		n.h.markBound()
	}
	return c, err
}

func (n *stackNet) NewPinger(v6 bool) (hostapp.Pinger, error) {
	p, err := n.s.NewPinger(v6)
	if err != nil {
		return nil, err
	}
	return pinger{p}, nil
}

type pinger struct{ p *netstack.Pinger }

func (p pinger) Send(dst netip.Addr, id, seq uint16, ttl uint8, payload []byte) error {
	return p.p.Send(dst, id, seq, ttl, payload)
}

func (p pinger) Recv(deadline time.Time) (hostapp.PingReply, error) {
	r, err := p.p.Recv(deadline)
	if err != nil {
		return hostapp.PingReply{}, err
	}
	kinds := map[netstack.ReplyKind]hostapp.ReplyKind{
		netstack.EchoReply: hostapp.EchoReply, netstack.TimeExceeded: hostapp.TimeExceeded,
		netstack.Unreachable: hostapp.Unreachable, netstack.OtherICMP: hostapp.OtherICMP,
	}
	return hostapp.PingReply{From: r.From, Kind: kinds[r.Kind], Code: r.Code, ID: r.ID, Seq: r.Seq, TTL: r.TTL, Size: r.Size}, nil
}

func (p pinger) Close() error { return p.p.Close() }
