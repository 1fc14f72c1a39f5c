package netstack

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/rules"
)

// gsoMarker lets a router forward TCP segments larger than the outgoing
// link's MTU, as Linux forwards GRO-merged segments: they arrive whole on
// GSO links (a TAP with offloads, a link between nfpipe functions) and leave
// whole on another GSO link, or split into MTU-sized frames by the link
// endpoint (see linkEndpoint.finish).
//
// gVisor would refuse them: its forwarding path copies the packet without
// its GSO options (DeepCopyForForwarding) and then, finding it larger than
// the MTU, drops it with ICMP "fragmentation needed" (see google/gvisor#14011).
// The only code that runs between that copy and the MTU check is the
// POSTROUTING hook, so the marker is a matcher in the first rule of mangle
// POSTROUTING: it gives such a segment the GSO options that tell gVisor a
// device will segment it (MSS from the outgoing link's MTU) and never
// matches, so the rules behind it see the packet as before.
//
// It is installed only in forwarding stacks with a GSO link; it turns on
// gVisor's iptables (and so its connection tracking) for every packet.
type gsoMarker struct {
	// mtu is the MTU of each NIC whose link endpoint can segment or pass
	// large segments on (nfpipe's own), by name. Read-only once built.
	mtu map[string]uint32
}

var _ stack.Matcher = (*gsoMarker)(nil)

// Match implements stack.Matcher. It never matches.
func (m *gsoMarker) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, out string) (bool, bool) {
	if pkt.GSOOptions.Type != stack.GSONone || pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return false, false
	}
	mtu, ok := m.mtu[out]
	if !ok || pkt.Size() <= int(mtu) {
		return false, false
	}
	l3 := len(pkt.NetworkHeader().Slice())
	th := pkt.TransportHeader().Slice()
	if len(th) < header.TCPMinimumSize {
		return false, false
	}
	mss := int(mtu) - l3 - int(header.TCP(th).DataOffset())
	if mss < 1 {
		return false, false
	}
	pkt.GSOOptions = stack.GSO{
		Type:       stack.GSOTCPv4,
		CsumOffset: tcpChecksumOffset,
		MSS:        uint16(mss),
		L3HdrLen:   uint16(l3),
		MaxSize:    gsoMaxSize,
	}
	if pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber {
		pkt.GSOOptions.Type = stack.GSOTCPv6
	}
	return false, false
}

// Name implements stack.Matcher.
func (*gsoMarker) Name() string { return "nfpipe-gso" }

// prepareGSOMarker builds the marker when the stack forwards and one of
// its links carries large segments. It is installed (activateGSO) with the
// first rules, or when the first large segment arrives: until then a router
// without rules keeps gVisor's iptables, and so its connection tracking,
// off, which small packets would pay for.
func (s *Stack) prepareGSOMarker() {
	if !s.cfg.Forwarding {
		return
	}
	m := &gsoMarker{mtu: map[string]uint32{}}
	any := false
	for _, st := range s.nics {
		if st.link == nil {
			continue
		}
		m.mtu[st.cfg.Name] = st.cfg.MTU
		any = any || st.link.gso
	}
	if !any {
		return
	}
	s.gsoPending = m
	for _, st := range s.nics {
		if st.link != nil {
			st.link.onLarge = s.activateGSO
		}
	}
}

// activateGSO installs the GSO marker, before the large segment that asks
// for it is delivered. Later calls return at once.
func (s *Stack) activateGSO() {
	if s.gsoMark.Load() != nil {
		return
	}
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	if s.gsoMark.Load() != nil {
		return
	}
	s.gsoMark.Store(s.gsoPending)
	// No rules are installed (ApplyRules would have installed the
	// marker): the marker's tables are all there is.
	if _, err := s.applyLocked(&rules.Ruleset{}); err != nil {
		s.log.Error("installing the GSO marker failed: large segments will be refused", "err", err)
	}
}
