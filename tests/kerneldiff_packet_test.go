package tests

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// The differential harness crafts and reads raw frames itself: this file
// holds its small IPv4/IPv6 + TCP/UDP/ICMP encoder and decoder (the tests
// do not import gVisor, and the kernel is the judge of the checksums: a
// probe with a bad one would never be answered).

const (
	kdProtoICMP   = 1
	kdProtoTCP    = 6
	kdProtoUDP    = 17
	kdProtoICMPv6 = 58
)

// TCP flag bits.
const (
	kdFIN = 1 << iota
	kdSYN
	kdRST
	kdPSH
	kdACK
	kdURG
)

// kdPacket is an IP packet reduced to the fields the harness sets and
// compares.
type kdPacket struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16 // TCP, UDP
	flags        uint8  // TCP
	seq, ack     uint32 // TCP
	icmpType     uint8
	icmpCode     uint8
	id, icmpSeq  uint16 // ICMP echo
	payload      []byte
	// inner is the packet an ICMP error quotes (decoded as far as the
	// quote goes: addresses and ports or echo id).
	inner *kdPacket
}

func (p *kdPacket) v6() bool { return p.src.Is6() }

// isICMP reports whether the packet is ICMP of its family.
func (p *kdPacket) isICMP() bool {
	return p.proto == kdProtoICMP || p.proto == kdProtoICMPv6
}

// isEcho reports whether the packet is an echo request or reply.
func (p *kdPacket) isEcho() bool {
	if !p.isICMP() {
		return false
	}
	if p.proto == kdProtoICMPv6 {
		return p.icmpType == 128 || p.icmpType == 129
	}
	return p.icmpType == 8 || p.icmpType == 0
}

// isICMPError reports whether the packet is an ICMP error message.
func (p *kdPacket) isICMPError() bool {
	if !p.isICMP() {
		return false
	}
	if p.proto == kdProtoICMPv6 {
		return p.icmpType < 128
	}
	switch p.icmpType {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

func kdChecksum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func kdFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pseudo returns the sum of the pseudo-header of a transport segment.
func (p *kdPacket) pseudo(length int) uint32 {
	s, d := p.src.AsSlice(), p.dst.AsSlice()
	sum := kdChecksum(kdChecksum(0, s), d)
	return sum + uint32(p.proto) + uint32(length)
}

// marshal encodes the packet (IP header and all) with valid checksums.
func (p *kdPacket) marshal() []byte {
	var l4 []byte
	switch p.proto {
	case kdProtoTCP:
		l4 = make([]byte, 20+len(p.payload))
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
		binary.BigEndian.PutUint32(l4[4:], p.seq)
		binary.BigEndian.PutUint32(l4[8:], p.ack)
		l4[12] = 5 << 4
		l4[13] = p.flags
		binary.BigEndian.PutUint16(l4[14:], 64240)
		copy(l4[20:], p.payload)
		binary.BigEndian.PutUint16(l4[16:], kdFold(kdChecksum(p.pseudo(len(l4)), l4)))
	case kdProtoUDP:
		l4 = make([]byte, 8+len(p.payload))
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		copy(l4[8:], p.payload)
		binary.BigEndian.PutUint16(l4[6:], kdFold(kdChecksum(p.pseudo(len(l4)), l4)))
	case kdProtoICMP, kdProtoICMPv6:
		var body []byte
		if p.inner != nil {
			body = p.inner.marshal()
		} else {
			body = p.payload
		}
		l4 = make([]byte, 8+len(body))
		l4[0], l4[1] = p.icmpType, p.icmpCode
		if p.isEcho() {
			binary.BigEndian.PutUint16(l4[4:], p.id)
			binary.BigEndian.PutUint16(l4[6:], p.icmpSeq)
		}
		copy(l4[8:], body)
		var sum uint32
		if p.proto == kdProtoICMPv6 {
			sum = p.pseudo(len(l4))
		}
		binary.BigEndian.PutUint16(l4[2:], kdFold(kdChecksum(sum, l4)))
	default:
		l4 = append([]byte(nil), p.payload...)
	}
	if p.v6() {
		h := make([]byte, 40, 40+len(l4))
		h[0] = 6 << 4
		binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
		h[6], h[7] = p.proto, 64
		copy(h[8:], p.src.AsSlice())
		copy(h[24:], p.dst.AsSlice())
		return append(h, l4...)
	}
	h := make([]byte, 20, 20+len(l4))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(h[4:], 0x4b44)
	h[8], h[9] = 64, p.proto
	copy(h[12:], p.src.AsSlice())
	copy(h[16:], p.dst.AsSlice())
	binary.BigEndian.PutUint16(h[10:], kdFold(kdChecksum(0, h)))
	return append(h, l4...)
}

// frame wraps the packet in an Ethernet header.
func (p *kdPacket) frame(dst, src []byte) []byte {
	f := make([]byte, 14, 14+60)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	if p.v6() {
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
	}
	return append(f, p.marshal()...)
}

// kdParseFrame decodes an Ethernet frame carrying IPv4 or IPv6; it returns
// nil for anything else.
func kdParseFrame(f []byte) *kdPacket {
	if len(f) < 14 {
		return nil
	}
	return kdParseIP(f[14:], false)
}

// kdParseIP decodes an IP packet. A quoted packet (in an ICMP error) may be
// truncated: then only what is there is decoded.
func kdParseIP(b []byte, quoted bool) *kdPacket {
	if len(b) < 1 {
		return nil
	}
	p := &kdPacket{}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return nil
		}
		ihl := int(b[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || len(b) < ihl {
			return nil
		}
		if total >= ihl && total < len(b) {
			b = b[:total] // Ethernet padding
		}
		p.src = netip.AddrFrom4([4]byte(b[12:16]))
		p.dst = netip.AddrFrom4([4]byte(b[16:20]))
		p.proto = b[9]
		l4 = b[ihl:]
	case 6:
		if len(b) < 40 {
			return nil
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if 40+plen < len(b) {
			b = b[:40+plen]
		}
		p.src = netip.AddrFrom16([16]byte(b[8:24]))
		p.dst = netip.AddrFrom16([16]byte(b[24:40]))
		p.proto = b[6]
		l4 = b[40:]
	default:
		return nil
	}
	switch p.proto {
	case kdProtoTCP:
		if len(l4) >= 4 {
			p.sport, p.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
		if len(l4) >= 8 {
			p.seq = binary.BigEndian.Uint32(l4[4:])
		}
		if len(l4) >= 14 {
			p.ack = binary.BigEndian.Uint32(l4[8:])
			p.flags = l4[13]
		}
		if len(l4) >= 20 && !quoted {
			if off := int(l4[12]>>4) * 4; off >= 20 && off <= len(l4) {
				p.payload = l4[off:]
			}
		}
	case kdProtoUDP:
		if len(l4) >= 4 {
			p.sport, p.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
		if len(l4) >= 8 && !quoted {
			p.payload = l4[8:]
		}
	case kdProtoICMP, kdProtoICMPv6:
		if len(l4) < 2 {
			return p
		}
		p.icmpType, p.icmpCode = l4[0], l4[1]
		if p.isEcho() && len(l4) >= 8 {
			p.id, p.icmpSeq = binary.BigEndian.Uint16(l4[4:]), binary.BigEndian.Uint16(l4[6:])
			if !quoted {
				p.payload = l4[8:]
			}
		}
		if p.isICMPError() && !quoted && len(l4) > 8 {
			p.inner = kdParseIP(l4[8:], true)
		}
	default:
		if !quoted {
			p.payload = l4
		}
	}
	return p
}

// kdFlagNames spells TCP flags the way tcpdump does.
func kdFlagNames(f uint8) string {
	var b strings.Builder
	for _, x := range []struct {
		bit uint8
		c   byte
	}{{kdSYN, 'S'}, {kdFIN, 'F'}, {kdRST, 'R'}, {kdPSH, 'P'}, {kdACK, 'A'}, {kdURG, 'U'}} {
		if f&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	if f&0xc0 != 0 {
		fmt.Fprintf(&b, "+%#x", f&0xc0)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// kdParseFlags reads tcpdump-style flag letters ("S", "SA", "R", "none").
func kdParseFlags(s string) (uint8, error) {
	if s == "none" {
		return 0, nil
	}
	var f uint8
	for _, c := range s {
		switch c {
		case 'S':
			f |= kdSYN
		case 'F':
			f |= kdFIN
		case 'R':
			f |= kdRST
		case 'P':
			f |= kdPSH
		case 'A':
			f |= kdACK
		case 'U':
			f |= kdURG
		default:
			return 0, fmt.Errorf("unknown TCP flag %q", c)
		}
	}
	return f, nil
}

// kdICMPName names an ICMP or ICMPv6 type and code the way the outcome
// summaries spell them.
func kdICMPName(v6 bool, typ, code uint8) string {
	if v6 {
		switch typ {
		case 1:
			if n, ok := map[uint8]string{0: "noroute", 1: "adm", 2: "beyond-scope", 3: "addr", 4: "port", 5: "policy", 6: "reject-route"}[code]; ok {
				return "unreach6-" + n
			}
		case 2:
			return "too-big6"
		case 3:
			return fmt.Sprintf("time-exceeded6/%d", code)
		case 4:
			return fmt.Sprintf("paramprob6/%d", code)
		case 128:
			return "echo-request"
		case 129:
			return "echo-reply"
		}
		return fmt.Sprintf("icmp6-%d/%d", typ, code)
	}
	switch typ {
	case 3:
		if n, ok := map[uint8]string{0: "net", 1: "host", 2: "proto", 3: "port", 4: "frag", 9: "net-prohibited", 10: "host-prohibited", 13: "admin"}[code]; ok {
			return "unreach-" + n
		}
	case 11:
		return fmt.Sprintf("time-exceeded/%d", code)
	case 8:
		return "echo-request"
	case 0:
		return "echo-reply"
	}
	return fmt.Sprintf("icmp-%d/%d", typ, code)
}

// TestKernelDiffPackets checks the harness's own encoder and decoder (no
// root needed): every probe of the rule sets survives a round trip, and its
// checksums verify.
func TestKernelDiffPackets(t *testing.T) {
	for idx, rs := range kdRuleSets {
		for i, pr := range rs.probes {
			s, err := kdParseProbe(pr, idx*100+i)
			if err != nil {
				t.Fatalf("%s: %q: %v", rs.name, pr.spec, err)
			}
			b := s.pkt.marshal()
			got := kdParseIP(b, false)
			if got == nil {
				t.Fatalf("%s: %q: does not decode", rs.name, pr.spec)
			}
			c := kdCanon{}
			if c.tuple(got) != c.tuple(s.pkt) || got.proto != s.pkt.proto || got.flags != s.pkt.flags ||
				string(got.payload) != string(s.pkt.payload) || got.icmpType != s.pkt.icmpType {
				t.Errorf("%s: %q: decoded as %+v", rs.name, pr.spec, got)
			}
			if s.pkt.inner != nil && (got.inner == nil || c.tuple(got.inner) != c.tuple(s.pkt.inner)) {
				t.Errorf("%s: %q: quote decoded as %+v", rs.name, pr.spec, got.inner)
			}
			if !s.pkt.v6() && kdFold(kdChecksum(0, b[:20])) != 0 {
				t.Errorf("%s: %q: bad IPv4 header checksum", rs.name, pr.spec)
			}
			hl := 20
			if s.pkt.v6() {
				hl = 40
			}
			l4 := b[hl:]
			var sum uint32
			switch {
			case s.pkt.proto == kdProtoTCP || s.pkt.proto == kdProtoUDP || s.pkt.proto == kdProtoICMPv6:
				sum = s.pkt.pseudo(len(l4))
			case s.pkt.proto != kdProtoICMP:
				continue
			}
			if kdFold(kdChecksum(sum, l4)) != 0 {
				t.Errorf("%s: %q: bad transport checksum", rs.name, pr.spec)
			}
		}
	}
}

// FuzzKernelDiffParse: the decoder of captured frames never panics.
func FuzzKernelDiffParse(f *testing.F) {
	p := &kdPacket{src: netip.MustParseAddr("192.0.2.2"), dst: netip.MustParseAddr("198.51.100.2"), proto: kdProtoICMP, icmpType: 3, icmpCode: 3,
		inner: &kdPacket{src: netip.MustParseAddr("198.51.100.2"), dst: netip.MustParseAddr("192.0.2.2"), proto: kdProtoTCP, sport: 1, dport: 2, flags: kdSYN}}
	f.Add(p.frame(make([]byte, 6), make([]byte, 6)))
	p6 := &kdPacket{src: netip.MustParseAddr("2001:db8::1"), dst: netip.MustParseAddr("2001:db8::2"), proto: kdProtoUDP, sport: 1, dport: 2, payload: []byte("x")}
	f.Add(p6.frame(make([]byte, 6), make([]byte, 6)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p := kdParseFrame(b); p != nil {
			kdRelevant(p)
			kdCanon{}.describe("x", p, &kdSent{pkt: p})
		}
	})
}
