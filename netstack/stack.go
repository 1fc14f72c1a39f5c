package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/raw"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Stack is one network function's TCP/IP stack with its NICs.
type Stack struct {
	s     *stack.Stack
	clock *drainClock
	cfg   Config
	log   *slog.Logger
	nics  []*nicState
	ct    *conntrackGuard
	// delivering counts frames being delivered into the stack (see
	// linkEndpoint.delivering).
	delivering atomic.Int64
	// bursting counts receive loops delivering a batch (see
	// linkEndpoint.bursting).
	bursting atomic.Int64
	// gsoMark lets large TCP segments through the forwarding path, once
	// installed (see gsoMarker); gsoPending is the marker to install, nil
	// unless the stack forwards and has a GSO link. rulesMu serialises
	// rule installs.
	gsoMark    atomic.Pointer[gsoMarker]
	gsoPending *gsoMarker
	rulesMu    sync.Mutex
	// fast forwards plain IPv4 packets without gVisor (nil unless the
	// stack forwards).
	fast *fastPath
	// userRules is set once rules are installed (ApplyRules).
	userRules atomic.Bool

	startOnce sync.Once
	closeOnce sync.Once
	done      chan struct{} // closed when every receive side that can end has ended
}

type nicState struct {
	id    tcpip.NICID
	cfg   NICConfig
	mac   tcpip.LinkAddress
	stats *LinkStats
	link  *linkEndpoint
	nicEP *nicEndpoint
}

// New builds a stack from cfg: it opens every interface's files (waiting,
// within ctx, for FIFO peers and unix listeners), creates the NICs with their
// addresses, routes and neighbours. No frame moves until Start.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Stack, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{cfg: cfg, log: log, done: make(chan struct{})}
	s.clock = newDrainClock()
	s.s = stack.New(stack.Options{
		Clock: s.clock,
		NetworkProtocols: []stack.NetworkProtocolFactory{
			// IGMP and MLD off: nfpipe links carry only the traffic the
			// functions make, so that counters and captures add up.
			ipv4.NewProtocolWithOptions(ipv4.Options{}),
			ipv6.NewProtocolWithOptions(ipv6.Options{
				// No router solicitations, no DAD delay: addresses are
				// usable at once and one-way links stay quiet.
				NDPConfigs: ipv6.NDPConfigurations{MaxRtrSolicitations: 0},
				DADConfigs: stack.DADConfigurations{DupAddrDetectTransmits: 0},
			}),
			arp.NewProtocol,
		},
		// TCP, UDP and ICMP are registered even on a router: transport
		// headers are parsed through them (for port-aware rules and NAT).
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// Raw sockets let ping see ICMP errors (time exceeded, unreachable).
		RawFactory:  raw.EndpointFactory{},
		HandleLocal: true,
	})
	s.ct = newConntrackGuard(cfg.Conntrack, gvisorKnows(s.s), log)
	if err := s.setOptions(); err != nil {
		s.s.Close()
		return nil, err
	}
	if err := s.addNICs(ctx); err != nil {
		s.closeLinks()
		s.s.Close()
		return nil, err
	}
	if err := s.addRoutes(); err != nil {
		s.closeLinks()
		s.s.Close()
		return nil, err
	}
	s.prepareGSOMarker()
	if cfg.Forwarding && os.Getenv("NFPIPE_NO_FAST_PATH") == "" {
		s.fast = newFastPath(s)
	}
	for _, st := range s.nics {
		if st.link == nil {
			continue
		}
		st.link.captured = func() bool { return hasCaptures(st) }
		if s.fast != nil {
			st.link.fast = func(b []byte, partial bool) bool { return s.fast.forward(st, b, partial) }
		}
	}
	return s, nil
}

func (s *Stack) setOptions() error {
	// SACK recovers from the drops of a congested queue without a timeout.
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return fmt.Errorf("enable TCP SACK: %s", err)
	}
	// Buffers large enough for a few Gbit/s on a sub-millisecond path.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	if err := s.s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		return fmt.Errorf("set TCP receive buffer: %s", err)
	}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	if err := s.s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd); err != nil {
		return fmt.Errorf("set TCP send buffer: %s", err)
	}
	// UDP sockets may ask for up to 16 MiB (gVisor's default cap is 4 MiB,
	// which lets a sink lose a fast burst): see udpReceiveBuffer.
	rb := tcpip.ReceiveBufferSizeOption{Min: 4096, Default: stack.DefaultBufferSize, Max: 16 << 20}
	if err := s.s.SetOption(rb); err != nil {
		return fmt.Errorf("set socket receive buffer limits: %s", err)
	}
	mod := tcpip.TCPModerateReceiveBufferOption(true)
	if err := s.s.SetTransportProtocolOption(tcp.ProtocolNumber, &mod); err != nil {
		return fmt.Errorf("enable TCP receive buffer moderation: %s", err)
	}
	return nil
}

func (s *Stack) addNICs(ctx context.Context) error {
	type opened struct {
		link *linkEndpoint
		err  error
	}
	res := make([]opened, len(s.cfg.NICs))
	var wg sync.WaitGroup
	for i := range s.cfg.NICs {
		nc := &s.cfg.NICs[i]
		st := &nicState{id: tcpip.NICID(i + 1), cfg: *nc, stats: &LinkStats{}}
		var first netip.Prefix
		if len(nc.Addrs) > 0 {
			first = nc.Addrs[0]
		}
		mac := nc.MAC
		if mac == nil {
			mac = DefaultMAC(s.cfg.Name, nc.Name, first)
		}
		st.mac = tcpip.LinkAddress(mac)
		if st.cfg.MTU == 0 {
			st.cfg.MTU = DefaultMTU
		}
		s.nics = append(s.nics, st)
		wg.Add(1)
		// Open all interfaces at once: FIFO opens block until their peer
		// opens, and a peer may be waiting on another of our interfaces.
		go func() {
			defer wg.Done()
			link, err := openLink(ctx, nc, st.mac, st.cfg.MTU, s.log, st.stats, s.cfg.connectTimeout())
			if err != nil {
				err = fmt.Errorf("interface %q: %w", nc.Name, err)
			}
			res[i] = opened{link, err}
		}()
	}
	wg.Wait()
	var errs []error
	for i, r := range res {
		st := s.nics[i]
		st.link = r.link
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		st.nicEP = newNICEndpoint(r.link, st.cfg.Name, st.mac, st.cfg.Link, st.stats)
		st.nicEP.forwarding = s.cfg.Forwarding
		st.nicEP.ct = s.ct
		st.nicEP.delivering = &s.delivering
		if st.link != nil {
			st.link.delivering = &s.delivering
			st.link.bursting = &s.bursting
			st.link.onBurst = s.cfg.OnBurst
			st.link.forwarding = s.cfg.Forwarding
		}
		st.nicEP.isLocal = func(a tcpip.Address) bool {
			return s.s.CheckLocalAddress(0, header.IPv4ProtocolNumber, a) != 0
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, st := range s.nics {
		if err := s.s.CreateNICWithOptions(st.id, st.nicEP, stack.NICOptions{Name: st.cfg.Name}); err != nil {
			return fmt.Errorf("interface %q: create NIC: %s", st.cfg.Name, err)
		}
		for _, p := range st.cfg.Addrs {
			proto := header.IPv4ProtocolNumber
			if p.Addr().Is6() {
				proto = header.IPv6ProtocolNumber
			}
			pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpipAddr(p.Addr()), PrefixLen: p.Bits()}}
			if err := s.s.AddProtocolAddress(st.id, pa, stack.AddressProperties{}); err != nil {
				return fmt.Errorf("interface %q: add address %s: %s", st.cfg.Name, p, err)
			}
		}
		if s.cfg.Forwarding {
			for _, proto := range []tcpip.NetworkProtocolNumber{ipv4.ProtocolNumber, ipv6.ProtocolNumber} {
				if _, err := s.s.SetNICForwarding(st.id, proto, true); err != nil {
					return fmt.Errorf("interface %q: enable forwarding: %s", st.cfg.Name, err)
				}
			}
		}
		if st.cfg.Capture != "" {
			s.startCapture(st)
		}
	}
	return nil
}

// startCapture opens the capture file, or waits in the background for a
// reader to open the capture FIFO; frames before then are not captured.
func (s *Stack) startCapture(st *nicState) {
	path := st.cfg.Capture
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		go func() {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				s.log.Warn("capture not started", "if", st.cfg.Name, "err", err)
				return
			}
			st.nicEP.addCapture(newCaptureWriter(f, s.log))
		}()
		return
	}
	f, err := os.Create(path)
	if err != nil {
		s.log.Warn("capture not started", "if", st.cfg.Name, "err", err)
		return
	}
	st.nicEP.addCapture(newCaptureWriter(f, s.log))
}

// Capture mirrors the frames interface ifName sends and receives, as a pcap
// stream, to w until w fails (its reader went away), stop is called, or the
// stack closes. Each frame is flushed as it comes, for live readers
// (tcpdump -r -). done is closed when the capture has ended and w is closed.
func (s *Stack) Capture(ifName string, w io.WriteCloser) (stop func(), done <-chan struct{}, err error) {
	st := s.nicByName(ifName)
	if st == nil {
		var names []string
		for _, n := range s.nics {
			names = append(names, n.cfg.Name)
		}
		return nil, nil, fmt.Errorf("no interface %q (have: %s)", ifName, strings.Join(names, ", "))
	}
	c := newCaptureTo("live capture", w, true, s.log)
	st.nicEP.addCapture(c)
	return func() { st.nicEP.removeCapture(c) }, c.closed, nil
}

func (s *Stack) addRoutes() error {
	var table []tcpip.Route
	for _, st := range s.nics {
		for _, p := range st.cfg.Addrs {
			table = append(table, tcpip.Route{Destination: subnet(p.Masked()), NIC: st.id})
		}
	}
	routes := s.cfg.Routes
	routes = append(routes, s.implicitDefaults(routes)...)
	for _, r := range routes {
		nic, err := s.routeNIC(r)
		if err != nil {
			return err
		}
		tr := tcpip.Route{Destination: subnet(r.Dst), NIC: nic}
		if r.Gateway.IsValid() {
			tr.Gateway = tcpipAddr(r.Gateway)
		}
		table = append(table, tr)
	}
	s.s.SetRouteTable(table)
	for _, nb := range s.cfg.Neighbors {
		nic, err := s.neighborNIC(nb)
		if err != nil {
			return err
		}
		proto := header.IPv4ProtocolNumber
		if nb.Addr.Is6() {
			proto = header.IPv6ProtocolNumber
		}
		if err := s.s.AddStaticNeighbor(nic, proto, tcpipAddr(nb.Addr), tcpip.LinkAddress(nb.MAC)); err != nil {
			return fmt.Errorf("neighbour %s: %s", nb.Addr, err)
		}
	}
	return nil
}

// implicitDefaults gives a function whose only interface cannot resolve
// neighbours (a one-way pipe) an on-link default route per address family
// it has, so that `host | router | host` needs no gateway: every frame goes
// to the peer (broadcast) anyway.
func (s *Stack) implicitDefaults(routes []Route) []Route {
	if len(s.nics) != 1 || s.nics[0].cfg.Link.resolves() || s.cfg.Forwarding {
		return nil
	}
	has := map[bool]bool{}
	for _, r := range routes {
		if r.Dst.Bits() == 0 {
			has[r.Dst.Addr().Is4()] = true
		}
	}
	var out []Route
	for _, p := range s.nics[0].cfg.Addrs {
		v4 := p.Addr().Is4()
		if has[v4] {
			continue
		}
		has[v4] = true
		dst := netip.MustParsePrefix("0.0.0.0/0")
		if !v4 {
			dst = netip.MustParsePrefix("::/0")
		}
		out = append(out, Route{Dst: dst, NIC: s.nics[0].cfg.Name})
	}
	return out
}

func (s *Stack) nicByName(name string) *nicState {
	for _, st := range s.nics {
		if st.cfg.Name == name {
			return st
		}
	}
	return nil
}

// onLink returns the NIC whose connected subnets hold a.
func (s *Stack) onLink(a netip.Addr) *nicState {
	for _, st := range s.nics {
		for _, p := range st.cfg.Addrs {
			if p.Masked().Contains(a) {
				return st
			}
		}
	}
	return nil
}

func (s *Stack) routeNIC(r Route) (tcpip.NICID, error) {
	if r.NIC != "" {
		st := s.nicByName(r.NIC)
		if st == nil {
			return 0, fmt.Errorf("route %s: no interface %q", r, r.NIC)
		}
		return st.id, nil
	}
	if st := s.onLink(r.Gateway); st != nil {
		return st.id, nil
	}
	return 0, fmt.Errorf("route %s: gateway %s is not in the subnet of any interface (add an address in its subnet, or say dev NAME)", r, r.Gateway)
}

func (s *Stack) neighborNIC(nb Neighbor) (tcpip.NICID, error) {
	if nb.NIC != "" {
		if st := s.nicByName(nb.NIC); st != nil {
			return st.id, nil
		}
		return 0, fmt.Errorf("neighbour %s: no interface %q", nb.Addr, nb.NIC)
	}
	if st := s.onLink(nb.Addr); st != nil {
		return st.id, nil
	}
	if len(s.nics) == 1 {
		return s.nics[0].id, nil
	}
	return 0, fmt.Errorf("neighbour %s: not in the subnet of any interface; say dev NAME", nb.Addr)
}

// Start lets frames flow: the receive loops and transmit writers start.
func (s *Stack) Start() {
	s.startOnce.Do(func() {
		var ends []*linkEndpoint
		for _, st := range s.nics {
			if st.link != nil {
				st.link.start()
				if st.link.rxEnds && (len(s.cfg.EndOn) == 0 || slices.Contains(s.cfg.EndOn, st.cfg.Name)) {
					ends = append(ends, st.link)
				}
			}
		}
		if len(ends) == 0 {
			return // nothing can end: run until stopped
		}
		go func() {
			for _, l := range ends {
				<-l.rxDone
			}
			close(s.done)
		}()
	})
}

// Done is closed when every receive side that can end (a pipe, a FIFO, a
// file, a connected socket) has reached its end. It never closes for a
// function whose interfaces cannot end (TAP, unix-listen) or that has none.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Err returns the receive errors (fatal malformed input, read failures) of
// the interfaces that ended, joined.
func (s *Stack) Err() error {
	var errs []error
	for _, st := range s.nics {
		if st.link == nil || !st.link.rxEnds {
			continue
		}
		select {
		case <-st.link.rxDone:
			if st.link.rxErr != nil {
				errs = append(errs, st.link.rxErr)
			}
		default:
		}
	}
	return errors.Join(errs...)
}

// Drain waits up to timeout for every queued frame to be written out,
// including packets still waiting for their neighbour to be resolved, and
// those gVisor is handing to the link after it was (see drainClock): a
// client that sends and ends at once must not lose what it sent. It
// reports whether everything was written.
func (s *Stack) Drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for (s.resolving() || s.clock.busy()) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	ok := true
	for _, st := range s.nics {
		if st.link != nil && !st.link.drain(deadline) {
			ok = false
		}
	}
	return ok
}

// resolving reports whether a neighbour resolution is outstanding; packets
// for that neighbour wait in gVisor until it answers or times out.
func (s *Stack) resolving() bool {
	for _, st := range s.nics {
		if !st.nicEP.resolve {
			continue
		}
		for _, proto := range []tcpip.NetworkProtocolNumber{ipv4.ProtocolNumber, ipv6.ProtocolNumber} {
			entries, err := s.s.Neighbors(st.id, proto)
			if err != nil {
				continue
			}
			for _, e := range entries {
				if e.State == stack.Incomplete {
					return true
				}
			}
		}
	}
	return false
}

// UsesStdout reports whether an interface sends frames on standard output,
// so that reports must go elsewhere.
func (s *Stack) UsesStdout() bool {
	for _, n := range s.cfg.NICs {
		if n.Link.Tx.Kind == Stdout || (n.Link.Tx.Kind == FD && n.Link.Tx.FD == 1) {
			return true
		}
	}
	return false
}

// Close stops every link and the stack. It is idempotent.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		s.closeLinks()
		// gVisor's Stack.Wait waits for each link's goroutines while it
		// holds the stack's lock, which a frame being delivered may need
		// (to look up the route of an answer: an ICMP error, a reset, a
		// forwarded packet): the receive loops must be over before it, or
		// Close can wait forever (TestCloseUnderTraffic).
		for _, st := range s.nics {
			if st.link != nil {
				st.link.Wait()
			}
		}
		s.s.Close()
		s.s.Wait()
	})
}

func (s *Stack) closeLinks() {
	for _, st := range s.nics {
		if st.link != nil {
			st.link.Close()
		}
		if st.nicEP != nil {
			st.nicEP.closeCaptures()
		}
	}
}

// Interfaces describes the NICs as configured: name, MAC, MTU, addresses
// and link, for logs and reports.
func (s *Stack) Interfaces() []InterfaceInfo {
	var out []InterfaceInfo
	for _, st := range s.nics {
		out = append(out, InterfaceInfo{Name: st.cfg.Name, MAC: st.mac.String(), MTU: st.cfg.MTU, Addrs: st.cfg.Addrs, Link: st.cfg.Link.String(), OneWay: !st.cfg.Link.resolves()})
	}
	return out
}

// InterfaceInfo describes one NIC.
type InterfaceInfo struct {
	Name   string         `json:"name"`
	MAC    string         `json:"mac"`
	MTU    uint32         `json:"mtu"`
	Addrs  []netip.Prefix `json:"addrs"`
	Link   string         `json:"link"`
	OneWay bool           `json:"no_resolution"`
}

func tcpipAddr(a netip.Addr) tcpip.Address {
	return tcpip.AddrFromSlice(a.Unmap().AsSlice())
}

func netipAddr(a tcpip.Address) netip.Addr {
	n, _ := netip.AddrFromSlice(a.AsSlice())
	return n
}

func subnet(p netip.Prefix) tcpip.Subnet {
	return tcpip.AddressWithPrefix{Address: tcpipAddr(p.Addr()), PrefixLen: p.Bits()}.Subnet()
}
