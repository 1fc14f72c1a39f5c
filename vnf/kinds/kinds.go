// Package kinds wires every network-function kind into one registry, in
// one place, so that adding a kind is one line here.
package kinds

import (
	"github.com/nfpipe/nfpipe/vnf"
	"github.com/nfpipe/nfpipe/vnf/gateway"
	"github.com/nfpipe/nfpipe/vnf/host"
	"github.com/nfpipe/nfpipe/vnf/preset"
	"github.com/nfpipe/nfpipe/vnf/router"
)

// Registry returns a registry holding every kind nfpipe ships.
func Registry() *vnf.Registry {
	r := vnf.NewRegistry()
	for _, k := range []vnf.Kind{router.Kind(), host.Kind(), preset.NAT(), preset.Firewall(), gateway.Kind()} {
		if err := r.Register(k); err != nil {
			panic(err) // a duplicate kind is a programming error caught by the tests
		}
	}
	return r
}
