// Package chain owns nfpipe's chain spec: a YAML file that describes
// network functions, their interfaces and the links between them, decoded
// strictly (every error names its file:line:col and the path of the field,
// all at once), checked as a whole (link ends, addresses, MTUs, gateways,
// rules, kind parameters), and resolved into a Plan: for each function the
// exact `nfpipe vnf KIND ...` command line and the descriptors to hand it,
// for each link the objects to create, and the chain's runtime directory.
// The runner (`nfpipe chain up`) starts and supervises processes from the
// Plan alone; this package starts nothing.
//
// The package also draws a chain's topology (WriteGraph: ASCII, Graphviz
// dot, Mermaid). The spec format is documented in docs/chain.md.
//
// Decoding needs the rest of nfpipe through Options: the kind registry,
// and the flags of `nfpipe vnf KIND`, so that a kind's parameters (a
// host's run, serve and expect) are checked by the kind's own code and a
// generated command line is parsed by the real flags before anything
// runs.
package chain
