package netstack

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/rules"
)

// natTarget is SNAT, DNAT, MASQUERADE and REDIRECT with address and port
// ranges, choosing addresses and ports the way Linux's nf_nat_core does, on
// top of gVisor's connection tracking (IPTPerformNAT). gVisor's own targets
// take one address and one port only, and its REDIRECT without --to-ports
// rewrites the port to 0.
type natTarget struct {
	kind     rules.NATKind
	min, max netip.Addr       // address range; invalid: keep the address
	ports    *rules.PortRange // nil: Linux's default port choice
}

// Action implements stack.Target.
func (t *natTarget) Action(pkt *stack.PacketBuffer, hook stack.Hook, r *stack.Route, addressEP stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	if len(pkt.NetworkHeader().Slice()) == 0 || len(pkt.TransportHeader().Slice()) == 0 {
		return stack.RuleDrop, 0
	}
	var info stack.ConnTrackInfo
	if !pkt.FillConnTrackInfo(stack.ConnTrackInfoOpts{}, &info) {
		return stack.RuleDrop, 0 // untracked: Linux cannot NAT it either
	}
	src, dst, _ := packetAddrs(pkt)
	sport, dport, hasPorts := transportPorts(pkt)
	icmp := pkt.TransportProtocolNumber == header.ICMPv4ProtocolNumber || pkt.TransportProtocolNumber == header.ICMPv6ProtocolNumber
	switch t.kind {
	case rules.SNAT, rules.Masquerade:
		var addr tcpip.Address
		changeAddr := true
		switch {
		case t.kind == rules.Masquerade:
			ep := addressEP.AcquireOutgoingPrimaryAddress(tcpipAddr(dst), tcpip.Address{}, false)
			if ep == nil {
				return stack.RuleDrop, 0
			}
			addr = ep.AddressWithPrefix().Address
			ep.DecRef()
		case t.min.IsValid():
			addr = tcpipAddr(linuxPickAddr(src, dst, t.min, t.max, false))
		default:
			changeAddr = false
		}
		// gVisor refuses an empty range before looking at the address, so
		// "no port change" still passes a one-port range.
		pr := stack.PortOrIdentRange{Start: sport, Size: 1}
		switch {
		case icmp:
			pr = stack.PortOrIdentRange{Start: 0, Size: math.MaxUint16 + 1}
		case t.ports != nil:
			pr = portRange(*t.ports)
		case hasPorts:
			pr = defaultSNATPorts(sport)
		}
		stack.IPTPerformNAT(pkt, hook, r, pr, addr, false, hasPorts || icmp, changeAddr)
	case rules.DNAT, rules.Redirect:
		var addr tcpip.Address
		changeAddr := true
		switch {
		case t.kind == rules.Redirect && hook == stack.Output:
			addr = header.IPv4Loopback
			if pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber {
				addr = header.IPv6Loopback
			}
		case t.kind == rules.Redirect:
			addr = addressEP.MainAddress().Address
		case t.min.IsValid():
			addr = tcpipAddr(linuxPickAddr(src, dst, t.min, t.max, true))
		default:
			changeAddr = false
		}
		pr := stack.PortOrIdentRange{Start: dport, Size: 1}
		changePort := t.ports != nil && hasPorts
		if changePort {
			// Linux keeps the port when it is in range; otherwise it
			// starts from the range's first port (gVisor would pick at
			// random).
			pr = portRange(*t.ports)
			if dport < t.ports.Min || dport > t.ports.Max {
				pr.Size = 1
			}
		}
		stack.IPTPerformNAT(pkt, hook, r, pr, addr, true, changePort, changeAddr)
	}
	return stack.RuleAccept, 0
}

func portRange(p rules.PortRange) stack.PortOrIdentRange {
	return stack.PortOrIdentRange{Start: p.Min, Size: uint32(p.Max) - uint32(p.Min) + 1}
}

// defaultSNATPorts is where SNAT without --to-ports may move a source port
// (iptables(8)): below 512 stays below 512, below 1024 stays below 1024,
// the rest stays at 1024 or above.
func defaultSNATPorts(p uint16) stack.PortOrIdentRange {
	switch {
	case p == 0:
		// Linux keeps port 0 when the tuple is unique; gVisor's range
		// starts at 1 and would move it.
		return stack.PortOrIdentRange{Start: 0, Size: 512}
	case p < 512:
		return stack.PortOrIdentRange{Start: 1, Size: 511}
	case p < 1024:
		return stack.PortOrIdentRange{Start: 1, Size: 1023}
	}
	return stack.PortOrIdentRange{Start: 1024, Size: math.MaxUint16 - 1023}
}

// transportPorts returns a TCP or UDP packet's ports.
func transportPorts(pkt *stack.PacketBuffer) (src, dst uint16, ok bool) {
	th := pkt.TransportHeader().Slice()
	switch pkt.TransportProtocolNumber {
	case header.TCPProtocolNumber, header.UDPProtocolNumber:
		if len(th) >= 4 {
			return binary.BigEndian.Uint16(th), binary.BigEndian.Uint16(th[2:]), true
		}
	}
	return 0, 0, false
}

// linuxPickAddr chooses an address from [min, max] for a connection from src
// to dst as Linux's find_best_ips_proto does: a jhash2 of the source address
// seeded with the destination, scaled into the range word by word, so the
// same client always gets the same address and nfpipe agrees with a Linux
// box on which one. dnat says which side is rewritten (the hash is the same).
func linuxPickAddr(src, dst, min, max netip.Addr, dnat bool) netip.Addr {
	if min == max {
		return min
	}
	words := func(a netip.Addr) (w [4]uint32) {
		// union nf_inet_addr: 16 bytes, an IPv4 address in the first 4,
		// read as host-order (little-endian) u32 words.
		var b [16]byte
		if a.Is4() {
			a4 := a.As4()
			copy(b[:], a4[:])
		} else {
			b = a.As16()
		}
		for i := range w {
			w[i] = binary.LittleEndian.Uint32(b[4*i:])
		}
		return w
	}
	sw, dw, minw, maxw := words(src), words(dst), words(min), words(max)
	last := 0
	if !min.Is4() {
		last = 3
	}
	j := jhash2(sw[:], dw[last])
	var out [4]uint32
	full := false
	for i := 0; i <= last; i++ {
		var lo, dist uint32
		if !full {
			lo, dist = bits.ReverseBytes32(minw[i]), bits.ReverseBytes32(maxw[i])-bits.ReverseBytes32(minw[i])+1
		} else {
			lo, dist = 0, math.MaxUint32
		}
		out[i] = bits.ReverseBytes32(lo + uint32((uint64(j)*uint64(dist))>>32))
		if out[i] != maxw[i] {
			full = true
		}
		j ^= dw[i]
	}
	var b [16]byte
	for i := range out {
		binary.LittleEndian.PutUint32(b[4*i:], out[i])
	}
	if min.Is4() {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// jhash2 is the Linux kernel's jhash2 (Bob Jenkins' lookup3 hashword).
func jhash2(k []uint32, initval uint32) uint32 {
	a := 0xdeadbeef + uint32(len(k))<<2 + initval
	b, c := a, a
	for len(k) > 3 {
		a += k[0]
		b += k[1]
		c += k[2]
		a -= c
		a ^= bits.RotateLeft32(c, 4)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 6)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 8)
		b += a
		a -= c
		a ^= bits.RotateLeft32(c, 16)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 19)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 4)
		b += a
		k = k[3:]
	}
	switch len(k) {
	case 3:
		c += k[2]
		fallthrough
	case 2:
		b += k[1]
		fallthrough
	case 1:
		a += k[0]
		c ^= b
		c -= bits.RotateLeft32(b, 14)
		a ^= c
		a -= bits.RotateLeft32(c, 11)
		b ^= a
		b -= bits.RotateLeft32(a, 25)
		c ^= b
		c -= bits.RotateLeft32(b, 16)
		a ^= c
		a -= bits.RotateLeft32(c, 4)
		b ^= a
		b -= bits.RotateLeft32(a, 14)
		c ^= b
		c -= bits.RotateLeft32(b, 24)
	}
	return c
}

// port0NoopTarget gives a connection from source port 0 the null SNAT
// binding Linux gives it (the port stays). Without it gVisor's own no-op
// NAT at POSTROUTING and INPUT moves port 0 to a random port below 512,
// since 0 is outside the 1-511 range it keeps low ports in. It is a hidden
// last rule before the nat table's SNAT-side policies.
type port0NoopTarget struct{}

// Action implements stack.Target.
func (port0NoopTarget) Action(pkt *stack.PacketBuffer, hook stack.Hook, r *stack.Route, _ stack.AddressableEndpoint) (stack.RuleVerdict, int) {
	var info stack.ConnTrackInfo
	if len(pkt.TransportHeader().Slice()) == 0 || !pkt.FillConnTrackInfo(stack.ConnTrackInfoOpts{}, &info) {
		return stack.RuleAccept, 0
	}
	stack.IPTPerformNAT(pkt, hook, r, stack.PortOrIdentRange{Start: 0, Size: 512}, tcpip.Address{}, false, true, false)
	return stack.RuleAccept, 0
}

// port0Matcher matches TCP and UDP packets from source port 0.
type port0Matcher struct{}

// Match implements stack.Matcher.
func (port0Matcher) Match(_ stack.Hook, pkt *stack.PacketBuffer, _, _ string) (bool, bool) {
	sport, _, ok := transportPorts(pkt)
	return ok && sport == 0, false
}
