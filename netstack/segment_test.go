package netstack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvchecksum "gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// segTestMSS is the MSS of most segmentation tests: a 1500-byte MTU less
// IPv4, TCP and the 12 bytes of the timestamp option.
const segTestMSS = 1448

// segTestTCPLen is the TCP header length of every test frame: 20 bytes and
// the timestamp option padded with two NOPs.
const segTestTCPLen = 32

// segTestFlags are the TCP flags of a test frame unless it asks for others:
// every flag segmentation treats specially, and one (ECE) it must leave alone.
const segTestFlags = header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin | header.TCPFlagCwr | header.TCPFlagEce

// The addresses of the test frames (RFC 5737 and RFC 3849 documentation
// prefixes).
var (
	segTestSrc4 = tcpip.AddrFrom4([4]byte{192, 0, 2, 1})
	segTestDst4 = tcpip.AddrFrom4([4]byte{198, 51, 100, 2})
	segTestSrc6 = tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
	segTestDst6 = tcpip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2})
)

// segTestSpec describes a frame for segTestFrame.
type segTestSpec struct {
	v6        bool
	ipOptions bool            // IPv4 only: a router alert option (IHL 6)
	payload   int             // TCP payload bytes
	seq       uint32          // TCP sequence number
	id        uint16          // IPv4 identification
	flags     header.TCPFlags // 0 means segTestFlags
	pad       int             // Ethernet padding after the IP packet
}

// segTestIPLen is the IP header length of the frames spec s describes.
func segTestIPLen(s segTestSpec) int {
	switch {
	case s.v6:
		return header.IPv6MinimumSize
	case s.ipOptions:
		return header.IPv4MinimumSize + 4
	}
	return header.IPv4MinimumSize
}

// segTestEthernet writes an Ethernet header of type typ at the start of b.
func segTestEthernet(b []byte, typ tcpip.NetworkProtocolNumber) {
	header.Ethernet(b).Encode(&header.EthernetFields{
		SrcAddr: "\x02\x00\x00\x00\x00\x01",
		DstAddr: "\x02\x00\x00\x00\x00\x02",
		Type:    typ,
	})
}

// segTestIP writes at the start of b an IPv4 header (valid checksum, DF,
// TOS and TTL set) or an IPv6 one, with l4Len bytes of protocol proto after it.
func segTestIP(b []byte, s segTestSpec, proto tcpip.TransportProtocolNumber, l4Len int) {
	if s.v6 {
		header.IPv6(b).Encode(&header.IPv6Fields{
			TrafficClass:      0x28,
			FlowLabel:         0xabcde,
			PayloadLength:     uint16(l4Len),
			TransportProtocol: proto,
			HopLimit:          63,
			SrcAddr:           segTestSrc6,
			DstAddr:           segTestDst6,
		})
		return
	}
	fields := &header.IPv4Fields{
		TOS:         0x28,
		TotalLength: uint16(segTestIPLen(s) + l4Len),
		ID:          s.id,
		Flags:       header.IPv4FlagDontFragment,
		TTL:         63,
		Protocol:    uint8(proto),
		SrcAddr:     segTestSrc4,
		DstAddr:     segTestDst4,
	}
	if s.ipOptions {
		fields.Options = header.IPv4OptionsSerializer{&header.IPv4SerializableRouterAlertOption{}}
	}
	ip := header.IPv4(b)
	ip.Encode(fields)
	ip.SetChecksum(^ip.CalculateChecksum())
}

// segTestFrame builds the Ethernet frame s describes: one TCP segment with a
// timestamp option, a payload whose bytes follow their offset (period 251,
// so a chunk out of place shows), padding bytes 0xee, and a garbage TCP
// checksum, which segmentTCP must ignore.
func segTestFrame(tb testing.TB, s segTestSpec) []byte {
	tb.Helper()
	l3 := header.EthernetMinimumSize
	l4 := l3 + segTestIPLen(s)
	end := l4 + segTestTCPLen + s.payload
	if end-l3 > math.MaxUint16 {
		tb.Fatalf("payload %d does not fit in an IP packet", s.payload)
	}
	frame := make([]byte, end+s.pad)
	typ := header.IPv4ProtocolNumber
	if s.v6 {
		typ = header.IPv6ProtocolNumber
	}
	segTestEthernet(frame, typ)
	segTestIP(frame[l3:], s, header.TCPProtocolNumber, end-l4)
	flags := s.flags
	if flags == 0 {
		flags = segTestFlags
	}
	tcp := header.TCP(frame[l4:])
	tcp.Encode(&header.TCPFields{
		SrcPort:       40000,
		DstPort:       443,
		SeqNum:        s.seq,
		AckNum:        0x01020304,
		DataOffset:    segTestTCPLen,
		Flags:         flags,
		WindowSize:    502,
		Checksum:      0xdead,
		UrgentPointer: 0x55,
	})
	opts := tcp[header.TCPMinimumSize:segTestTCPLen]
	n := header.EncodeNOP(opts)
	n += header.EncodeNOP(opts[n:])
	header.EncodeTSOption(0x11223344, 0x55667788, opts[n:])
	for i := range s.payload {
		frame[l4+segTestTCPLen+i] = byte(i % 251)
	}
	for i := end; i < len(frame); i++ {
		frame[i] = 0xee
	}
	return frame
}

// segTestUDPFrame builds an Ethernet frame carrying one UDP datagram with
// payload and a zero checksum.
func segTestUDPFrame(v6 bool, payload []byte) []byte {
	s := segTestSpec{v6: v6}
	l3 := header.EthernetMinimumSize
	l4 := l3 + segTestIPLen(s)
	frame := make([]byte, l4+header.UDPMinimumSize+len(payload))
	typ := header.IPv4ProtocolNumber
	if v6 {
		typ = header.IPv6ProtocolNumber
	}
	segTestEthernet(frame, typ)
	segTestIP(frame[l3:], s, header.UDPProtocolNumber, len(frame)-l4)
	header.UDP(frame[l4:]).Encode(&header.UDPFields{
		SrcPort: 5353,
		DstPort: 53,
		Length:  uint16(len(frame) - l4),
	})
	copy(frame[l4+header.UDPMinimumSize:], payload)
	return frame
}

// segTestAddrs are the IP source and destination addresses of the frame f
// locates.
func segTestAddrs(frame []byte, f tcpFrame) (src, dst tcpip.Address) {
	if f.v6 {
		ip := header.IPv6(frame[f.l3:])
		return ip.SourceAddress(), ip.DestinationAddress()
	}
	ip := header.IPv4(frame[f.l3:])
	return ip.SourceAddress(), ip.DestinationAddress()
}

// segTestTCPChecksumValid reports whether the TCP checksum of the frame f
// locates verifies, by gVisor's code rather than ours.
func segTestTCPChecksumValid(frame []byte, f tcpFrame) bool {
	src, dst := segTestAddrs(frame, f)
	payload := frame[f.payload:f.end]
	return header.TCP(frame[f.l4:f.end]).IsChecksumValid(src, dst, gvchecksum.Checksum(payload, 0), uint16(len(payload)))
}

// segTestMaskRewritten returns a copy of the headers of the frame f locates
// with the fields that segmentation rewrites zeroed, so that what is left
// must be equal between input and output frames.
func segTestMaskRewritten(frame []byte, f tcpFrame) []byte {
	h := bytes.Clone(frame[:f.payload])
	zero := func(off, n int) { clear(h[off : off+n]) }
	if f.v6 {
		zero(f.l3+segIPv6PayloadLen, 2)
	} else {
		zero(f.l3+segIPv4TotalLen, 2)
		zero(f.l3+segIPv4ID, 2)
		zero(f.l3+segIPv4Checksum, 2)
	}
	zero(f.l4+header.TCPSeqNumOffset, 4)
	zero(f.l4+header.TCPFlagsOffset, 1)
	zero(f.l4+header.TCPChecksumOffset, 2)
	return h
}

// segTestCheck checks the frames that segmentTCP made of in with mss against
// its contract.
func segTestCheck(t *testing.T, in []byte, mss int, outs [][]byte) {
	t.Helper()
	f, ok := parseTCPFrame(in)
	if !ok {
		t.Fatal("input frame does not parse")
	}
	payload := in[f.payload:f.end]
	want := max(1, (len(payload)+mss-1)/mss)
	if len(outs) != want {
		t.Fatalf("got %d frames, want %d", len(outs), want)
	}
	inSeq := header.TCP(in[f.l4:]).SequenceNumber()
	inFlags := header.TCP(in[f.l4:]).Flags()
	inID := header.IPv4(in[f.l3:]).ID()
	inHeaders := segTestMaskRewritten(in, f)
	var joined []byte
	for i, out := range outs {
		of, ok := parseTCPFrame(out)
		if !ok {
			t.Fatalf("frame %d does not parse", i)
		}
		if of != (tcpFrame{l3: f.l3, l4: f.l4, payload: f.payload, end: len(out), v6: f.v6}) {
			t.Fatalf("frame %d: parsed as %+v, input as %+v", i, of, f)
		}
		chunk := out[of.payload:]
		if wantLen := min(mss, len(payload)-i*mss); len(chunk) != wantLen {
			t.Errorf("frame %d: %d payload bytes, want %d", i, len(chunk), wantLen)
		}
		joined = append(joined, chunk...)

		// Ethernet header, IP header and options, ports, ACK number,
		// window, urgent pointer and TCP options: all copied.
		if got := segTestMaskRewritten(out, of); !bytes.Equal(got, inHeaders) {
			t.Errorf("frame %d: headers differ beyond the rewritten fields:\n got %x\nwant %x", i, got, inHeaders)
		}
		if f.v6 {
			if got, want := int(header.IPv6(out[of.l3:]).PayloadLength()), len(out)-of.l4; got != want {
				t.Errorf("frame %d: IPv6 payload length %d, want %d", i, got, want)
			}
		} else {
			ip := header.IPv4(out[of.l3:])
			if !ip.IsChecksumValid() {
				t.Errorf("frame %d: IPv4 header checksum %#04x does not verify", i, ip.Checksum())
			}
			if got, want := int(ip.TotalLength()), len(out)-of.l3; got != want {
				t.Errorf("frame %d: IPv4 total length %d, want %d", i, got, want)
			}
			if got, want := ip.ID(), inID+uint16(i); got != want {
				t.Errorf("frame %d: IPv4 ID %d, want %d", i, got, want)
			}
		}
		tcp := header.TCP(out[of.l4:])
		if got, want := tcp.SequenceNumber(), inSeq+uint32(i*mss); got != want {
			t.Errorf("frame %d: sequence number %d, want %d", i, got, want)
		}
		wantFlags := inFlags
		if i > 0 {
			wantFlags &^= header.TCPFlagCwr
		}
		if i < len(outs)-1 {
			wantFlags &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if tcp.Flags() != wantFlags {
			t.Errorf("frame %d: flags %v, want %v", i, tcp.Flags(), wantFlags)
		}
		if !segTestTCPChecksumValid(out, of) {
			t.Errorf("frame %d: TCP checksum %#04x does not verify", i, tcp.Checksum())
		}
	}
	if !bytes.Equal(joined, payload) {
		t.Errorf("the payloads joined (%d bytes) are not the input payload (%d bytes)", len(joined), len(payload))
	}
}

// segTestRun runs segmentTCP on frame and returns what it emitted, checking
// that the count it returns is the count it emitted and that frame was left
// alone.
func segTestRun(t *testing.T, frame []byte, mss int) [][]byte {
	t.Helper()
	orig := bytes.Clone(frame)
	var outs [][]byte
	n, err := segmentTCP(frame, mss, func(b []byte) { outs = append(outs, b) })
	if err != nil {
		t.Fatalf("segmentTCP: %v", err)
	}
	if n != len(outs) {
		t.Errorf("segmentTCP returned %d, emitted %d frames", n, len(outs))
	}
	if !bytes.Equal(frame, orig) {
		t.Error("segmentTCP modified its input")
	}
	return outs
}

// TestSegmentTCP splits IPv4 and IPv6 segments with payloads around the MSS
// boundaries, up to a 65000-byte IP packet, and checks every output frame
// against the contract (segTestCheck).
func TestSegmentTCP(t *testing.T) {
	type tc struct {
		name string
		spec segTestSpec
		mss  int
	}
	var tests []tc
	for _, v6 := range []bool{false, true} {
		family := "v4"
		if v6 {
			family = "v6"
		}
		maxPayload := 65000 - segTestIPLen(segTestSpec{v6: v6}) - segTestTCPLen
		for _, c := range []tc{
			{"empty", segTestSpec{}, segTestMSS},
			{"1 byte", segTestSpec{payload: 1}, segTestMSS},
			{"mss-1", segTestSpec{payload: segTestMSS - 1}, segTestMSS},
			{"mss", segTestSpec{payload: segTestMSS}, segTestMSS},
			{"mss+1", segTestSpec{payload: segTestMSS + 1}, segTestMSS},
			{"10 mss+7", segTestSpec{payload: 10*segTestMSS + 7}, segTestMSS},
			{"65000-byte IP packet", segTestSpec{payload: maxPayload}, segTestMSS},
			{"65000-byte IP packet, mss 536", segTestSpec{payload: maxPayload}, 536},
			{"mss 1", segTestSpec{payload: 5}, 1},
			{"mss above 64 KiB", segTestSpec{payload: maxPayload}, math.MaxInt},
			{"sequence number and ID wrap", segTestSpec{payload: 10*segTestMSS + 7, seq: math.MaxUint32 - 3000, id: math.MaxUint16 - 2}, segTestMSS},
			{"padding dropped", segTestSpec{payload: 1, pad: 5}, segTestMSS},
			{"padding dropped, segmented", segTestSpec{payload: 2*segTestMSS + 1, pad: 60}, segTestMSS},
			{"ack only", segTestSpec{payload: 3 * segTestMSS, flags: header.TCPFlagAck}, segTestMSS},
		} {
			c.name = family + "/" + c.name
			c.spec.v6 = v6
			tests = append(tests, c)
		}
	}
	tests = append(tests, tc{"v4/IP options", segTestSpec{ipOptions: true, payload: 3*segTestMSS - 1, seq: 7, id: 99}, segTestMSS})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := segTestFrame(t, tt.spec)
			outs := segTestRun(t, frame, tt.mss)
			segTestCheck(t, frame, tt.mss, outs)
		})
	}
}

// TestSegmentTCPFlags pins the flag distribution Linux's tcp_gso_segment
// makes: CWR on the first frame only, FIN and PSH on the last only, the
// rest on all.
func TestSegmentTCPFlags(t *testing.T) {
	const (
		ack = header.TCPFlagAck
		psh = header.TCPFlagPsh
		fin = header.TCPFlagFin
		cwr = header.TCPFlagCwr
		ece = header.TCPFlagEce
		urg = header.TCPFlagUrg
	)
	tests := []struct {
		name    string
		flags   header.TCPFlags
		payload int
		want    []header.TCPFlags
	}{
		{"ack psh fin cwr ece", ack | psh | fin | cwr | ece, 3 * segTestMSS, []header.TCPFlags{ack | cwr | ece, ack | ece, ack | psh | fin | ece}},
		{"ack", ack, 3 * segTestMSS, []header.TCPFlags{ack, ack, ack}},
		{"ack urg", ack | urg, 2*segTestMSS + 1, []header.TCPFlags{ack | urg, ack | urg, ack | urg}},
		{"two frames", ack | psh | cwr, segTestMSS + 1, []header.TCPFlags{ack | cwr, ack | psh}},
		{"one frame keeps all", ack | psh | fin | cwr, segTestMSS, []header.TCPFlags{ack | psh | fin | cwr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := segTestFrame(t, segTestSpec{payload: tt.payload, flags: tt.flags})
			outs := segTestRun(t, frame, segTestMSS)
			var got []header.TCPFlags
			for _, out := range outs {
				f, _ := parseTCPFrame(out)
				got = append(got, header.TCP(out[f.l4:]).Flags())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("flags %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSegmentTCPFramesIndependent checks the memory contract: emitted frames
// share one allocation, yet appending to one leaves the next alone.
func TestSegmentTCPFramesIndependent(t *testing.T) {
	frame := segTestFrame(t, segTestSpec{payload: 3 * segTestMSS})
	outs := segTestRun(t, frame, segTestMSS)
	second := bytes.Clone(outs[1])
	for i := range outs {
		if cap(outs[i]) != len(outs[i]) {
			t.Errorf("frame %d: capacity %d beyond its length %d", i, cap(outs[i]), len(outs[i]))
		}
	}
	_ = append(outs[0], 0xff, 0xff, 0xff, 0xff)
	if !bytes.Equal(outs[1], second) {
		t.Error("appending to frame 0 changed frame 1")
	}
}

// TestParseTCPFrame checks the offsets found in accepted frames, with IPv4
// options and with Ethernet padding.
func TestParseTCPFrame(t *testing.T) {
	tests := []struct {
		name string
		spec segTestSpec
		want tcpFrame
	}{
		{"v4", segTestSpec{payload: 10}, tcpFrame{l3: 14, l4: 34, payload: 66, end: 76}},
		{"v4 empty", segTestSpec{}, tcpFrame{l3: 14, l4: 34, payload: 66, end: 66}},
		{"v4 options", segTestSpec{ipOptions: true, payload: 10}, tcpFrame{l3: 14, l4: 38, payload: 70, end: 80}},
		{"v4 padded", segTestSpec{payload: 1, pad: 7}, tcpFrame{l3: 14, l4: 34, payload: 66, end: 67}},
		{"v6", segTestSpec{v6: true, payload: 10}, tcpFrame{l3: 14, l4: 54, payload: 86, end: 96, v6: true}},
		{"v6 padded", segTestSpec{v6: true, pad: 3}, tcpFrame{l3: 14, l4: 54, payload: 86, end: 86, v6: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseTCPFrame(segTestFrame(t, tt.spec))
			if !ok || got != tt.want {
				t.Errorf("parseTCPFrame = %+v, %v; want %+v, true", got, ok, tt.want)
			}
		})
	}
}

// segTestVLAN returns frame with an 802.1Q tag inserted after the MAC
// addresses.
func segTestVLAN(frame []byte) []byte {
	out := append([]byte(nil), frame[:12]...)
	out = append(out, 0x81, 0x00, 0x00, 0x07)
	return append(out, frame[12:]...)
}

// segTestHopByHop returns the IPv6 frame with an empty hop-by-hop options
// header (PadN) inserted before the TCP header.
func segTestHopByHop(frame []byte) []byte {
	const l4 = header.EthernetMinimumSize + header.IPv6MinimumSize
	out := append([]byte(nil), frame[:l4]...)
	out = append(out, uint8(header.TCPProtocolNumber), 0, 1, 4, 0, 0, 0, 0)
	out = append(out, frame[l4:]...)
	ip := header.IPv6(out[header.EthernetMinimumSize:])
	ip.SetNextHeader(uint8(header.IPv6HopByHopOptionsExtHdrIdentifier))
	ip.SetPayloadLength(ip.PayloadLength() + 8)
	return out
}

// TestSegmentTCPRejects feeds frames that are not one plain TCP segment, and
// bad MSS values: parseTCPFrame must refuse them and segmentTCP must say why
// without emitting anything.
func TestSegmentTCPRejects(t *testing.T) {
	// with returns a fresh frame built from spec and changed by edit, which
	// gets the whole frame and the frame from its IP header on.
	with := func(spec segTestSpec, edit func(frame, ip []byte)) []byte {
		frame := segTestFrame(t, spec)
		edit(frame, frame[header.EthernetMinimumSize:])
		return frame
	}
	v4 := segTestSpec{payload: 100}
	v6 := segTestSpec{v6: true, payload: 100}
	valid4 := segTestFrame(t, v4)
	valid6 := segTestFrame(t, v6)
	tests := []struct {
		name    string
		frame   []byte
		mss     int
		wantErr string
	}{
		{"empty", nil, segTestMSS, "segment tcp: frame shorter than an Ethernet header"},
		{"13 bytes", valid4[:13], segTestMSS, "segment tcp: frame shorter than an Ethernet header"},
		{"Ethernet header only", valid4[:14], segTestMSS, "segment tcp: truncated IPv4 header"},
		{"truncated IPv4 header", valid4[:14+19], segTestMSS, "segment tcp: truncated IPv4 header"},
		{"truncated TCP header", valid4[:34+19], segTestMSS, "segment tcp: IPv4 total length runs past the frame"},
		{"truncated IPv4 payload", valid4[:len(valid4)-1], segTestMSS, "segment tcp: IPv4 total length runs past the frame"},
		{"IPv4 version 6", with(v4, func(_, ip []byte) { ip[0] = 0x65 }), segTestMSS, "segment tcp: IPv4 ethertype but IP version is not 4"},
		{"IPv4 IHL 4", with(v4, func(_, ip []byte) { ip[0] = 0x44 }), segTestMSS, "segment tcp: IPv4 header length below 20 bytes"},
		{"IPv4 UDP", with(v4, func(_, ip []byte) { ip[9] = uint8(header.UDPProtocolNumber) }), segTestMSS, "segment tcp: IPv4 packet is not TCP"},
		{"IPv4 first fragment", with(v4, func(_, ip []byte) { ip[6] = 0x20 }), segTestMSS, "segment tcp: IPv4 fragment"},
		{"IPv4 later fragment", with(v4, func(_, ip []byte) { ip[6], ip[7] = 0x00, 0xb9 }), segTestMSS, "segment tcp: IPv4 fragment"},
		{"IPv4 total length below headers", with(v4, func(_, ip []byte) { binary.BigEndian.PutUint16(ip[2:], 39) }), segTestMSS, "segment tcp: IPv4 total length too small for its header and a TCP header"},
		{"TCP data offset 4", with(v4, func(frame, _ []byte) { frame[34+12] = 0x40 }), segTestMSS, "segment tcp: TCP data offset below 20 bytes"},
		{"TCP header past packet", with(segTestSpec{payload: 27}, func(frame, _ []byte) { frame[34+12] = 0xf0 }), segTestMSS, "segment tcp: TCP header runs past the IP packet"},
		{"VLAN tag", segTestVLAN(valid4), segTestMSS, "segment tcp: VLAN tags are not supported"},
		{"ARP", with(v4, func(frame, _ []byte) { frame[12], frame[13] = 0x08, 0x06 }), segTestMSS, "segment tcp: ethertype is neither IPv4 nor IPv6"},
		{"IPv6 truncated header", valid6[:14+39], segTestMSS, "segment tcp: truncated IPv6 header"},
		{"IPv6 truncated payload", valid6[:len(valid6)-1], segTestMSS, "segment tcp: IPv6 payload length runs past the frame"},
		{"IPv6 version 4", with(v6, func(_, ip []byte) { ip[0] = 0x40 }), segTestMSS, "segment tcp: IPv6 ethertype but IP version is not 6"},
		{"IPv6 hop-by-hop header", segTestHopByHop(valid6), segTestMSS, "segment tcp: IPv6 next header is not TCP (extension headers are not supported)"},
		{"IPv6 UDP", with(v6, func(_, ip []byte) { ip[6] = uint8(header.UDPProtocolNumber) }), segTestMSS, "segment tcp: IPv6 next header is not TCP (extension headers are not supported)"},
		{"IPv6 jumbogram", with(v6, func(_, ip []byte) { binary.BigEndian.PutUint16(ip[4:], 0) }), segTestMSS, "segment tcp: IPv6 payload length too small for a TCP header"},
		{"IPv6 payload below TCP header", with(v6, func(_, ip []byte) { binary.BigEndian.PutUint16(ip[4:], 19) }), segTestMSS, "segment tcp: IPv6 payload length too small for a TCP header"},
		{"mss 0", valid4, 0, "segment tcp: mss must be at least 1"},
		{"mss -1", valid6, -1, "segment tcp: mss must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := parseTCPFrame(tt.frame); ok != (tt.mss < 1) {
				t.Errorf("parseTCPFrame accepted = %v, want %v", ok, tt.mss < 1)
			}
			emitted := 0
			n, err := segmentTCP(tt.frame, tt.mss, func([]byte) { emitted++ })
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("segmentTCP error = %v, want %q", err, tt.wantErr)
			}
			if n != 0 || emitted != 0 {
				t.Errorf("segmentTCP returned %d, emitted %d frames on error", n, emitted)
			}
		})
	}
}

// TestParseTCPFrameTruncated cuts valid frames at every length: no prefix
// may be accepted (the IP length no longer fits), and none may panic.
func TestParseTCPFrameTruncated(t *testing.T) {
	for _, spec := range []segTestSpec{{payload: 40}, {ipOptions: true, payload: 3}, {v6: true, payload: 40}} {
		frame := segTestFrame(t, spec)
		for cut := range len(frame) {
			if f, ok := parseTCPFrame(frame[:cut]); ok {
				t.Errorf("v6=%v: %d of %d bytes accepted as %+v", spec.v6, cut, len(frame), f)
			}
			if _, err := segmentTCP(frame[:cut], segTestMSS, func([]byte) {}); err == nil {
				t.Errorf("v6=%v: segmentTCP accepted %d of %d bytes", spec.v6, cut, len(frame))
			}
		}
	}
}

// segTestForceSum sets the 16-bit word at off in frame[start:end] so that the
// one-complement sum of frame[start:end] becomes 0xffff: the checksum of the
// segment is then 0.
func segTestForceSum(frame []byte, start, off, end int) {
	binary.BigEndian.PutUint16(frame[off:], 0)
	binary.BigEndian.PutUint16(frame[off:], ^gvchecksum.Checksum(frame[start:end], 0))
}

// TestFinishChecksumTCP checks that setPartialChecksum stores gVisor's
// pseudo-header sum and that finishChecksum turns it into a checksum that
// verifies and equals the one segmentTCP computes from scratch.
func TestFinishChecksumTCP(t *testing.T) {
	tests := []struct {
		name      string
		spec      segTestSpec
		forceZero bool // make the checksum come out 0, which TCP sends as is
	}{
		{name: "v4", spec: segTestSpec{payload: 1000}},
		{name: "v4 odd payload", spec: segTestSpec{payload: 1001}},
		{name: "v4 empty", spec: segTestSpec{}},
		{name: "v4 options", spec: segTestSpec{ipOptions: true, payload: 77}},
		{name: "v4 padded", spec: segTestSpec{payload: 3, pad: 9}},
		{name: "v4 64 KiB", spec: segTestSpec{payload: math.MaxUint16 - header.IPv4MinimumSize - segTestTCPLen}},
		{name: "v6", spec: segTestSpec{v6: true, payload: 1000}},
		{name: "v6 odd payload", spec: segTestSpec{v6: true, payload: 1001}},
		{name: "v6 padded", spec: segTestSpec{v6: true, payload: 1, pad: 20}},
		{name: "v4 zero stays zero", spec: segTestSpec{payload: 100}, forceZero: true},
		{name: "v6 zero stays zero", spec: segTestSpec{v6: true, payload: 100}, forceZero: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := segTestFrame(t, tt.spec)
			f, ok := parseTCPFrame(frame)
			if !ok {
				t.Fatal("test frame does not parse")
			}
			setPartialChecksum(frame, f)
			tcp := header.TCP(frame[f.l4:f.end])
			src, dst := segTestAddrs(frame, f)
			if got, want := tcp.Checksum(), header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(f.end-f.l4)); got != want {
				t.Fatalf("setPartialChecksum stored %#04x, gVisor's pseudo-header sum is %#04x", got, want)
			}
			if tt.forceZero {
				segTestForceSum(frame, f.l4, f.payload, f.end)
			}
			if err := finishChecksum(frame, f.l4, header.TCPChecksumOffset, f.end); err != nil {
				t.Fatalf("finishChecksum: %v", err)
			}
			if !segTestTCPChecksumValid(frame, f) {
				t.Errorf("TCP checksum %#04x does not verify", tcp.Checksum())
			}
			if tt.forceZero && tcp.Checksum() != 0 {
				t.Errorf("TCP checksum %#04x, want 0", tcp.Checksum())
			}
			// segmentTCP computes the same full checksum from scratch.
			var out []byte
			if _, err := segmentTCP(frame, math.MaxInt, func(b []byte) { out = b }); err != nil {
				t.Fatalf("segmentTCP: %v", err)
			}
			if got, want := header.TCP(out[f.l4:]).Checksum(), tcp.Checksum(); got != want {
				t.Errorf("segmentTCP's checksum %#04x, finishChecksum's %#04x", got, want)
			}
		})
	}
}

// TestFinishChecksumUDP finishes partial UDP checksums, including one that
// comes out 0 and must be sent as 0xffff.
func TestFinishChecksumUDP(t *testing.T) {
	tests := []struct {
		name      string
		v6        bool
		payload   []byte
		forceZero bool // make the checksum come out 0, to be sent as 0xffff
	}{
		{name: "v4", payload: []byte("nfpipe!!")},
		{name: "v4 odd payload", payload: []byte("dns")},
		{name: "v4 empty", payload: nil},
		{name: "v6", v6: true, payload: bytes.Repeat([]byte{0xa5}, 1400)},
		{name: "v6 odd payload", v6: true, payload: []byte("odd")},
		{name: "v4 zero sent as 0xffff", payload: []byte("zero"), forceZero: true},
		{name: "v6 zero sent as 0xffff", v6: true, payload: []byte("zero"), forceZero: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := segTestUDPFrame(tt.v6, tt.payload)
			l4 := header.EthernetMinimumSize + segTestIPLen(segTestSpec{v6: tt.v6})
			f := tcpFrame{l3: header.EthernetMinimumSize, l4: l4, v6: tt.v6}
			src, dst := segTestAddrs(frame, f)
			udp := header.UDP(frame[l4:])
			udp.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, udp.Length()))
			if tt.forceZero {
				segTestForceSum(frame, l4, l4+header.UDPMinimumSize, len(frame))
			}
			if err := finishChecksum(frame, l4, 6, len(frame)); err != nil {
				t.Fatalf("finishChecksum: %v", err)
			}
			if !udp.IsChecksumValid(src, dst, gvchecksum.Checksum(udp.Payload(), 0)) {
				t.Errorf("UDP checksum %#04x does not verify", udp.Checksum())
			}
			if udp.Checksum() == 0 {
				t.Error("UDP checksum 0 (no checksum) stored")
			}
			if tt.forceZero && udp.Checksum() != 0xffff {
				t.Errorf("UDP checksum %#04x, want 0xffff", udp.Checksum())
			}
		})
	}
}

// TestFinishChecksumErrors checks the range checks of finishChecksum, which
// must leave the frame alone when it refuses.
func TestFinishChecksumErrors(t *testing.T) {
	tests := []struct {
		name            string
		start, off, end int
		wantErr         string
	}{
		{"field ends at end", 34, 16, 52, ""},
		{"field past end", 34, 16, 51, "finish checksum: field at 34+16 does not fit before end 51"},
		{"start past end", 50, 0, 40, "finish checksum: start 50 is past end 40"},
		{"start at end", 40, 0, 40, "finish checksum: field at 40+0 does not fit before end 40"},
		{"end past frame", 0, 6, 101, "finish checksum: end 101 is past the frame of 100 bytes"},
		{"negative start", -1, 6, 100, "finish checksum: negative start -1 or offset 6"},
		{"negative offset", 34, -2, 100, "finish checksum: negative start 34 or offset -2"},
		{"offset overflows", 34, math.MaxInt, 100, fmt.Sprintf("finish checksum: field at 34+%d does not fit before end 100", math.MaxInt)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := make([]byte, 100)
			for i := range frame {
				frame[i] = byte(i)
			}
			orig := bytes.Clone(frame)
			err := finishChecksum(frame, tt.start, tt.off, tt.end)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("finishChecksum: %v", err)
				}
				// The field held the pseudo-header sum: with it added back,
				// the range must now sum to 0xffff.
				pseudo := binary.BigEndian.Uint16(orig[tt.start+tt.off:])
				if got := gvchecksum.Checksum(frame[tt.start:tt.end], pseudo); got != 0xffff {
					t.Errorf("sum after finishing %#04x, want 0xffff", got)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("finishChecksum error = %v, want %q", err, tt.wantErr)
			}
			if !bytes.Equal(frame, orig) {
				t.Error("finishChecksum changed the frame on error")
			}
		})
	}
}

// FuzzSegmentTCP feeds arbitrary frames and MSS values to the segmenter: it
// must not panic, must accept exactly what parseTCPFrame accepts, and what it
// emits must parse again, carry the input payload in order, in chunks of at
// most mss, with valid checksums. Accepted inputs also go through
// setPartialChecksum and finishChecksum.
func FuzzSegmentTCP(f *testing.F) {
	// Small seeds: the fuzzer minimizes every input that finds new
	// coverage, at a cost that grows with its length times its frames.
	for _, s := range []segTestSpec{
		{payload: 40},
		{ipOptions: true, payload: 10, pad: 6},
		{v6: true, payload: 40},
		{v6: true},
	} {
		for _, mss := range []int{1, 7, 1448, 0} {
			f.Add(segTestFrame(f, s), mss)
		}
	}
	f.Add(segTestVLAN(segTestFrame(f, segTestSpec{payload: 10})), 1448)
	f.Add(segTestHopByHop(segTestFrame(f, segTestSpec{v6: true, payload: 10})), 1448)
	f.Add([]byte{}, 1)

	f.Fuzz(func(t *testing.T, frame []byte, mss int) {
		orig := bytes.Clone(frame)
		in, ok := parseTCPFrame(frame)
		var joined []byte
		emitted := 0
		n, err := segmentTCP(frame, mss, func(out []byte) {
			emitted++
			of, ok := parseTCPFrame(out)
			if !ok {
				t.Fatalf("emitted frame %d does not parse: %x", emitted, out)
			}
			if of.end != len(out) || of.payload-of.l4 != in.payload-in.l4 || of.v6 != in.v6 {
				t.Fatalf("emitted frame %d parses as %+v, input as %+v", emitted, of, in)
			}
			if len(out)-of.payload > mss {
				t.Fatalf("emitted frame %d: %d payload bytes, mss %d", emitted, len(out)-of.payload, mss)
			}
			if !of.v6 && !header.IPv4(out[of.l3:]).IsChecksumValid() {
				t.Fatalf("emitted frame %d: IPv4 header checksum does not verify", emitted)
			}
			if !segTestTCPChecksumValid(out, of) {
				t.Fatalf("emitted frame %d: TCP checksum does not verify", emitted)
			}
			joined = append(joined, out[of.payload:]...)
		})
		if !bytes.Equal(frame, orig) {
			t.Fatal("segmentTCP modified its input")
		}
		if wantOK := ok && mss >= 1; (err == nil) != wantOK {
			t.Fatalf("segmentTCP error = %v; parseTCPFrame ok = %v, mss %d", err, ok, mss)
		}
		if err != nil {
			if n != 0 || emitted != 0 {
				t.Fatalf("segmentTCP returned %d, emitted %d frames on error", n, emitted)
			}
			return
		}
		if n != emitted || n < 1 {
			t.Fatalf("segmentTCP returned %d, emitted %d frames", n, emitted)
		}
		if !bytes.Equal(joined, frame[in.payload:in.end]) {
			t.Fatal("the emitted payloads are not the input payload")
		}

		setPartialChecksum(frame, in)
		if err := finishChecksum(frame, in.l4, header.TCPChecksumOffset, in.end); err != nil {
			t.Fatalf("finishChecksum: %v", err)
		}
		if !segTestTCPChecksumValid(frame, in) {
			t.Fatal("TCP checksum does not verify after setPartialChecksum and finishChecksum")
		}
	})
}

// segTestMaxFrame is the largest IPv4 TCP segment: a 65535-byte IP packet.
func segTestMaxFrame(tb testing.TB) []byte {
	return segTestFrame(tb, segTestSpec{payload: math.MaxUint16 - header.IPv4MinimumSize - segTestTCPLen})
}

// BenchmarkSegmentTCP splits the largest IPv4 segment (65535-byte IP packet,
// 65483 bytes of payload) at MSS 1448, into 46 frames.
func BenchmarkSegmentTCP(b *testing.B) {
	frame := segTestMaxFrame(b)
	f, _ := parseTCPFrame(frame)
	b.SetBytes(int64(f.end - f.payload))
	b.ReportAllocs()
	frames := 0
	for b.Loop() {
		n, err := segmentTCP(frame, segTestMSS, func([]byte) {})
		if err != nil {
			b.Fatal(err)
		}
		frames = n
	}
	b.ReportMetric(float64(frames), "frames/op")
}

// BenchmarkFinishChecksum finishes the partial TCP checksum of the largest
// IPv4 segment (64 KiB summed).
func BenchmarkFinishChecksum(b *testing.B) {
	frame := segTestMaxFrame(b)
	f, _ := parseTCPFrame(frame)
	b.SetBytes(int64(f.end - f.l4))
	b.ReportAllocs()
	for b.Loop() {
		setPartialChecksum(frame, f)
		if err := finishChecksum(frame, f.l4, header.TCPChecksumOffset, f.end); err != nil {
			b.Fatal(err)
		}
	}
}
