package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nfpipe/nfpipe/netstack"
)

// TAPHost is the kernel side of a tap link: what the runner configures on
// the TAP device in its network namespace, and the host nftables rules it
// installs for it.
type TAPHost struct {
	// Addrs are the device's addresses (IPv6 ones without duplicate
	// address detection, so that they work at once).
	Addrs []netip.Prefix
	// Routes go through the device: Dst via Gateway, or on-link.
	Routes []HostRoute
	// Masquerade has the namespace's kernel masquerade what arrives from
	// the TAP and leaves by another interface (the chain's uplink to the
	// host's network).
	Masquerade bool
	// Forward has the kernel forward traffic from and to the TAP: an
	// accept rule each way in the chain's nftables table, and IP
	// forwarding turned on in a namespace the runner creates.
	Forward bool

	node   *yaml.Node
	path   string
	addrAt []item
	viaAt  []item
}

// HostRoute is a route in a tap link's namespace through its TAP device.
type HostRoute struct {
	Dst netip.Prefix `json:"dst"`
	// Via is the gateway; invalid (omitted) for an on-link route.
	Via netip.Addr `json:"via,omitzero"`
}

// String returns the route as `ip route` takes it.
func (r HostRoute) String() string {
	s := r.Dst.String()
	if r.Dst.Bits() == 0 {
		s = "default"
		if r.Dst.Addr().Is6() && !r.Via.IsValid() {
			s = "default6"
		}
	}
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	return s
}

// parseHostRoute parses "DST [via GATEWAY]": DST is a prefix, or default
// (IPv4, or IPv6 with an IPv6 gateway), default4 or default6.
func parseHostRoute(s string) (HostRoute, error) {
	var r HostRoute
	f := strings.Fields(s)
	if len(f) == 0 {
		return r, fmt.Errorf("empty route")
	}
	dst, err := netstack.RouteDst(f[0])
	if err != nil {
		return r, fmt.Errorf("route %q: %w", s, err)
	}
	r.Dst = dst
	switch {
	case len(f) == 1:
	case len(f) == 3 && f[1] == "via":
		gw, err := netip.ParseAddr(f[2])
		if err != nil || gw.Zone() != "" {
			return r, fmt.Errorf("route %q: bad gateway %q", s, f[2])
		}
		if f[0] == "default" && gw.Is6() {
			r.Dst = netip.MustParsePrefix("::/0")
		}
		if gw.Is6() != r.Dst.Addr().Is6() {
			return r, fmt.Errorf("route %q: gateway %s is not of the destination's family", s, gw)
		}
		r.Via = gw
	case len(f) >= 2 && f[1] == "dev":
		return r, fmt.Errorf("route %q: a host route goes through the link's TAP device: leave out dev", s)
	default:
		return r, fmt.Errorf("route %q: want DST or DST via GATEWAY, such as default via 192.0.2.1", s)
	}
	return r, nil
}

// TAPDevice is the name of the TAP device the runner creates for a tap
// link that does not name one: "nf" and ten hex digits of a hash of the
// chain's and the link's names. It is stable, fits the 15 bytes Linux
// allows, and differs between chains, so that two chains never take the
// same device.
func TAPDevice(chain, link string) string {
	h := sha256.Sum256([]byte(chain + "\x00" + link))
	return "nf" + hex.EncodeToString(h[:5])
}

// NFTablesTable is the name of the chain's nftables table (family inet) in
// each namespace where it needs host rules.
func NFTablesTable(chain string) string { return "nfpipe-" + chain }

var netnsNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

const netnsNameRule = "letters, digits, '.', '-' and '_', at most 64, starting with a letter or digit"

var (
	netnsKeys   = []string{"name", "create"}
	tapHostKeys = []string{"addresses", "routes", "masquerade", "forward"}
)

// netns decodes a tap link's netns: a name (the namespace must exist), or
// {name: NAME, create: true} (the runner creates it).
func (d *decoder) netns(l *Link, n *yaml.Node, path string) {
	name, nameNode := "", n
	if n.Kind == yaml.MappingNode {
		m := d.fields(n, path, netnsKeys, nil)
		p, ok := m["name"]
		if !ok {
			d.errf(n, path, "a netns needs a name: {name: NAME, create: true}")
			return
		}
		if c, ok := m["create"]; ok {
			l.NetnsCreate, _ = d.boolean(c.val, path+".create")
		}
		name, _ = d.scalar(p.val, path+".name", "a network namespace name")
		nameNode, path = p.val, path+".name"
	} else {
		name, _ = d.scalar(n, path, "a network namespace name, or {name: NAME, create: true}")
	}
	if name == "" {
		return
	}
	if !netnsNameRE.MatchString(name) {
		d.errf(nameNode, path, "bad network namespace name %q: %s", name, netnsNameRule)
		return
	}
	l.Netns = name
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	v, ok := d.scalar(n, path, "true or false")
	if !ok {
		return false, false
	}
	switch v {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	d.errf(n, path, "want true or false, got %q", v)
	return false, false
}

// tapHost decodes a tap link's host: mapping.
func (d *decoder) tapHost(n *yaml.Node, path string) *TAPHost {
	if !d.mapping(n, path, "the TAP's kernel side: {addresses: [...], routes: [...], masquerade: true, forward: true}") {
		return nil
	}
	h := &TAPHost{node: n, path: path}
	m := d.fields(n, path, tapHostKeys, nil)
	if p, ok := m["addresses"]; ok {
		addrs, at := d.interfaceAddrs(p.val, path+".addresses", "addresses such as 192.0.2.2/24")
		h.Addrs, h.addrAt = append(h.Addrs, addrs...), append(h.addrAt, at...)
	}
	if p, ok := m["routes"]; ok {
		for _, it := range d.list(p.val, path+".routes", "routes such as default via 192.0.2.1") {
			r, err := parseHostRoute(it.val)
			if err != nil {
				d.errf(it.node, it.path, "%v", err)
				continue
			}
			h.Routes = append(h.Routes, r)
			h.viaAt = append(h.viaAt, it)
		}
	}
	if p, ok := m["masquerade"]; ok {
		h.Masquerade, _ = d.boolean(p.val, path+".masquerade")
	}
	if p, ok := m["forward"]; ok {
		h.Forward, _ = d.boolean(p.val, path+".forward")
	}
	return h
}

// checkTAPs checks the tap links together: device names, the kernel
// sides' addresses and routes.
func (d *decoder) checkTAPs(s *Spec) {
	type placed struct {
		l    *Link
		node *yaml.Node
	}
	devices := map[[2]string]placed{}
	addrs := map[netip.Addr]string{}
	for _, fn := range s.Functions {
		for _, ifc := range fn.Interfaces {
			for _, a := range ifc.Addrs {
				addrs[a.Addr()] = fn.Name + "." + ifc.Name
			}
		}
	}
	for _, l := range s.Links {
		if l.bad || l.Transport != TAP || len(l.Ends) != 1 {
			continue
		}
		if l.TAPName != "" {
			key := [2]string{l.Netns, l.TAPName}
			n := l.keys["tap"]
			if o, dup := devices[key]; dup {
				where := "the runner's network namespace"
				if l.Netns != "" {
					where = "netns " + l.Netns
				}
				d.errf(n, l.path+".tap", "TAP device %s in %s is %s's already (%s)", l.TAPName, where, o.l.path, d.place(o.node))
			} else {
				devices[key] = placed{l, n}
			}
		}
		h := l.Host
		if h == nil {
			continue
		}
		for i, a := range h.Addrs {
			if o, ok := addrs[a.Addr()]; ok {
				at := h.addrAt[i]
				d.errf(at.node, at.path, "address %s is already on %s", a.Addr(), o)
				continue
			}
			addrs[a.Addr()] = l.path + ".host"
		}
		for i, r := range h.Routes {
			if !r.Via.IsValid() {
				continue
			}
			onLink := false
			for _, a := range h.Addrs {
				if a.Masked().Contains(r.Via) {
					onLink = true
				}
				if a.Addr() == r.Via {
					d.errf(h.viaAt[i].node, h.viaAt[i].path, "gateway %s is the TAP's own address", r.Via)
					onLink = true
				}
			}
			if !onLink {
				d.errf(h.viaAt[i].node, h.viaAt[i].path, "gateway %s is on none of the TAP's subnets (host.addresses: %s)", r.Via, prefixList(h.Addrs))
			}
		}
	}
}

func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return strings.Join(out, ", ")
}
