package netstack

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/header/parse"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/rules"
)

// BenchmarkForwardRules20 walks a UDP packet of a new flow through the
// benchmark harness's 20-rule FORWARD chain (bench/rules/forward20.rules;
// it is accepted by the last rule): the cost rules add to every forwarded
// packet.
func BenchmarkForwardRules20(b *testing.B) {
	dir := b.TempDir()
	s, err := New(b.Context(), Config{Name: "r", Forwarding: true, NICs: []NICConfig{
		benchNIC(b, "eth0=none|file:"+filepath.Join(dir, "0")+",ip=192.0.2.1/24"),
		benchNIC(b, "eth1=none|file:"+filepath.Join(dir, "1")+",ip=198.51.100.1/24"),
	}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// The rule set of the benchmark harness's kernel-ends measurements.
	const file = "../bench/rules/forward20.rules"
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	rs := &rules.Ruleset{}
	if err := rs.AddFile(file, data, rules.ParseOptions{Family: rules.IPv4}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.ApplyRules(rs); err != nil {
		b.Fatal(err)
	}
	pkt := udpPacket(netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("198.51.100.2"), 40000, 9999)
	defer pkt.DecRef()
	ipt := s.s.IPTables()
	ipt.CheckPrerouting(pkt, nil, "eth0") // conntrack: a new flow
	if !ipt.CheckForward(pkt, "eth0", "eth1") {
		b.Fatal("the packet was not accepted")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if !ipt.CheckForward(pkt, "eth0", "eth1") {
			b.Fatal("dropped")
		}
	}
}

func benchNIC(b *testing.B, spec string) NICConfig {
	n, err := ParseNIC(spec)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// udpPacket builds a parsed IPv4/UDP packet as a NIC would deliver it.
func udpPacket(src, dst netip.Addr, sport, dport uint16) *stack.PacketBuffer {
	payload := make([]byte, 32)
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpipAddr(src), DstAddr: tcpipAddr(dst)})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(b[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(header.UDPMinimumSize + len(payload))})
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, tcpipAddr(src), tcpipAddr(dst), uint16(len(u)))
	u.SetChecksum(^u.CalculateChecksum(xsum))
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	parse.IPv4(pkt)
	pkt.TransportProtocolNumber = tcpip.TransportProtocolNumber(header.UDPProtocolNumber)
	parse.UDP(pkt)
	return pkt
}
