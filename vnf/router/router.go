// Package router is the router network function: it forwards IPv4 and
// IPv6 between its interfaces by its static routes, answers ping on its own
// addresses, and sends ICMP time-exceeded for packets whose TTL or hop limit
// runs out.
package router

import (
	"context"
	"fmt"

	"github.com/nfpipe/nfpipe/vnf"
)

// Doc is the router's help text.
const Doc = `router forwards IPv4 and IPv6 between its interfaces.

Every interface needs an address of each family it forwards (the stack
sends forwarded packets from it and answers ping on it). Connected subnets
are routed automatically; add static routes with --route and a default with
--gw. A packet that arrives with TTL (hop limit) 1 is not forwarded: the
router answers with ICMP time-exceeded. Frames addressed to another MAC are
dropped and counted (rx_other_host), as a real NIC does.

Examples:
  # forward-only pipe: one interface receives from stdin, one sends to stdout
  nfpipe vnf router --if eth0=stdin,ip=192.0.2.1/24 --if eth1=stdout,ip=198.51.100.1/24
  # two-way, between two unix sockets that hosts connect to
  nfpipe vnf router --if eth0=unix-listen:/tmp/a.sock,ip=192.0.2.1/24 \
                    --if eth1=unix-listen:/tmp/b.sock,ip=198.51.100.1/24`

// Kind returns the router kind for the registry.
func Kind() vnf.Kind {
	return vnf.Kind{
		Name:       "router",
		Summary:    "forwards IPv4/IPv6 between interfaces by static routes; TTL expiry answered with ICMP time-exceeded",
		Doc:        Doc,
		Forwarding: true,
		New:        New,
	}
}

type router struct{}

// New validates cfg for a router.
func New(cfg *vnf.Config) (vnf.Function, error) {
	if len(cfg.Run) > 0 || len(cfg.Serve) > 0 {
		return nil, fmt.Errorf("a router runs no applications (--run/--serve are for host)")
	}
	if len(cfg.Stack.NICs) < 1 {
		return nil, fmt.Errorf("a router needs interfaces: give --if NAME=ENDPOINT at least twice")
	}
	return router{}, nil
}

// Start warns about interfaces that cannot forward a family.
func (router) Start(_ context.Context, env *vnf.Env) error {
	for _, ifc := range env.Stack.Interfaces() {
		has4, has6 := false, false
		for _, p := range ifc.Addrs {
			has4 = has4 || p.Addr().Is4()
			has6 = has6 || p.Addr().Is6()
		}
		if !has4 && !has6 {
			env.Log.Warn("interface has no address: nothing can be forwarded out of it", "if", ifc.Name)
		}
	}
	return nil
}

// Run forwards until ctx ends; the forwarding itself happens in the stack.
func (router) Run(ctx context.Context, _ *vnf.Env) error {
	<-ctx.Done()
	return nil
}
