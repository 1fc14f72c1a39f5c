package netstack

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpReceiveBuffer is the receive buffer of UDP sockets opened here: large,
// so that a sink that falls behind a burst loses nothing.
const udpReceiveBuffer = 16 << 20

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	fa := tcpip.FullAddress{Port: ap.Port()}
	a := ap.Addr().Unmap()
	if a.IsValid() && !a.IsUnspecified() {
		fa.Addr = tcpipAddr(a)
	}
	if a.Is4() {
		return fa, ipv4.ProtocolNumber
	}
	return fa, ipv6.ProtocolNumber
}

// DialTCP opens a TCP connection from this stack (see DialTCPConn).
func (s *Stack) DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	c, err := s.DialTCPConn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListenTCP listens for TCP connections. An unspecified or invalid address
// listens on every address of both families.
func (s *Stack) ListenTCP(addr netip.AddrPort) (net.Listener, error) {
	var wq waiter.Queue
	fa, proto := fullAddr(addr)
	ep, terr := s.s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("listen tcp %s: %s", addr, terr)
	}
	if proto == ipv6.ProtocolNumber && fa.Addr.BitLen() == 0 {
		ep.SocketOptions().SetV6Only(false)
	}
	ep.SocketOptions().SetReuseAddress(true)
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("listen tcp %s: bind: %s", addr, terr)
	}
	if terr := ep.Listen(1024); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("listen tcp %s: %s", addr, terr)
	}
	return gonet.NewTCPListener(s.s, &wq, ep), nil
}

// DialUDP opens a connected UDP socket.
func (s *Stack) DialUDP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	fa, proto := fullAddr(addr)
	c, err := gonet.DialUDP(s.s, nil, &fa, proto)
	if err != nil {
		return nil, fmt.Errorf("dial udp %s: %w", addr, err)
	}
	return c, nil
}

// ListenUDP opens a UDP socket bound to addr. An unspecified or invalid
// address receives on every address of both families.
func (s *Stack) ListenUDP(addr netip.AddrPort) (net.PacketConn, error) {
	var wq waiter.Queue
	fa, proto := fullAddr(addr)
	ep, terr := s.s.NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("listen udp %s: %s", addr, terr)
	}
	if proto == ipv6.ProtocolNumber && fa.Addr.BitLen() == 0 {
		ep.SocketOptions().SetV6Only(false)
	}
	ep.SocketOptions().SetReceiveBufferSize(udpReceiveBuffer, true)
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("listen udp %s: bind: %s", addr, terr)
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// ReplyKind classifies what a Pinger received.
type ReplyKind int

// Reply kinds.
const (
	EchoReply ReplyKind = iota
	TimeExceeded
	Unreachable
	OtherICMP
)

// PingReply is one ICMP message received by a Pinger. For errors, ID and
// Seq come from the echo request quoted in the error.
type PingReply struct {
	From    netip.Addr
	Kind    ReplyKind
	Code    uint8
	ID, Seq uint16
	TTL     uint8
	Size    int // ICMP bytes, header included
}

// Pinger sends ICMP echo requests on a raw socket and receives replies and
// the errors routers send back (time exceeded, unreachable).
type Pinger struct {
	ep tcpip.Endpoint
	wq waiter.Queue
	v6 bool
}

// NewPinger opens a pinger for IPv4, or IPv6 when v6.
func (s *Stack) NewPinger(v6 bool) (*Pinger, error) {
	p := &Pinger{v6: v6}
	tp, np := icmp.ProtocolNumber4, ipv4.ProtocolNumber
	if v6 {
		tp, np = icmp.ProtocolNumber6, ipv6.ProtocolNumber
	}
	ep, err := s.s.NewRawEndpoint(tp, np, &p.wq, true)
	if err != nil {
		return nil, fmt.Errorf("open ICMP socket: %s", err)
	}
	if v6 {
		ep.SocketOptions().SetReceiveHopLimit(true)
	}
	p.ep = ep
	return p, nil
}

// Send sends one echo request.
func (p *Pinger) Send(dst netip.Addr, id, seq uint16, ttl uint8, payload []byte) error {
	b := make([]byte, header.ICMPv4MinimumSize+len(payload))
	copy(b[header.ICMPv4MinimumSize:], payload)
	if p.v6 {
		h := header.ICMPv6(b)
		h.SetType(header.ICMPv6EchoRequest)
		h.SetIdent(id)
		h.SetSequence(seq)
		// The raw socket fills in the ICMPv6 checksum (it needs the
		// pseudo-header the stack chooses).
		if err := p.ep.SetSockOptInt(tcpip.IPv6HopLimitOption, int(ttl)); err != nil {
			return fmt.Errorf("set hop limit: %s", err)
		}
	} else {
		h := header.ICMPv4(b)
		h.SetType(header.ICMPv4Echo)
		h.SetIdent(id)
		h.SetSequence(seq)
		h.SetChecksum(0)
		h.SetChecksum(^checksum(b))
		if err := p.ep.SetSockOptInt(tcpip.IPv4TTLOption, int(ttl)); err != nil {
			return fmt.Errorf("set ttl: %s", err)
		}
	}
	_, err := p.ep.Write(bytes.NewReader(b), tcpip.WriteOptions{To: &tcpip.FullAddress{Addr: tcpipAddr(dst)}})
	if err != nil {
		return fmt.Errorf("send echo request to %s: %s", dst, err)
	}
	return nil
}

// Recv waits until deadline for the next ICMP message. On timeout the error
// satisfies errors.Is(err, os.ErrDeadlineExceeded).
func (p *Pinger) Recv(deadline time.Time) (PingReply, error) {
	entry, ch := waiter.NewChannelEntry(waiter.ReadableEvents)
	p.wq.EventRegister(&entry)
	defer p.wq.EventUnregister(&entry)
	for {
		var buf bytes.Buffer
		res, err := p.ep.Read(&buf, tcpip.ReadOptions{NeedRemoteAddr: true})
		if _, ok := err.(*tcpip.ErrWouldBlock); ok {
			d := time.Until(deadline)
			if d <= 0 {
				return PingReply{}, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			select {
			case <-ch:
				t.Stop()
				continue
			case <-t.C:
				return PingReply{}, os.ErrDeadlineExceeded
			}
		}
		if err != nil {
			return PingReply{}, fmt.Errorf("receive ICMP: %s", err)
		}
		r, ok := p.parse(buf.Bytes(), res)
		if ok {
			return r, nil
		}
	}
}

func (p *Pinger) parse(b []byte, res tcpip.ReadResult) (PingReply, bool) {
	r := PingReply{From: netipAddr(res.RemoteAddr.Addr)}
	if p.v6 {
		if res.ControlMessages.HasHopLimit {
			r.TTL = res.ControlMessages.HopLimit
		}
		if len(b) < header.ICMPv6MinimumSize {
			return r, false
		}
		h := header.ICMPv6(b)
		r.Size, r.Code = len(b), uint8(h.Code())
		switch h.Type() {
		case header.ICMPv6EchoReply:
			r.Kind, r.ID, r.Seq = EchoReply, h.Ident(), h.Sequence()
			return r, true
		case header.ICMPv6TimeExceeded:
			r.Kind = TimeExceeded
		case header.ICMPv6DstUnreachable:
			r.Kind = Unreachable
		default:
			return r, false
		}
		// The quoted packet: IPv6 header, then our echo request.
		q := b[header.ICMPv6MinimumSize:]
		if len(q) < header.IPv6MinimumSize+8 || header.IPv6(q).TransportProtocol() != header.ICMPv6ProtocolNumber {
			return r, false
		}
		e := header.ICMPv6(q[header.IPv6MinimumSize:])
		r.ID, r.Seq = e.Ident(), e.Sequence()
		return r, e.Type() == header.ICMPv6EchoRequest
	}
	// An IPv4 raw socket reads the IP header too.
	if len(b) < header.IPv4MinimumSize {
		return r, false
	}
	ip := header.IPv4(b)
	r.TTL = ip.TTL()
	b = b[ip.HeaderLength():]
	if len(b) < header.ICMPv4MinimumSize {
		return r, false
	}
	h := header.ICMPv4(b)
	r.Size, r.Code = len(b), uint8(h.Code())
	switch h.Type() {
	case header.ICMPv4EchoReply:
		r.Kind, r.ID, r.Seq = EchoReply, h.Ident(), h.Sequence()
		return r, true
	case header.ICMPv4TimeExceeded:
		r.Kind = TimeExceeded
	case header.ICMPv4DstUnreachable:
		r.Kind = Unreachable
	default:
		return r, false
	}
	q := b[header.ICMPv4MinimumSize:]
	if len(q) < header.IPv4MinimumSize {
		return r, false
	}
	qh := header.IPv4(q)
	hl := int(qh.HeaderLength())
	if len(q) < hl+8 || qh.Protocol() != uint8(header.ICMPv4ProtocolNumber) {
		return r, false
	}
	e := header.ICMPv4(q[hl:])
	r.ID, r.Seq = e.Ident(), e.Sequence()
	return r, e.Type() == header.ICMPv4Echo
}

// Close closes the pinger's socket.
func (p *Pinger) Close() error {
	p.ep.Close()
	return nil
}

// checksum is the Internet checksum of b (RFC 1071), not yet inverted.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
