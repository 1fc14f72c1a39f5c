package netstack

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ConntrackConfig bounds connection tracking. gVisor tracks every TCP, UDP
// and ICMP echo flow once rules are installed, without a limit; nfpipe keeps
// its own table of the flows it lets in, refuses new flows when the table is
// full (counting them) and forgets flows after Linux's timeouts.
type ConntrackConfig struct {
	// Max is the most flows tracked at once, like nf_conntrack_max; zero
	// means DefaultConntrackMax.
	Max int
	// Timeouts are how long an idle flow stays tracked; zero fields take
	// Linux's defaults.
	Timeouts ConntrackTimeouts
}

// fullWarnEvery spaces the table-full warnings out.
const fullWarnEvery = 10 * time.Second

// DefaultConntrackMax is Linux's nf_conntrack_max on a machine of this size.
const DefaultConntrackMax = 262144

// ConntrackTimeouts mirror Linux's net.netfilter.nf_conntrack_*_timeout*.
type ConntrackTimeouts struct {
	TCPSynSent     time.Duration // a SYN seen, nothing else: 120s
	TCPEstablished time.Duration // 5 days
	TCPFinWait     time.Duration // a FIN seen (fin_wait/time_wait): 120s
	TCPClose       time.Duration // an RST seen: 10s
	UDP            time.Duration // one direction only: 30s
	UDPStream      time.Duration // replies seen: 120s
	ICMP           time.Duration // echo: 30s
}

// DefaultConntrackTimeouts are Linux's defaults.
var DefaultConntrackTimeouts = ConntrackTimeouts{
	TCPSynSent:     120 * time.Second,
	TCPEstablished: 432000 * time.Second,
	TCPFinWait:     120 * time.Second,
	TCPClose:       10 * time.Second,
	UDP:            30 * time.Second,
	UDPStream:      120 * time.Second,
	ICMP:           30 * time.Second,
}

// conntrackTimeoutNames are the names ParseConntrackTimeout accepts, after
// Linux's sysctl names without the nf_conntrack_ prefix and _timeout.
var conntrackTimeoutNames = []string{"tcp_syn_sent", "tcp_established", "tcp_fin_wait", "tcp_close", "udp", "udp_stream", "icmp"}

func (t *ConntrackTimeouts) field(name string) *time.Duration {
	switch name {
	case "tcp_syn_sent":
		return &t.TCPSynSent
	case "tcp_established":
		return &t.TCPEstablished
	case "tcp_fin_wait", "tcp_time_wait":
		return &t.TCPFinWait
	case "tcp_close":
		return &t.TCPClose
	case "udp":
		return &t.UDP
	case "udp_stream":
		return &t.UDPStream
	case "icmp", "icmpv6":
		return &t.ICMP
	}
	return nil
}

// Set parses "NAME=DURATION" (udp=30s, tcp_established=1h; a bare
// number is seconds, as in sysctl) into t.
func (t *ConntrackTimeouts) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("conntrack timeout %q: want NAME=DURATION, e.g. udp=30s", s)
	}
	f := t.field(strings.TrimSpace(name))
	if f == nil {
		return fmt.Errorf("conntrack timeout %q: unknown name %q (known: %s)", s, name, strings.Join(conntrackTimeoutNames, ", "))
	}
	val = strings.TrimSpace(val)
	d, err := time.ParseDuration(val)
	if err != nil {
		var secs uint64
		if _, serr := fmt.Sscanf(val, "%d", &secs); serr != nil || fmt.Sprint(secs) != val {
			return fmt.Errorf("conntrack timeout %q: %q is not a duration (30s, 5m, or seconds)", s, val)
		}
		d = time.Duration(secs) * time.Second
	}
	if d <= 0 {
		return fmt.Errorf("conntrack timeout %q: must be positive", s)
	}
	*f = d
	return nil
}

func (t ConntrackTimeouts) withDefaults() ConntrackTimeouts {
	d := DefaultConntrackTimeouts
	for _, n := range conntrackTimeoutNames {
		if v := *t.field(n); v != 0 {
			*d.field(n) = v
		}
	}
	return d
}

// flowKey identifies a flow in both directions: the lower endpoint first.
type flowKey struct {
	a, b     netip.AddrPort
	proto    uint8
	isEchoID bool
}

type flowState uint8

const (
	flowSynSent flowState = iota
	flowEstablished
	flowFinWait
	flowClose
	flowUDP
	flowUDPStream
	flowICMP
)

type flowEntry struct {
	state   flowState
	origA   bool // the flow's first packet came from key.a
	expires time.Time
}

// conntrackGuard admits packets into a stack with rules: packets of known
// flows pass, new flows take a slot or are dropped when the table is full.
type conntrackGuard struct {
	max      int
	timeouts ConntrackTimeouts
	known    func(flowTuple) bool // gVisor tracks this tuple (e.g. a NATed reply)
	log      *slog.Logger
	now      func() time.Time

	enabled atomic.Bool

	mu        sync.Mutex
	flows     map[flowKey]*flowEntry
	nextSweep time.Time

	Dropped  atomic.Uint64 // new flows refused: table full
	Inserted atomic.Uint64 // flows admitted
	Expired  atomic.Uint64 // flows forgotten after their timeout
	// lastWarn is when the table-full warning was last logged (under
	// mu): at most one every fullWarnEvery, with the drops since.
	lastWarn    time.Time
	warnedDrops uint64
}

func newConntrackGuard(cfg ConntrackConfig, known func(flowTuple) bool, log *slog.Logger) *conntrackGuard {
	if cfg.Max <= 0 {
		cfg.Max = DefaultConntrackMax
	}
	return &conntrackGuard{max: cfg.Max, timeouts: cfg.Timeouts.withDefaults(), known: known, log: log, now: time.Now, flows: map[flowKey]*flowEntry{}}
}

// flowTuple is a packet's addresses and ports as it travels.
type flowTuple struct {
	src, dst netip.AddrPort
	proto    uint8
	flags    header.TCPFlags
	echo     bool // ICMP echo request (src port = ident)
}

// parseFlow reads the tuple of an IP packet at the start of pkt's data. ok is
// false for packets gVisor does not track (and so cannot grow its table).
func parseFlow(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) (t flowTuple, ok bool) {
	var hl int
	switch proto {
	case header.IPv4ProtocolNumber:
		b, ok := pkt.Data().PullUp(header.IPv4MinimumSize)
		if !ok {
			return t, false
		}
		h := header.IPv4(b)
		hl = int(h.HeaderLength())
		if hl < header.IPv4MinimumSize || h.FragmentOffset() != 0 {
			return t, false
		}
		t.src = netip.AddrPortFrom(netipAddr(h.SourceAddress()), 0)
		t.dst = netip.AddrPortFrom(netipAddr(h.DestinationAddress()), 0)
		t.proto = h.Protocol()
	case header.IPv6ProtocolNumber:
		b, ok := pkt.Data().PullUp(header.IPv6MinimumSize)
		if !ok {
			return t, false
		}
		h := header.IPv6(b)
		hl = header.IPv6MinimumSize
		t.src = netip.AddrPortFrom(netipAddr(h.SourceAddress()), 0)
		t.dst = netip.AddrPortFrom(netipAddr(h.DestinationAddress()), 0)
		t.proto = h.NextHeader()
	default:
		return t, false
	}
	need := 8
	if t.proto == uint8(header.TCPProtocolNumber) {
		need = header.TCPMinimumSize
	}
	b, ok := pkt.Data().PullUp(hl + need)
	if !ok {
		return t, false
	}
	l4 := b[hl:]
	switch t.proto {
	case uint8(header.TCPProtocolNumber), uint8(header.UDPProtocolNumber):
		t.src = netip.AddrPortFrom(t.src.Addr(), uint16(l4[0])<<8|uint16(l4[1]))
		t.dst = netip.AddrPortFrom(t.dst.Addr(), uint16(l4[2])<<8|uint16(l4[3]))
		if t.proto == uint8(header.TCPProtocolNumber) {
			t.flags = header.TCP(l4).Flags()
		}
		return t, true
	case uint8(header.ICMPv4ProtocolNumber), uint8(header.ICMPv6ProtocolNumber):
		typ := l4[0]
		if (t.proto == uint8(header.ICMPv4ProtocolNumber) && typ == uint8(header.ICMPv4Echo)) ||
			(t.proto == uint8(header.ICMPv6ProtocolNumber) && typ == uint8(header.ICMPv6EchoRequest)) {
			t.src = netip.AddrPortFrom(t.src.Addr(), uint16(l4[4])<<8|uint16(l4[5]))
			t.echo = true
			return t, true
		}
	}
	return t, false
}

func (t flowTuple) key() (k flowKey, fromA bool) {
	k.proto, k.isEchoID = t.proto, t.echo
	if t.echo {
		// An echo flow is (src, dst, ident); replies are not looked up here.
		return flowKey{a: t.src, b: t.dst, proto: t.proto, isEchoID: true}, true
	}
	if c := t.src.Addr().Compare(t.dst.Addr()); c < 0 || (c == 0 && t.src.Port() <= t.dst.Port()) {
		k.a, k.b = t.src, t.dst
		return k, true
	}
	k.a, k.b = t.dst, t.src
	return k, false
}

// admit decides whether pkt may enter the stack. It is called for every
// packet a NIC receives once rules are installed.
func (g *conntrackGuard) admit(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) bool {
	if !g.enabled.Load() {
		return true
	}
	t, ok := parseFlow(proto, pkt)
	if !ok {
		return true
	}
	k, fromA := t.key()
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.flows[k]; e != nil && now.Before(e.expires) {
		g.update(e, t, fromA != e.origA, now)
		return true
	}
	// Not in nfpipe's table. A packet gVisor already tracks (the reply of a
	// NATed flow, whose addresses differ from the original's) belongs to an
	// admitted flow.
	if g.known(t) {
		return true
	}
	if len(g.flows) >= g.max {
		g.sweep(now)
	}
	if len(g.flows) >= g.max {
		g.Dropped.Add(1)
		if now.Sub(g.lastWarn) >= fullWarnEvery {
			d := g.Dropped.Load()
			g.log.Warn("conntrack table full, dropping new flows", "max", g.max, "dropped_since_last_warning", d-g.warnedDrops,
				"flow", fmt.Sprintf("%s -> %s", t.src, t.dst))
			g.lastWarn, g.warnedDrops = now, d
		}
		return false
	}
	if len(g.flows) == 0 || now.After(g.nextSweep) {
		g.sweep(now)
	}
	e := &flowEntry{origA: fromA}
	switch t.proto {
	case uint8(header.TCPProtocolNumber):
		e.state = flowEstablished
		if t.flags&header.TCPFlagSyn != 0 && t.flags&header.TCPFlagAck == 0 {
			e.state = flowSynSent
		}
	case uint8(header.UDPProtocolNumber):
		e.state = flowUDP
	default:
		e.state = flowICMP
	}
	g.update(e, t, false, now)
	g.flows[k] = e
	g.Inserted.Add(1)
	return true
}

// update moves a flow's state on a packet (reply: in the other direction)
// and sets its expiry.
func (g *conntrackGuard) update(e *flowEntry, t flowTuple, reply bool, now time.Time) {
	switch e.state {
	case flowSynSent, flowEstablished, flowFinWait:
		switch {
		case t.flags&header.TCPFlagRst != 0:
			e.state = flowClose
		case t.flags&header.TCPFlagFin != 0:
			e.state = flowFinWait
		case e.state == flowSynSent && (reply || t.flags&header.TCPFlagSyn == 0):
			e.state = flowEstablished
		}
	case flowClose:
		if t.flags&header.TCPFlagSyn != 0 && t.flags&header.TCPFlagAck == 0 {
			e.state = flowSynSent // a new connection on the same ports
		}
	case flowUDP:
		if reply {
			e.state = flowUDPStream
		}
	}
	e.expires = now.Add(g.timeout(e.state))
}

func (g *conntrackGuard) timeout(s flowState) time.Duration {
	t := &g.timeouts
	switch s {
	case flowSynSent:
		return t.TCPSynSent
	case flowEstablished:
		return t.TCPEstablished
	case flowFinWait:
		return t.TCPFinWait
	case flowClose:
		return t.TCPClose
	case flowUDP:
		return t.UDP
	case flowUDPStream:
		return t.UDPStream
	}
	return t.ICMP
}

// sweep forgets expired flows. Called with mu held, at most once a second
// unless the table is full.
func (g *conntrackGuard) sweep(now time.Time) {
	for k, e := range g.flows {
		if !now.Before(e.expires) {
			delete(g.flows, k)
			g.Expired.Add(1)
		}
	}
	g.nextSweep = now.Add(time.Second)
}

// ConntrackStats is the state of a stack's connection tracking.
type ConntrackStats struct {
	Count    int    `json:"count"`
	Max      int    `json:"max"`
	Dropped  uint64 `json:"dropped_full"`
	Inserted uint64 `json:"inserted"`
	Expired  uint64 `json:"expired"`
}

func (g *conntrackGuard) stats() ConntrackStats {
	g.mu.Lock()
	g.sweep(g.now())
	n := len(g.flows)
	g.mu.Unlock()
	return ConntrackStats{Count: n, Max: g.max, Dropped: g.Dropped.Load(), Inserted: g.Inserted.Load(), Expired: g.Expired.Load()}
}

// gvisorKnows reports whether the stack's conntrack has a live entry for the
// tuple, using the one lookup gVisor exports (the SO_ORIGINAL_DST query).
func gvisorKnows(s *stack.Stack) func(flowTuple) bool {
	return func(t flowTuple) bool {
		np := header.IPv4ProtocolNumber
		if t.src.Addr().Is6() {
			np = header.IPv6ProtocolNumber
		}
		id := stack.TransportEndpointID{
			LocalAddress: tcpipAddr(t.src.Addr()), LocalPort: t.src.Port(),
			RemoteAddress: tcpipAddr(t.dst.Addr()), RemotePort: t.dst.Port(),
		}
		_, _, err := s.IPTables().OriginalDst(id, np, tcpip.TransportProtocolNumber(t.proto))
		_, notTracked := err.(*tcpip.ErrNotConnected)
		return !notTracked
	}
}
