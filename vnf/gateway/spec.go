package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// rule is one --forward or --expose, parsed and checked.
//
// A forward listens on a host socket (host, hostLo; port 0 means any free
// port) and dials inside (inside, insideLo) from the gateway's stack. An
// expose answers on the gateway's address inside, ports insideLo..insideHi,
// and connects each to the host, port hostLo + (port - insideLo).
type rule struct {
	flag  string // "forward" or "expose"
	text  string // as given
	proto string // "tcp" or "udp"

	host               netip.Addr
	hostLo, hostHi     uint16
	inside             netip.Addr
	insideLo, insideHi uint16
}

// spec is how the rule reads in reports: "forward tcp:127.0.0.1:8080=192.0.2.10:80".
func (r *rule) spec() string { return r.flag + " " + r.text }

// insideDst is where a forward connects to.
func (r *rule) insideDst() netip.AddrPort { return netip.AddrPortFrom(r.inside, r.insideLo) }

// hostDst is the host address an expose connects to for a connection to
// inside port p.
func (r *rule) hostDst(p uint16) netip.AddrPort {
	return netip.AddrPortFrom(r.host, r.hostLo+(p-r.insideLo))
}

// exposes reports whether an expose rule covers dst.
func (r *rule) exposes(proto string, dst netip.AddrPort) bool {
	return r.proto == proto && dst.Addr().Unmap() == r.inside && dst.Port() >= r.insideLo && dst.Port() <= r.insideHi
}

const (
	forwardSyntax = "want PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT], e.g. tcp:127.0.0.1:8080=192.0.2.10:80"
	exposeSyntax  = "want PROTO:INSIDEADDR:PORTS=HOSTADDR[:PORTS], e.g. tcp:192.0.2.1:7000=127.0.0.1:7"
)

// parseForward parses PROTO:HOSTADDR:PORT=INSIDEADDR[:PORT]. A missing
// inside port is the host port.
func parseForward(s string, allowAnyHost bool) (*rule, error) {
	r := &rule{flag: "forward", text: s}
	lhs, rhs, err := r.split(forwardSyntax)
	if err != nil {
		return nil, err
	}
	if r.host, r.hostLo, r.hostHi, err = addrPorts(lhs, true, true); err != nil {
		return nil, err
	}
	if r.hostLo != r.hostHi {
		return nil, errors.New("a forward takes one port on each side (port ranges are for --expose)")
	}
	if err := checkHost(r.host, allowAnyHost, true); err != nil {
		return nil, err
	}
	if r.inside, r.insideLo, r.insideHi, err = addrPorts(rhs, false, false); err != nil {
		return nil, err
	}
	switch {
	case r.insideLo == 0 && r.hostLo == 0:
		return nil, fmt.Errorf("%s: give the inside port when the host port is 0", rhs)
	case r.insideLo == 0:
		r.insideLo, r.insideHi = r.hostLo, r.hostHi
	case r.insideLo != r.insideHi:
		return nil, errors.New("a forward takes one port on each side (port ranges are for --expose)")
	}
	if err := checkInside(r.inside); err != nil {
		return nil, err
	}
	return r, nil
}

// parseExpose parses PROTO:INSIDEADDR:PORTS=HOSTADDR[:PORTS]. PORTS is a
// port or a range LO-HI; the host side has as many ports as the inside
// side, the same ones when left out.
func parseExpose(s string, allowAnyHost bool) (*rule, error) {
	r := &rule{flag: "expose", text: s}
	lhs, rhs, err := r.split(exposeSyntax)
	if err != nil {
		return nil, err
	}
	if r.inside, r.insideLo, r.insideHi, err = addrPorts(lhs, true, false); err != nil {
		return nil, err
	}
	if err := checkInside(r.inside); err != nil {
		return nil, err
	}
	if r.host, r.hostLo, r.hostHi, err = addrPorts(rhs, false, false); err != nil {
		return nil, err
	}
	if r.hostLo == 0 {
		r.hostLo, r.hostHi = r.insideLo, r.insideHi
	}
	if n, m := int(r.insideHi-r.insideLo)+1, int(r.hostHi-r.hostLo)+1; n != m {
		return nil, fmt.Errorf("%d inside ports but %d host ports: give both sides as many", n, m)
	}
	if err := checkHost(r.host, allowAnyHost, false); err != nil {
		return nil, err
	}
	return r, nil
}

// split checks the protocol and returns the two sides of '='.
func (r *rule) split(syntax string) (lhs, rhs string, err error) {
	lhs, rhs, ok := strings.Cut(r.text, "=")
	if !ok {
		return "", "", errors.New(syntax)
	}
	proto, rest, ok := strings.Cut(lhs, ":")
	if !ok {
		return "", "", errors.New(syntax)
	}
	if proto != "tcp" && proto != "udp" {
		return "", "", fmt.Errorf("protocol %q: want tcp or udp", proto)
	}
	r.proto = proto
	return rest, rhs, nil
}

// addrPorts parses ADDR:PORTS, [ADDR]:PORTS for IPv6, where PORTS is PORT
// or LO-HI; ADDR alone (no port: 0) when the port is optional. zeroOK
// allows port 0.
func addrPorts(s string, needPort, zeroOK bool) (netip.Addr, uint16, uint16, error) {
	host, ports := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return netip.Addr{}, 0, 0, fmt.Errorf("%q: missing ']'", s)
		}
		host, ports = s[1:end], s[end+1:]
		if ports != "" && !strings.HasPrefix(ports, ":") {
			return netip.Addr{}, 0, 0, fmt.Errorf("%q: want [ADDR]:PORT", s)
		}
		ports = strings.TrimPrefix(ports, ":")
	} else if i := strings.LastIndex(s, ":"); i >= 0 {
		host, ports = s[:i], s[i+1:]
		if strings.Contains(host, ":") {
			return netip.Addr{}, 0, 0, fmt.Errorf("%q: write an IPv6 address in brackets: [ADDR]:PORT", s)
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, 0, 0, fmt.Errorf("%q is not an IP address", host)
	}
	a = a.Unmap()
	if ports == "" {
		if needPort {
			return netip.Addr{}, 0, 0, fmt.Errorf("%q: want ADDR:PORT ([ADDR]:PORT for IPv6)", s)
		}
		return a, 0, 0, nil
	}
	loS, hiS, isRange := strings.Cut(ports, "-")
	lo, err := port(loS, zeroOK && !isRange)
	if err != nil {
		return netip.Addr{}, 0, 0, err
	}
	hi := lo
	if isRange {
		if hi, err = port(hiS, false); err != nil {
			return netip.Addr{}, 0, 0, err
		}
		if hi < lo {
			return netip.Addr{}, 0, 0, fmt.Errorf("port range %q runs backwards", ports)
		}
	}
	return a, lo, hi, nil
}

func port(s string, zeroOK bool) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || (n == 0 && !zeroOK) {
		if zeroOK {
			return 0, fmt.Errorf("port %q is not 0-65535", s)
		}
		return 0, fmt.Errorf("port %q is not 1-65535", s)
	}
	return uint16(n), nil
}

// checkHost keeps the host side on loopback unless the user says
// otherwise: a lab tool must not open a port to the network, or reach
// into it, by accident.
func checkHost(a netip.Addr, allowAny, listen bool) error {
	if !listen && a.IsUnspecified() {
		return fmt.Errorf("host address %s: name the address to connect to", a)
	}
	if a.IsLoopback() || allowAny {
		return nil
	}
	verb := "connect to"
	if listen {
		verb = "listen on"
	}
	return fmt.Errorf("host address %s is not a loopback address: add --allow-host-any to %s it", a, verb)
}

// checkInside refuses addresses that cannot be a destination in a chain.
func checkInside(a netip.Addr) error {
	switch {
	case a.IsUnspecified():
		return fmt.Errorf("inside address %s: name one address", a)
	case a.IsLoopback():
		return fmt.Errorf("inside address %s is a loopback address: name an address in the chain", a)
	case a.IsMulticast():
		return fmt.Errorf("inside address %s is a multicast address", a)
	}
	return nil
}

// overlap reports whether two rules would claim the same socket: two
// forwards on one host address and port, two exposes on one inside port.
func overlap(a, b *rule) bool {
	if a.flag != b.flag || a.proto != b.proto {
		return false
	}
	if a.flag == "forward" {
		return a.hostLo != 0 && a.host == b.host && a.hostLo == b.hostLo
	}
	return a.inside == b.inside && a.insideLo <= b.insideHi && b.insideLo <= a.insideHi
}
