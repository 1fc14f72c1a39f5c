package netstack

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// fastPath forwards the plainest IPv4 packets of a router without handing
// them to gVisor: unicast, no IP options, not a fragment, TTL above 1, a
// valid header checksum, ordinary addresses, a route and a resolved
// neighbour, within the outgoing MTU, no rules installed and no capture
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
	special map[[4]byte]bool

	mu     sync.RWMutex
	routes map[[4]byte]fastRoute

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
	f := &fastPath{s: s, special: map[[4]byte]bool{}, routes: map[[4]byte]fastRoute{}}
	for _, st := range s.nics {
		for _, p := range st.cfg.Addrs {
			if !p.Addr().Is4() || p.Bits() >= 31 {
				continue
			}
			p = p.Masked()
			f.special[p.Addr().As4()] = true
			b := p.Addr().As4()
			host := uint32(1)<<(32-p.Bits()) - 1
			binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|host)
			f.special[b] = true
		}
	}
	return f
}

// forward forwards frame b, received on in, if it qualifies, and reports
// whether it did. b is not kept.
func (f *fastPath) forward(in *nicState, b []byte) bool {
	if f.s.userRules.Load() || len(b) < 14+20 || b[12] != 0x08 || b[13] != 0x00 {
		return false // rules (gVisor's iptables run), or not IPv4
	}
	if !bytes.Equal(b[0:6], []byte(in.mac)) || hasCaptures(in) {
		return false
	}
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
	if !ordinaryUnicast(src) || !ordinaryUnicast(dst) || f.special[dst] || f.special[src] {
		return false
	}
	r := f.route(dst)
	if r.out == nil || r.out == in || total > int(r.out.cfg.MTU) || hasCaptures(r.out) {
		return false
	}
	fb := framePool.Get().(*[]byte)
	buf := (*fb)[:0]
	if r.out.link.vnet {
		buf = append(buf, zeroVnetHdr[:]...) // a TAP with offloads: nothing to offload
	}
	off := len(buf)
	buf = append(buf, b[:14+total]...) // Ethernet padding dropped
	out := buf[off:]
	copy(out[0:6], r.dstMAC[:])
	copy(out[6:12], []byte(r.out.mac))
	// TTL minus one, and the header checksum with it: HC' = ~(~HC + ~m + m')
	// where m is the 16-bit word holding the TTL (RFC 1624, eqn. 3).
	oldWord := uint16(ttl)<<8 | uint16(ip[9])
	out[14+8] = ttl - 1
	sum := uint32(^binary.BigEndian.Uint16(out[14+10:])) + uint32(^oldWord) + uint32(oldWord-0x100)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(out[14+10:], ^uint16(sum))
	*fb = buf
	// Sent from a receive path: the short wait applies (see twoWayWaitLimit).
	f.s.delivering.Add(1)
	r.out.link.sendFrame(fb)
	f.s.delivering.Add(-1)
	f.forwarded.Add(1)
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
func (f *fastPath) route(dst [4]byte) fastRoute {
	now := time.Now().UnixNano()
	f.mu.RLock()
	r, ok := f.routes[dst]
	f.mu.RUnlock()
	if ok && now < r.expires {
		return r
	}
	r = f.lookup(dst)
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
func (f *fastPath) lookup(dst [4]byte) fastRoute {
	s := f.s.s
	a := tcpip.AddrFrom4(dst)
	if s.CheckLocalAddress(0, ipv4.ProtocolNumber, a) != 0 {
		return fastRoute{}
	}
	rt, err := s.FindRoute(0, tcpip.Address{}, a, ipv4.ProtocolNumber, false)
	if err != nil {
		return fastRoute{}
	}
	defer rt.Release()
	out := f.s.nicByID(rt.NICID())
	if out == nil || out.link == nil {
		return fastRoute{}
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
