package netstack

import (
	"encoding/binary"
	"errors"
	"fmt"

	// Renamed: the package already has a func checksum, the byte loop
	// the pinger uses.
	gvchecksum "gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Software TCP segmentation (GSO/TSO) and checksum completion.
//
// Link endpoints may carry TCP segments far larger than the link MTU (up to
// 64 KiB per frame) between nfpipe processes and to and from TAP devices
// opened with IFF_VNET_HDR. Where such a frame has to leave on a link that
// takes only MTU-sized frames, it is split here, the way Linux's
// tcp_gso_segment splits it, and where a frame arrives with its transport
// checksum left partial (CHECKSUM_PARTIAL, virtio-net NEEDS_CSUM), it is
// finished here before it reaches a peer that expects a full checksum.

// Offsets in the IPv4 and IPv6 headers that the segmenter reads or rewrites:
// gVisor's header package names the TCP ones but keeps these unexported.
const (
	segIPv4TotalLen   = 2  // IPv4 total length
	segIPv4ID         = 4  // IPv4 identification
	segIPv4FragOff    = 6  // IPv4 flags and fragment offset
	segIPv4Proto      = 9  // IPv4 protocol
	segIPv4Checksum   = 10 // IPv4 header checksum
	segIPv4Addrs      = 12 // IPv4 source then destination address
	segIPv6PayloadLen = 4  // IPv6 payload length
	segIPv6NextHeader = 6  // IPv6 next header
	segIPv6Addrs      = 8  // IPv6 source then destination address

	// segIPv4FragMask covers the more-fragments flag and the fragment
	// offset: either set means the packet is a fragment, not a segment.
	segIPv4FragMask = 0x3fff

	// segUDPChecksumOff is where a UDP header keeps its checksum, the one
	// transport whose zero checksum means "none" and is sent as 0xffff.
	segUDPChecksumOff = 6
)

// tcpFrame locates the headers of an Ethernet frame carrying one TCP segment
// over IPv4 (any IHL, not a fragment) or IPv6 (fixed header only: the next
// header must be TCP, as extension headers are not supported). VLAN tags are
// not supported. Offsets are from the start of the frame.
type tcpFrame struct {
	l3      int  // offset of the IP header (always 14)
	l4      int  // offset of the TCP header
	payload int  // offset of the TCP payload
	end     int  // end of the IP packet (<= len(frame)); bytes after it are Ethernet padding
	v6      bool // IPv6 rather than IPv4
}

// parseTCPFrame locates the headers of the Ethernet frame carrying one TCP
// segment. ok is false when the frame is anything else or is inconsistent:
// a VLAN tag, another ethertype or transport, an IPv4 fragment, an IPv6
// extension header (or jumbogram), a header that does not fit, or an IP
// length running past the frame. Bytes after the IP length are accepted and
// ignored, as Linux trims them on receive: they are Ethernet padding.
// ok=false is a verdict, not a failure: it never panics on any input.
func parseTCPFrame(frame []byte) (tcpFrame, bool) {
	f, why := parseTCPFrameWhy(frame)
	return f, why == ""
}

// parseTCPFrameWhy is parseTCPFrame with the reason for a rejection, a
// constant string so that rejecting costs no allocation; "" means accepted.
func parseTCPFrameWhy(frame []byte) (tcpFrame, string) {
	const l3 = header.EthernetMinimumSize
	if len(frame) < l3 {
		return tcpFrame{}, "frame shorter than an Ethernet header"
	}
	f := tcpFrame{l3: l3}
	ip := frame[l3:]
	switch binary.BigEndian.Uint16(frame[12:]) {
	case uint16(header.IPv4ProtocolNumber):
		if len(ip) < header.IPv4MinimumSize {
			return tcpFrame{}, "truncated IPv4 header"
		}
		if ip[0]>>4 != header.IPv4Version {
			return tcpFrame{}, "IPv4 ethertype but IP version is not 4"
		}
		ihl := int(ip[0]&0xf) * 4
		if ihl < header.IPv4MinimumSize {
			return tcpFrame{}, "IPv4 header length below 20 bytes"
		}
		if ip[segIPv4Proto] != uint8(header.TCPProtocolNumber) {
			return tcpFrame{}, "IPv4 packet is not TCP"
		}
		if binary.BigEndian.Uint16(ip[segIPv4FragOff:])&segIPv4FragMask != 0 {
			return tcpFrame{}, "IPv4 fragment"
		}
		total := int(binary.BigEndian.Uint16(ip[segIPv4TotalLen:]))
		if total < ihl+header.TCPMinimumSize {
			return tcpFrame{}, "IPv4 total length too small for its header and a TCP header"
		}
		if total > len(ip) {
			return tcpFrame{}, "IPv4 total length runs past the frame"
		}
		f.l4 = l3 + ihl
		f.end = l3 + total
	case uint16(header.IPv6ProtocolNumber):
		if len(ip) < header.IPv6MinimumSize {
			return tcpFrame{}, "truncated IPv6 header"
		}
		if ip[0]>>4 != header.IPv6Version {
			return tcpFrame{}, "IPv6 ethertype but IP version is not 6"
		}
		if ip[segIPv6NextHeader] != uint8(header.TCPProtocolNumber) {
			return tcpFrame{}, "IPv6 next header is not TCP (extension headers are not supported)"
		}
		// A payload length of 0 is a jumbogram (RFC 2675), which needs a
		// hop-by-hop header and is rejected here with the runts.
		payload := int(binary.BigEndian.Uint16(ip[segIPv6PayloadLen:]))
		if payload < header.TCPMinimumSize {
			return tcpFrame{}, "IPv6 payload length too small for a TCP header"
		}
		if header.IPv6MinimumSize+payload > len(ip) {
			return tcpFrame{}, "IPv6 payload length runs past the frame"
		}
		f.l4 = l3 + header.IPv6MinimumSize
		f.end = f.l4 + payload
		f.v6 = true
	case 0x8100, 0x88a8, 0x9100:
		return tcpFrame{}, "VLAN tags are not supported"
	default:
		return tcpFrame{}, "ethertype is neither IPv4 nor IPv6"
	}
	// The IP length checks above guarantee the fixed TCP header is there.
	doff := int(frame[f.l4+header.TCPDataOffset]>>4) * 4
	if doff < header.TCPMinimumSize {
		return tcpFrame{}, "TCP data offset below 20 bytes"
	}
	if f.l4+doff > f.end {
		return tcpFrame{}, "TCP header runs past the IP packet"
	}
	f.payload = f.l4 + doff
	return f, ""
}

// tcpPseudoHeaderSum is the one-complement sum of the TCP pseudo-header of f
// without its length: source and destination addresses and protocol 6.
func tcpPseudoHeaderSum(frame []byte, f tcpFrame) uint16 {
	addrs := frame[f.l3+segIPv4Addrs : f.l3+segIPv4Addrs+2*header.IPv4AddressSize]
	if f.v6 {
		addrs = frame[f.l3+segIPv6Addrs : f.l3+segIPv6Addrs+2*header.IPv6AddressSize]
	}
	// The zero byte and the protocol byte of the pseudo-header form the
	// 16-bit word 0x0006, so the protocol is the initial sum.
	return gvchecksum.Checksum(addrs, uint16(header.TCPProtocolNumber))
}

// finishChecksum completes a frame whose transport checksum was left partial
// (CHECKSUM_PARTIAL in Linux, VIRTIO_NET_HDR_F_NEEDS_CSUM in virtio-net): the
// 16-bit field at start+off holds the folded pseudo-header sum; the Internet
// checksum is computed over frame[start:end] and its complement stored at
// start+off. end is explicit so that Ethernet padding after the IP packet
// stays out of the sum: pass tcpFrame.end, or len(frame) when the frame has
// no padding. For UDP (off == 6) a result of 0 is stored as 0xffff, since a
// zero UDP checksum means none was computed (RFC 768).
//
// It returns an error, and leaves frame unchanged, when the field does not
// lie inside frame[start:end] or the range is not inside frame.
func finishChecksum(frame []byte, start, off, end int) error {
	switch {
	case start < 0 || off < 0:
		return fmt.Errorf("finish checksum: negative start %d or offset %d", start, off)
	case end > len(frame):
		return fmt.Errorf("finish checksum: end %d is past the frame of %d bytes", end, len(frame))
	case start > end:
		return fmt.Errorf("finish checksum: start %d is past end %d", start, end)
	case off > end-start-gvchecksum.Size: // not start+off+2 > end, which can overflow
		return fmt.Errorf("finish checksum: field at %d+%d does not fit before end %d", start, off, end)
	}
	sum := ^gvchecksum.Checksum(frame[start:end], 0)
	if sum == 0 && off == segUDPChecksumOff {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(frame[start+off:], sum)
	return nil
}

// setPartialChecksum stores in the TCP checksum field of f the folded
// pseudo-header sum (source, destination, protocol 6, TCP length = end-l4),
// not complemented: what Linux and virtio expect in a CHECKSUM_PARTIAL /
// NEEDS_CSUM packet, before the device (or the kernel's GSO) finishes it
// with finishChecksum(frame, f.l4, 16, f.end) or its own equivalent.
func setPartialChecksum(frame []byte, f tcpFrame) {
	sum := gvchecksum.Combine(tcpPseudoHeaderSum(frame, f), uint16(f.end-f.l4))
	binary.BigEndian.PutUint16(frame[f.l4+header.TCPChecksumOffset:], sum)
}

// errSegmentMSS is the error of segmentTCP for an MSS below 1.
var errSegmentMSS = errors.New("segment tcp: mss must be at least 1")

// segmentTCP splits the TCP segment in frame into frames of at most mss
// payload bytes each and calls emit with each new frame in order. It returns
// the number of frames emitted, or an error, before emitting anything, when
// frame is not a TCP segment parseTCPFrame accepts or mss < 1. frame itself
// is never modified, and Ethernet padding after its IP packet is dropped.
//
// Every output frame has the same Ethernet header and the same IP and TCP
// headers, options included, except that:
//   - IPv4: the total length is the frame's, the ID is the original ID + i
//     (mod 2^16) for the i-th frame from 0, and the header checksum is
//     recomputed; DF, TOS and TTL are kept.
//   - IPv6: the payload length is the frame's.
//   - TCP: the sequence number is the original plus the offset of the chunk;
//     FIN and PSH are kept on the last frame only and CWR on the first only,
//     all other flags on every frame, as Linux does; the checksum is computed
//     in full from scratch, whatever the input's field held (partial, full or
//     garbage).
//
// A segment whose payload already fits in mss comes out as one frame with a
// full checksum.
//
// Memory: the output frames are carved out of a single allocation per call,
// without overlapping, and each has its capacity cut at its length, so emit
// may keep, modify or append to any of them without disturbing the others.
// Keeping any one of them keeps the whole allocation (about the size of the
// input plus one set of headers per frame) alive.
func segmentTCP(frame []byte, mss int, emit func([]byte)) (int, error) {
	if mss < 1 {
		return 0, errSegmentMSS
	}
	f, why := parseTCPFrameWhy(frame)
	if why != "" {
		return 0, errors.New("segment tcp: " + why)
	}
	hdrs := frame[:f.payload]
	payload := frame[f.payload:f.end]
	n := 1
	if len(payload) > mss {
		n = (len(payload) + mss - 1) / mss
	}
	buf := make([]byte, n*len(hdrs)+len(payload))

	pseudo := tcpPseudoHeaderSum(frame, f)
	seq := binary.BigEndian.Uint32(frame[f.l4+header.TCPSeqNumOffset:])
	id := binary.BigEndian.Uint16(frame[f.l3+segIPv4ID:])
	flags := frame[f.l4+header.TCPFlagsOffset]
	for i := range n {
		off := i * mss
		chunk := payload[off:min(len(payload), off+mss)]
		size := len(hdrs) + len(chunk)
		out := buf[:size:size]
		buf = buf[size:]
		copy(out, hdrs)
		copy(out[len(hdrs):], chunk)

		if f.v6 {
			binary.BigEndian.PutUint16(out[f.l3+segIPv6PayloadLen:], uint16(size-f.l4))
		} else {
			ip := out[f.l3:f.l4]
			binary.BigEndian.PutUint16(ip[segIPv4TotalLen:], uint16(size-f.l3))
			binary.BigEndian.PutUint16(ip[segIPv4ID:], id+uint16(i))
			binary.BigEndian.PutUint16(ip[segIPv4Checksum:], 0)
			binary.BigEndian.PutUint16(ip[segIPv4Checksum:], ^gvchecksum.Checksum(ip, 0))
		}

		tcp := out[f.l4:]
		binary.BigEndian.PutUint32(tcp[header.TCPSeqNumOffset:], seq+uint32(off))
		fl := flags
		if i > 0 {
			fl &^= uint8(header.TCPFlagCwr)
		}
		if i < n-1 {
			fl &^= uint8(header.TCPFlagFin | header.TCPFlagPsh)
		}
		tcp[header.TCPFlagsOffset] = fl
		binary.BigEndian.PutUint16(tcp[header.TCPChecksumOffset:], 0)
		sum := gvchecksum.Checksum(tcp, gvchecksum.Combine(pseudo, uint16(len(tcp))))
		binary.BigEndian.PutUint16(tcp[header.TCPChecksumOffset:], ^sum)
		emit(out)
	}
	return n, nil
}
