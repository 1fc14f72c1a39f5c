package netstack

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// fastPath forwards the plainest IPv4 and IPv6 packets of a router without handing
// them to gVisor: unicast, no IP options, not a fragment, TTL above 1, a
// valid header checksum, ordinary addresses, a route and a resolved
// neighbour, within the outgoing MTU (or a TCP segment larger than it, for
// a link that takes such segments whole), no rules installed and no capture
// running on either interface. Such a packet gets what gVisor's forwarding
// would give it — new Ethernet addresses, TTL minus one, the header checksum
// updated (RFC 1624) — for a fraction of the cost (gVisor parses, looks up
// its own addresses twice, copies the packet and builds a new one). Every
// other frame takes gVisor's path unchanged, which is where ICMP errors,
// ARP, fragments, options, iptables and connection tracking live.
//
// Routes and neighbours are looked up with gVisor (FindRoute, then the
// route's neighbour entry) and remembered for fastRouteTTL, so a changed
// neighbour is followed within that time; an unresolved neighbour sends the
// packet down gVisor's path, which resolves it.
type fastPath struct {
	s *Stack
	// special holds the addresses the path leaves to gVisor: the
	// network and broadcast addresses of the stack's IPv4 subnets.
	special map[tcpip.Address]bool

	mu     sync.RWMutex
	routes map[tcpip.Address]fastRoute

	forwarded atomic.Uint64
}

// fastRoute is where packets to one destination go: nil out means "not
// for the fast path" (a local address, no route, an unresolved neighbour).
type fastRoute struct {
	out     *nicState
	dstMAC  [6]byte
	expires int64 // Unix nanoseconds
}

// fastRouteTTL is how long a looked-up route and neighbour are used.
const fastRouteTTL = time.Second

// maxFastRoutes bounds the route cache; it is emptied when full.
const maxFastRoutes = 4096

func newFastPath(s *Stack) *fastPath {
	f := &fastPath{s: s, special: map[tcpip.Address]bool{}, routes: map[tcpip.Address]fastRoute{}}
	for _, st := range s.nics {
		for _, p := range st.cfg.Addrs {
			switch {
			case p.Addr().Is4() && p.Bits() < 31:
				p = p.Masked()
				f.special[tcpip.AddrFrom4(p.Addr().As4())] = true
				b := p.Addr().As4()
				host := uint32(1)<<(32-p.Bits()) - 1
				binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|host)
				f.special[tcpip.AddrFrom4(b)] = true
			case p.Addr().Is6() && p.Bits() < 127:
				// The subnet-router anycast address (RFC 4291 2.6.1).
				f.special[tcpip.AddrFrom16(p.Masked().Addr().As16())] = true
			}
		}
	}
	return f
}

// forward forwards frame b, received on in, if it qualifies, and reports
// whether it did. b is not kept. partial says that b is a TCP segment whose
// checksum is partial (see partialReader): it is completed on the way out
// unless the outgoing link is a TAP with offloads, whose kernel side does it.
func (f *fastPath) forward(in *nicState, b []byte, partial bool) bool {
	if f.s.userRules.Load() || len(b) < 14+20 || string(b[0:6]) != string(in.mac) || hasCaptures(in) {
		return false // rules (gVisor's iptables run), or not for this NIC
	}
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		return f.forward4(in, b, partial)
	case 0x86dd:
		return f.forward6(in, b, partial)
	}
	return false
}

// forward6 is forward for IPv6: the hop limit goes down by one, and there
// is no header checksum.
func (f *fastPath) forward6(in *nicState, b []byte, partial bool) bool {
	if len(b) < 14+40 {
		return false
	}
	ip := b[14:]
	if ip[0]>>4 != 6 {
		return false
	}
	total := 40 + int(binary.BigEndian.Uint16(ip[4:]))
	if 14+total > len(b) || ip[6] == 0 {
		return false // truncated, or hop-by-hop options (every router reads them)
	}
	hops := ip[7]
	if hops <= 1 {
		return false // time exceeded (ICMPv6)
	}
	src, dst := [16]byte(ip[8:24]), [16]byte(ip[24:40])
	da := tcpip.AddrFrom16(dst)
	if !ordinaryUnicast6(src) || !ordinaryUnicast6(dst) || f.special[da] {
		return false
	}
	r := f.route(da, ipv6.ProtocolNumber)
	if !r.takes(in, b[:14+total]) {
		return false
	}
	fb, out := f.frame(r, b[:14+total])
	out[14+7] = hops - 1
	f.send(r, fb, partial)
	return true
}

// ordinaryUnicast6 reports whether a is an IPv6 address gVisor's
// forwarding treats like any other: not unspecified, loopback, multicast,
// link-local, site-local or IPv4-mapped.
func ordinaryUnicast6(a [16]byte) bool {
	switch {
	case a[0] == 0xff, a[0] == 0xfe && a[1]&0x80 == 0x80: // ff00::/8, fe80::/10 and fec0::/10
		return false
	case [10]byte(a[:10]) == [10]byte{}: // ::, ::1, ::ffff:0:0/96 and the rest of ::/80
		return false
	}
	return true
}

// frame copies the frame to send into a frame buffer with its new Ethernet
// addresses (and, for a TAP with offloads, an empty virtio-net header) and
// returns the buffer and the frame in it.
func (f *fastPath) frame(r fastRoute, b []byte) (*[]byte, []byte) {
	fb := framePool.Get().(*[]byte)
	buf := (*fb)[:0]
	if r.out.link.vnet {
		buf = append(buf, zeroVnetHdr[:]...) // nothing to offload
	}
	off := len(buf)
	buf = append(buf, b...)
	*fb = buf
	out := buf[off:]
	copy(out[0:6], r.dstMAC[:])
	copy(out[6:12], []byte(r.out.mac))
	return fb, out
}

// send queues a forwarded frame on its outgoing link, after what the link
// does to every frame it sends (see linkEndpoint.finish: a virtio-net
// header for a TAP with offloads, a partial checksum completed elsewhere).
func (f *fastPath) send(r fastRoute, fb *[]byte, partial bool) {
	// Sent from a receive path: the short wait applies (see twoWayWaitLimit).
	f.s.delivering.Add(1)
	defer f.s.delivering.Add(-1)
	f.forwarded.Add(1)
	off := 0
	if r.out.link.vnet {
		off = vnetHdrLen
	}
	if !r.out.link.finish(fb, off, &stack.GSO{NeedsCsum: partial}) {
		framePool.Put(fb) // dropped and counted, or split and queued
		return
	}
	r.out.link.sendFrame(fb)
}

// takes reports whether the frame b (its IP packet whole, no padding),
// received on in, may leave by r: a route out of another interface
// without a capture, and within its MTU or a TCP segment for a link that
// takes large segments whole (a GSO link, or a TAP with offloads whose
// kernel side segments it). Anything larger goes to gVisor, which sends
// ICMP errors or has the link split the segment.
func (r fastRoute) takes(in *nicState, b []byte) bool {
	if r.out == nil || r.out == in || hasCaptures(r.out) {
		return false
	}
	if len(b) <= 14+int(r.out.cfg.MTU) {
		return true
	}
	if !r.out.link.gso && !r.out.link.vnet {
		return false
	}
	_, ok := parseTCPFrame(b)
	return ok
}

// forward4 is forward for IPv4.
func (f *fastPath) forward4(in *nicState, b []byte, partial bool) bool {
	ip := b[14:]
	if ip[0] != 0x45 {
		return false // not version 4, or options
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total < 20 || 14+total > len(b) {
		return false
	}
	if ip[6]&0x3f != 0 || ip[7] != 0 {
		return false // a fragment (MF, or an offset)
	}
	ttl := ip[8]
	if ttl <= 1 || checksum(ip[:20]) != 0xffff {
		return false // time exceeded (ICMP), or a bad header
	}
	src, dst := [4]byte(ip[12:16]), [4]byte(ip[16:20])
	sa, da := tcpip.AddrFrom4(src), tcpip.AddrFrom4(dst)
	if !ordinaryUnicast(src) || !ordinaryUnicast(dst) || f.special[da] || f.special[sa] {
		return false
	}
	r := f.route(da, ipv4.ProtocolNumber)
	if !r.takes(in, b[:14+total]) {
		return false
	}
	fb, out := f.frame(r, b[:14+total]) // Ethernet padding dropped
	// TTL minus one, and the header checksum with it: HC' = ~(~HC + ~m + m')
	// where m is the 16-bit word holding the TTL (RFC 1624, eqn. 3).
	oldWord := uint16(ttl)<<8 | uint16(ip[9])
	out[14+8] = ttl - 1
	sum := uint32(^binary.BigEndian.Uint16(out[14+10:])) + uint32(^oldWord) + uint32(oldWord-0x100)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(out[14+10:], ^uint16(sum))
	f.send(r, fb, partial)
	return true
}

// ordinaryUnicast reports whether a is an address gVisor's forwarding
// treats like any other: not 0/8, loopback, link-local, multicast or
// reserved (which includes the limited broadcast).
func ordinaryUnicast(a [4]byte) bool {
	switch {
	case a[0] == 0, a[0] == 127, a[0] >= 224, a[0] == 169 && a[1] == 254:
		return false
	}
	return true
}

func hasCaptures(st *nicState) bool {
	cs := st.nicEP.captures.Load()
	return cs != nil && len(*cs) > 0
}

// route returns where packets to dst go, from the cache or from gVisor.
func (f *fastPath) route(dst tcpip.Address, proto tcpip.NetworkProtocolNumber) fastRoute {
	now := time.Now().UnixNano()
	f.mu.RLock()
	r, ok := f.routes[dst]
	f.mu.RUnlock()
	if ok && now < r.expires {
		return r
	}
	r = f.lookup(dst, proto)
	r.expires = now + int64(fastRouteTTL)
	if r.out == nil {
		// Retry soon: a neighbour being resolved, say.
		r.expires = now + int64(fastRouteTTL/10)
	}
	f.mu.Lock()
	if len(f.routes) >= maxFastRoutes {
		clear(f.routes)
	}
	f.routes[dst] = r
	f.mu.Unlock()
	return r
}

// lookup asks gVisor where packets to dst go.
func (f *fastPath) lookup(a tcpip.Address, proto tcpip.NetworkProtocolNumber) fastRoute {
	s := f.s.s
	if s.CheckLocalAddress(0, proto, a) != 0 {
		return fastRoute{}
	}
	rt, err := s.FindRoute(0, tcpip.Address{}, a, proto, false)
	if err != nil {
		return fastRoute{}
	}
	defer rt.Release()
	out := f.s.nicByID(rt.NICID())
	if out == nil || out.link == nil || !out.link.hasTx {
		return fastRoute{} // a receive-only link: gVisor's path counts the drop
	}
	var mac tcpip.LinkAddress
	if out.nicEP.resolve {
		// The route's neighbour entry, if it has a link address; gVisor
		// starts resolving it otherwise (its path forwards meanwhile).
		// A resolved route calls back at once; an unresolved one later,
		// from another goroutine, when nobody reads the channel any more.
		ch := make(chan tcpip.LinkAddress, 1)
		if err := rt.ResolvedFields(func(r stack.ResolvedFieldsResult) {
			select {
			case ch <- r.RouteInfo.RemoteLinkAddress:
			default:
			}
		}); err != nil {
			return fastRoute{}
		}
		select {
		case mac = <-ch:
		default:
		}
		if len(mac) != 6 {
			return fastRoute{}
		}
	} else {
		mac = out.nicEP.peer
	}
	r := fastRoute{out: out}
	copy(r.dstMAC[:], mac)
	return r
}

// nicByID returns the NIC with gVisor id id.
func (s *Stack) nicByID(id tcpip.NICID) *nicState {
	for _, st := range s.nics {
		if st.id == id {
			return st
		}
	}
	return nil
}
