package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// This file holds what a function that terminates connections and relays
// them elsewhere (the gateway kind) needs from its stack beyond plain
// sockets: connections it can reset, dial errors it can classify like a
// kernel's, and connection attempts it can decide on before answering them.

// TCPConn is a TCP connection on a Stack. Besides net.Conn it can half-close
// (CloseWrite) and abort with a reset, so that a relay can pass on both a
// clean end and a reset from the other side.
type TCPConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// Abort closes the connection with a reset instead of a FIN (SO_LINGER 0),
// as a proxy does when the connection it relays was reset.
func (c *TCPConn) Abort() error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	return c.TCPConn.Close()
}

// stackError is a gVisor error on the way out of this package: it prints as
// gVisor words it ("connection was refused") and unwraps to the errno a
// kernel socket would have failed with, so that callers classify failures
// of both with errors.Is(err, syscall.ECONNREFUSED).
type stackError struct {
	msg   string
	errno syscall.Errno
}

func (e *stackError) Error() string { return e.msg }
func (e *stackError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// Timeout reports whether the error is a timeout, like a net.Error.
func (e *stackError) Timeout() bool { return e.errno == syscall.ETIMEDOUT }

// errnoOf maps the gVisor errors a connection can fail with to errnos.
func errnoOf(err tcpip.Error) syscall.Errno {
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrHostUnreachable, *tcpip.ErrHostDown:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrNetworkUnreachable, *tcpip.ErrNoNet:
		return syscall.ENETUNREACH
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	}
	return 0
}

// IsRefused reports whether err is a refusal: ECONNREFUSED from the kernel
// or from DialTCPConn, or the stack's "connection was refused" on a UDP
// socket that got ICMP port unreachable (gonet passes only the words on).
func IsRefused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Err != nil && oe.Err.Error() == (&tcpip.ErrConnectionRefused{}).String()
}

// DialTCPConn opens a TCP connection from this stack. A failure unwraps to
// an errno (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, ...) or to
// ctx's error when ctx ended first.
func (s *Stack) DialTCPConn(ctx context.Context, addr netip.AddrPort) (*TCPConn, error) {
	fa, proto := fullAddr(addr)
	var wq waiter.Queue
	ep, terr := s.s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("dial tcp %s: %s", addr, terr)
	}
	entry, notify := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr = ep.Connect(fa)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, fmt.Errorf("dial tcp %s: %w", addr, ctx.Err())
		case <-notify:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		// The words of gonet.DialContextTCP, which this replaces.
		return nil, fmt.Errorf("dial tcp %s: %w", addr, &net.OpError{Op: "connect", Net: "tcp",
			Addr: net.TCPAddrFromAddrPort(addr), Err: &stackError{msg: terr.String(), errno: errnoOf(terr)}})
	}
	return &TCPConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}, nil
}

// TCPRequest is a connection attempt (a SYN) to one of the stack's own
// addresses, on a port no listener holds, that a HandleTCP function decides
// on before the handshake: it can first find out whether what it will relay
// the connection to answers, and refuse the attempt as a closed port would
// if not. Exactly one of Accept and Refuse must be called.
type TCPRequest struct {
	// Src is the client; Dst the address and port it asked for.
	Src, Dst netip.AddrPort

	r    *tcp.ForwarderRequest
	once sync.Once
}

// Accept completes the handshake and returns the connection. It waits for
// the client's ACK.
func (r *TCPRequest) Accept() (*TCPConn, error) {
	err := errors.New("tcp request already answered")
	var c *TCPConn
	r.once.Do(func() {
		var wq waiter.Queue
		ep, terr := r.r.CreateEndpoint(&wq)
		if terr != nil {
			r.r.Complete(true)
			err = fmt.Errorf("accept tcp %s from %s: %w", r.Dst, r.Src, &stackError{msg: terr.String(), errno: errnoOf(terr)})
			return
		}
		r.r.Complete(false)
		c, err = &TCPConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}, nil
	})
	return c, err
}

// Refuse answers the attempt with a reset, as a closed port does.
func (r *TCPRequest) Refuse() {
	r.once.Do(func() { r.r.Complete(true) })
}

// HandleTCP hands connection attempts to the stack's own addresses that no
// listener takes to fn, when match(src, dst) says so; the attempts match
// turns down are answered with a reset, as without a handler. match runs
// for every such SYN in the packet path and must be quick; fn runs in a
// goroutine of its own per attempt. At most maxInFlight attempts wait for
// fn at once; SYNs beyond are dropped (tcp.forward_max_in_flight_drop) and
// their clients retry. A stack has one TCP handler: a second call replaces
// the first.
func (s *Stack) HandleTCP(maxInFlight int, match func(src, dst netip.AddrPort) bool, fn func(*TCPRequest)) {
	fwd := tcp.NewForwarder(s.s, 0, maxInFlight, func(r *tcp.ForwarderRequest) {
		id := r.ID()
		fn(&TCPRequest{Src: endpointAddr(id.RemoteAddress, id.RemotePort), Dst: endpointAddr(id.LocalAddress, id.LocalPort), r: r})
	})
	s.s.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		// Only a first SYN is a new attempt; anything else to a port
		// nobody holds gets the stack's usual reset.
		h := header.TCP(pkt.TransportHeader().Slice())
		if len(h) < header.TCPMinimumSize || h.Flags()&(header.TCPFlagSyn|header.TCPFlagAck) != header.TCPFlagSyn {
			return false
		}
		if !match(endpointAddr(id.RemoteAddress, id.RemotePort), endpointAddr(id.LocalAddress, id.LocalPort)) {
			return false
		}
		return fwd.HandlePacket(id, pkt)
	})
}

// UDPRequest is the first datagram of a session (a client address and port
// the stack has no socket for) to one of the stack's own addresses, handed
// to a HandleUDP function.
type UDPRequest struct {
	// Src is the client; Dst the address and port it sent to.
	Src, Dst netip.AddrPort

	r *udp.ForwarderRequest
}

// Accept returns a socket bound to Dst and connected to Src that holds the
// datagram which started the session; later datagrams of the session
// arrive on it too. It must be called from the HandleUDP function itself,
// before it returns.
func (r *UDPRequest) Accept() (net.Conn, error) {
	var wq waiter.Queue
	ep, terr := r.r.CreateEndpoint(&wq)
	if terr != nil {
		return nil, fmt.Errorf("accept udp %s from %s: %s", r.Dst, r.Src, terr)
	}
	ep.SocketOptions().SetReceiveBufferSize(udpReceiveBuffer, true)
	return gonet.NewUDPConn(&wq, ep), nil
}

// HandleUDP hands datagrams to the stack's own addresses that no socket
// takes to fn, when match(src, dst) says so; the others are answered with
// ICMP port unreachable, as without a handler. fn runs in the packet path:
// it must call Accept and return quickly, leaving the session's work to a
// goroutine (to drop a session's datagrams, turn it down in match). A stack has one UDP handler:
// a second call replaces the first.
func (s *Stack) HandleUDP(match func(src, dst netip.AddrPort) bool, fn func(*UDPRequest)) {
	fwd := udp.NewForwarder(s.s, func(r *udp.ForwarderRequest) bool {
		id := r.ID()
		fn(&UDPRequest{Src: endpointAddr(id.RemoteAddress, id.RemotePort), Dst: endpointAddr(id.LocalAddress, id.LocalPort), r: r})
		return true
	})
	s.s.SetTransportProtocolHandler(udp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if !match(endpointAddr(id.RemoteAddress, id.RemotePort), endpointAddr(id.LocalAddress, id.LocalPort)) {
			return false
		}
		return fwd.HandlePacket(id, pkt)
	})
}

func endpointAddr(a tcpip.Address, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netipAddr(a), port)
}
