package netstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nfpipe/nfpipe/internal/suggest"
	"github.com/nfpipe/nfpipe/netstack/frame"
)

// EndpointKind says what kind of file or stream one side of a link is.
type EndpointKind int

// Endpoint kinds. Two-way kinds (stdio, fd, unix, unix-listen, seqpacket,
// tap) carry both directions on one object; the others carry one.
const (
	None       EndpointKind = iota // no such side: the link is one-way
	Stdin                          // the process's standard input
	Stdout                         // the process's standard output
	Stdio                          // stdin for receiving, stdout for sending
	FD                             // an inherited file descriptor carrying a byte stream
	FIFO                           // a named pipe, created if missing
	File                           // a regular file: replayed when receiving, written when sending
	Unix                           // a unix stream socket we connect to
	UnixListen                     // a unix stream socket we listen on; peers may reconnect
	Seqpacket                      // an inherited unix SOCK_SEQPACKET fd: one frame per message
	TAP                            // a Linux TAP device
)

var kindNames = map[EndpointKind]string{
	None: "none", Stdin: "stdin", Stdout: "stdout", Stdio: "stdio", FD: "fd",
	FIFO: "fifo", File: "file", Unix: "unix", UnixListen: "unix-listen",
	Seqpacket: "seqpacket", TAP: "tap",
}

func (k EndpointKind) String() string { return kindNames[k] }

// twoWay reports whether one endpoint of this kind carries both directions.
func (k EndpointKind) twoWay() bool {
	switch k {
	case Stdio, FD, Unix, UnixListen, Seqpacket, TAP:
		return true
	}
	return false
}

// stream reports whether the endpoint is a byte stream that needs a frame
// format (as opposed to one frame per message).
func (k EndpointKind) stream() bool { return k != Seqpacket && k != TAP && k != None }

// Endpoint is one side of a link.
type Endpoint struct {
	Kind EndpointKind
	// Path is the file, FIFO, socket path or TAP name.
	Path string
	// FD is the descriptor number for FD and Seqpacket.
	FD int
}

func (e Endpoint) String() string {
	switch e.Kind {
	case None, Stdin, Stdout, Stdio:
		return e.Kind.String()
	case FD, Seqpacket:
		return fmt.Sprintf("%s:%d", e.Kind, e.FD)
	}
	return e.Kind.String() + ":" + e.Path
}

// LinkSpec says where an interface's frames come from and go to.
type LinkSpec struct {
	// Rx is where received frames are read; Tx where sent frames are
	// written. A two-way endpoint appears in both.
	Rx, Tx Endpoint
	// Format is the framing on byte streams (default qemu).
	Format frame.Format
	// Peer, when set, is the destination MAC of every frame sent, and no
	// neighbour resolution takes place. One-way links default to the
	// broadcast address.
	Peer net.HardwareAddr
	// ReplayOriginalTiming replays a pcap file with the gaps between its
	// timestamps instead of as fast as possible.
	ReplayOriginalTiming bool
	// Netns is the network namespace a TAP device is opened in: a name
	// under /run/netns, or a path such as /proc/PID/ns/net. Empty means
	// the process's own.
	Netns string
	// GSO says whether the link carries TCP segments larger than its MTU
	// (up to 64 KiB of IP packet; see UsesGSO).
	GSO Toggle
	// Pack says whether a seqpacket link carries several frames per
	// message, each preceded by its 2-byte big-endian length (off by
	// default; both ends must agree, and the chain runner turns it on
	// between two nfpipe functions).
	Pack Toggle
}

// Toggle is an on/off option whose default depends on the link.
type Toggle uint8

// Toggle values.
const (
	Default Toggle = iota
	On
	Off
)

// parseToggle reads the value of an on/off key.
func parseToggle(v string) (Toggle, error) {
	switch v {
	case "on":
		return On, nil
	case "off":
		return Off, nil
	}
	return Default, errors.New("want on or off")
}

// UsesGSO reports whether the link carries TCP segments larger than the MTU
// (generic segmentation offload): the stack's TCP sends up to 64 KiB per
// frame and the peer takes them whole. On by default for a TAP, where the
// virtio-net header lets the kernel segment on its side (and hand over
// large segments in turn); off by default elsewhere, where the peer may be a
// program that expects frames no larger than the MTU (tcpdump, QEMU, a
// pcap file). The chain runner turns it on for links between two nfpipe
// functions. Without it, large segments that must leave on the link are
// split here in software.
func (l LinkSpec) UsesGSO() bool {
	if l.Rx.Kind == TAP {
		return l.GSO != Off
	}
	return l.GSO == On
}

// OneWay reports whether the link lacks a receive or a transmit side, such as
// a shell pipe. One-way links cannot resolve neighbours.
func (l LinkSpec) OneWay() bool { return l.Rx.Kind == None || l.Tx.Kind == None }

// resolves reports whether the NIC resolves neighbours with ARP/NDP.
func (l LinkSpec) resolves() bool { return l.Peer == nil && !l.OneWay() }

// peerMAC is the destination MAC for every frame on a non-resolving link.
func (l LinkSpec) peerMAC() net.HardwareAddr {
	if l.Peer != nil {
		return l.Peer
	}
	return net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
}

func (l LinkSpec) String() string {
	if l.Rx == l.Tx {
		return l.Rx.String()
	}
	return l.Rx.String() + "|" + l.Tx.String()
}

func (l LinkSpec) validate() error {
	if l.Rx.Kind == None && l.Tx.Kind == None {
		return fmt.Errorf("link has neither a receive nor a transmit side")
	}
	if l.ReplayOriginalTiming && l.Rx.Kind != File {
		return fmt.Errorf("timing=original needs a pcap file to receive from")
	}
	if l.Netns != "" && l.Rx.Kind != TAP {
		return fmt.Errorf("netns= applies to tap: endpoints")
	}
	return nil
}

// ParseNIC parses an interface spec, the value of `--if`:
//
//	NAME=ENDPOINT[|ENDPOINT][,key=value...]
//
// ENDPOINT is stdin, stdout, stdio, none, fd:N, fifo:PATH, file:PATH,
// pcap:PATH, unix:PATH, unix-listen:PATH, seqpacket:N or tap:NAME. With two
// endpoints the first receives and the second sends. Keys: format, mac, mtu,
// ip (repeatable), peer, timing, capture, netns (tap only), gso (on|off), pack (on|off; seqpacket only).
func ParseNIC(s string) (NICConfig, error) {
	var n NICConfig
	name, rest, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || rest == "" {
		return n, fmt.Errorf("interface %q: want NAME=ENDPOINT, e.g. eth0=stdio or eth0=unix:/tmp/l.sock", s)
	}
	if strings.ContainsAny(name, " |,:/") || len(name) > 15 {
		return n, fmt.Errorf("interface %q: bad name %q (at most 15 characters, no spaces, '|', ',', ':' or '/')", s, name)
	}
	n.Name = name
	parts := strings.Split(rest, ",")
	link, err := parseLink(parts[0])
	if err != nil {
		return n, fmt.Errorf("interface %q: %w", s, err)
	}
	formatSet := false
	for _, kv := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "format":
			f, err := frame.ParseFormat(v)
			if err != nil {
				return n, fmt.Errorf("interface %q: %w", s, err)
			}
			link.Format, formatSet = f, true
		case "mac":
			mac, err := net.ParseMAC(v)
			if err != nil || len(mac) != 6 {
				return n, fmt.Errorf("interface %q: bad mac %q", s, v)
			}
			n.MAC = mac
		case "mtu":
			mtu, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return n, fmt.Errorf("interface %q: bad mtu %q", s, v)
			}
			n.MTU = uint32(mtu)
		case "ip":
			p, err := ParsePrefix(v)
			if err != nil {
				return n, fmt.Errorf("interface %q: %w", s, err)
			}
			n.Addrs = append(n.Addrs, p)
		case "peer":
			if v == "broadcast" {
				link.Peer = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
				break
			}
			mac, err := net.ParseMAC(v)
			if err != nil || len(mac) != 6 {
				return n, fmt.Errorf("interface %q: bad peer %q: want a MAC address or \"broadcast\"", s, v)
			}
			link.Peer = mac
		case "timing":
			switch v {
			case "original":
				link.ReplayOriginalTiming = true
			case "fast":
				link.ReplayOriginalTiming = false
			default:
				return n, fmt.Errorf("interface %q: timing %q: want original or fast", s, v)
			}
		case "capture":
			if v == "" {
				return n, fmt.Errorf("interface %q: capture needs a path", s)
			}
			n.Capture = v
		case "gso":
			var err error
			if link.GSO, err = parseToggle(v); err != nil {
				return n, fmt.Errorf("interface %q: gso %q: %w", s, v, err)
			}
			if link.OneWay() && link.GSO == On {
				return n, fmt.Errorf("interface %q: gso=on needs a two-way link (its peer must take large segments)", s)
			}
		case "pack":
			var err error
			if link.Pack, err = parseToggle(v); err != nil {
				return n, fmt.Errorf("interface %q: pack %q: %w", s, v, err)
			}
			if link.Rx.Kind != Seqpacket {
				return n, fmt.Errorf("interface %q: pack applies to seqpacket: endpoints (several frames per message)", s)
			}
		case "netns":
			if link.Rx.Kind != TAP {
				return n, fmt.Errorf("interface %q: netns applies to tap: endpoints", s)
			}
			if v == "" || strings.ContainsRune(v, 0) {
				return n, fmt.Errorf("interface %q: netns needs a namespace name (under /run/netns) or a path", s)
			}
			link.Netns = v
		default:
			return n, fmt.Errorf("interface %q: unknown option %q%s (valid: format, mac, mtu, ip, peer, timing, capture, netns, gso, pack)", s, k, suggest.DidYouMean(k, []string{"format", "mac", "mtu", "ip", "peer", "timing", "capture", "netns", "gso", "pack"}))
		}
	}
	if isPcapSide(parts[0]) {
		if formatSet && link.Format != frame.PCAP {
			return n, fmt.Errorf("interface %q: a pcap: endpoint is always format=pcap", s)
		}
		link.Format = frame.PCAP
	}
	if formatSet && !link.Rx.Kind.stream() && !link.Tx.Kind.stream() {
		return n, fmt.Errorf("interface %q: format applies to byte streams; %s carries one frame per message", s, link.Rx.Kind)
	}
	n.Link = link
	return n, nil
}

func isPcapSide(s string) bool {
	for _, side := range strings.Split(s, "|") {
		if strings.HasPrefix(strings.TrimSpace(side), "pcap:") {
			return true
		}
	}
	return false
}

func parseLink(s string) (LinkSpec, error) {
	var l LinkSpec
	rxs, txs, pair := strings.Cut(s, "|")
	rx, err := parseEndpoint(strings.TrimSpace(rxs))
	if err != nil {
		return l, err
	}
	if !pair {
		switch {
		case rx.Kind == Stdin:
			l.Rx = rx
		case rx.Kind == Stdout:
			l.Tx = rx
		case rx.Kind == Stdio:
			l.Rx, l.Tx = Endpoint{Kind: Stdin}, Endpoint{Kind: Stdout}
		case rx.Kind.twoWay():
			l.Rx, l.Tx = rx, rx
		case rx.Kind == None:
			return l, fmt.Errorf("endpoint none alone leaves the interface with nothing")
		default:
			return l, fmt.Errorf("%s is one-way: write %s|none to only receive, none|%s to only send, or RX|TX with two endpoints", rx, rx, rx)
		}
		return l, nil
	}
	tx, err := parseEndpoint(strings.TrimSpace(txs))
	if err != nil {
		return l, err
	}
	for _, e := range []Endpoint{rx, tx} {
		if e.Kind.twoWay() && e.Kind != FD {
			return l, fmt.Errorf("%s carries both directions: use it alone, not in RX|TX", e)
		}
	}
	if rx.Kind == Stdout {
		return l, fmt.Errorf("cannot receive from stdout")
	}
	if tx.Kind == Stdin {
		return l, fmt.Errorf("cannot send to stdin")
	}
	l.Rx, l.Tx = rx, tx
	return l, nil
}

func parseEndpoint(s string) (Endpoint, error) {
	switch s {
	case "none", "":
		return Endpoint{Kind: None}, nil
	case "stdin", "-":
		return Endpoint{Kind: Stdin}, nil
	case "stdout":
		return Endpoint{Kind: Stdout}, nil
	case "stdio":
		return Endpoint{Kind: Stdio}, nil
	}
	kind, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" {
		return Endpoint{}, fmt.Errorf("unknown endpoint %q (want stdin, stdout, stdio, none, fd:N, fifo:PATH, file:PATH, pcap:PATH, unix:PATH, unix-listen:PATH, seqpacket:N or tap:NAME)", s)
	}
	switch kind {
	case "fd", "seqpacket":
		fd, err := strconv.Atoi(arg)
		if err != nil || fd < 0 {
			return Endpoint{}, fmt.Errorf("endpoint %q: bad file descriptor %q", s, arg)
		}
		k := FD
		if kind == "seqpacket" {
			k = Seqpacket
		}
		return Endpoint{Kind: k, FD: fd}, nil
	case "fifo":
		return Endpoint{Kind: FIFO, Path: arg}, nil
	case "file", "pcap":
		return Endpoint{Kind: File, Path: arg}, nil
	case "unix":
		return Endpoint{Kind: Unix, Path: arg}, nil
	case "unix-listen":
		return Endpoint{Kind: UnixListen, Path: arg}, nil
	case "tap":
		if len(arg) > 15 {
			return Endpoint{}, fmt.Errorf("endpoint %q: TAP name longer than 15 characters", s)
		}
		return Endpoint{Kind: TAP, Path: arg}, nil
	}
	return Endpoint{}, fmt.Errorf("unknown endpoint kind %q in %q%s", kind, s, suggest.DidYouMean(kind, []string{"fd", "fifo", "file", "pcap", "unix", "unix-listen", "seqpacket", "tap"}))
}

// ParsePrefix parses an interface address with its prefix length. A bare
// address gets /32 or /128.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad address %q: want ADDR/LEN such as 192.0.2.1/24 or 2001:db8::1/64", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q: want ADDR/LEN such as 192.0.2.1/24 or 2001:db8::1/64", s)
	}
	return p, nil
}

// RouteDst parses the destination of a route: a prefix (masked), or
// default or default4 (0.0.0.0/0), or default6 (::/0). A caller that sees
// an IPv6 gateway after "default" makes it ::/0.
func RouteDst(word string) (netip.Prefix, error) {
	switch word {
	case "default", "default4":
		return netip.MustParsePrefix("0.0.0.0/0"), nil
	case "default6":
		return netip.MustParsePrefix("::/0"), nil
	}
	p, err := ParsePrefix(word)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// ParseRoute parses a route the way `ip route add` spells it:
// "PREFIX|default [via GW] [dev NAME]". "default" alone is IPv4; write
// "default6" or "::/0" for IPv6.
func ParseRoute(s string) (Route, error) {
	var r Route
	f := strings.Fields(s)
	if len(f) == 0 {
		return r, fmt.Errorf("empty route")
	}
	dst, err := RouteDst(f[0])
	if err != nil {
		return r, fmt.Errorf("route %q: %w", s, err)
	}
	r.Dst = dst
	for i := 1; i < len(f); i += 2 {
		if i+1 >= len(f) {
			return r, fmt.Errorf("route %q: %q needs a value", s, f[i])
		}
		switch f[i] {
		case "via":
			gw, err := netip.ParseAddr(f[i+1])
			if err != nil {
				return r, fmt.Errorf("route %q: bad gateway %q", s, f[i+1])
			}
			if f[0] == "default" && gw.Is6() {
				r.Dst = netip.MustParsePrefix("::/0")
			}
			r.Gateway = gw
		case "dev":
			r.NIC = f[i+1]
		default:
			return r, fmt.Errorf("route %q: unknown word %q (want via or dev)", s, f[i])
		}
	}
	if !r.Gateway.IsValid() && r.NIC == "" {
		return r, fmt.Errorf("route %q: needs via GATEWAY or dev NAME", s)
	}
	return r, nil
}

// ParseNeighbor parses a static neighbour: "ADDR lladdr MAC [dev NAME]" (the
// `ip neigh add` spelling) or the short "ADDR MAC [NAME]".
func ParseNeighbor(s string) (Neighbor, error) {
	var nb Neighbor
	var f []string
	for _, w := range strings.Fields(s) {
		if w != "lladdr" && w != "dev" {
			f = append(f, w)
		}
	}
	if len(f) < 2 || len(f) > 3 {
		return nb, fmt.Errorf("neighbour %q: want ADDR lladdr MAC [dev NAME]", s)
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return nb, fmt.Errorf("neighbour %q: bad address %q", s, f[0])
	}
	mac, err := net.ParseMAC(f[1])
	if err != nil || len(mac) != 6 {
		return nb, fmt.Errorf("neighbour %q: bad MAC %q", s, f[1])
	}
	nb.Addr, nb.MAC = a, mac
	if len(f) == 3 {
		nb.NIC = f[2]
	}
	return nb, nil
}
