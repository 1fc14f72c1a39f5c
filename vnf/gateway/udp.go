package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfpipe/nfpipe/netstack"
)

// maxDatagram holds any UDP payload.
const maxDatagram = 65535

// udpSession is one client's flow through a UDP rule: far is the socket
// the gateway opened towards the other side, reply sends a datagram back
// to the client. It ends after the rule's idle timeout without a datagram
// either way.
type udpSession struct {
	far   net.Conn
	reply func([]byte) error
	// expire, when set, is asked before the session ends for being idle;
	// false means it was used meanwhile and goes on.
	expire func() bool
	last   atomic.Int64 // unix nanoseconds of the last datagram
}

func (s *udpSession) touch() { s.last.Store(time.Now().UnixNano()) }

// idleDeadline is when the session expires if nothing more comes.
func (s *udpSession) idleDeadline(timeout time.Duration) time.Time {
	return time.Unix(0, s.last.Load()).Add(timeout)
}

// forwardUDP reads a forward's host socket until it closes, opening a
// session towards the inside address per client address and port.
func (g *gateway) forwardUDP(e *entry) {
	var mu sync.Mutex // guards sessions, and a session's expiry against its use
	sessions := map[netip.AddrPort]*udpSession{}
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := e.udpLn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Debug("forward: host socket read failed", "rule", e.text, "err", err.Error())
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		mu.Lock()
		s := sessions[client]
		if s != nil {
			s.touch() // under mu: the session cannot expire now
		}
		mu.Unlock()
		if s == nil {
			if s = g.openForwardSession(e, client, &mu, sessions); s == nil {
				continue
			}
		}
		s.far.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
		if _, err := s.far.Write(buf[:n]); err != nil {
			g.log.Debug("forward: datagram not sent into the chain", "rule", e.text, "err", err.Error())
			continue
		}
		e.c.datagramsToChain.Add(1)
		e.c.bytesToChain.Add(uint64(n))
	}
}

// openForwardSession opens a socket towards the inside address for a new
// host client, and the goroutine that returns the replies; nil when that
// cannot be (no route, or the gateway is stopping).
func (g *gateway) openForwardSession(e *entry, client netip.AddrPort, mu *sync.Mutex, sessions map[netip.AddrPort]*udpSession) *udpSession {
	e.c.accepted.Add(1)
	ic, err := g.stk.DialUDP(g.ctx, e.insideDst())
	if err != nil {
		// Connecting a UDP socket sends nothing: only the route lookup
		// can fail.
		e.c.failed.Add(1)
		e.c.unreachable.Add(1)
		g.log.Info("forward: no route to the inside address", "rule", e.text, "err", err.Error())
		return nil
	}
	if !g.track(ic) {
		ic.Close()
		return nil
	}
	s := &udpSession{far: ic, reply: func(b []byte) error {
		_, err := e.udpLn.WriteToUDPAddrPort(b, client)
		return err
	}}
	s.expire = func() bool {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().Before(s.idleDeadline(g.udpTimeout)) {
			return false // a datagram came in the meantime
		}
		delete(sessions, client)
		return true
	}
	s.touch()
	mu.Lock()
	sessions[client] = s
	mu.Unlock()
	forget := func() {
		mu.Lock()
		if sessions[client] == s {
			delete(sessions, client)
		}
		mu.Unlock()
		ic.Close()
		g.untrack(ic)
	}
	e.c.active.Add(1)
	if !g.spawn(func() {
		g.farLoop(e, s, &e.c.datagramsToHost, &e.c.bytesToHost)
		forget()
		e.c.active.Add(-1)
	}) {
		forget()
		e.c.active.Add(-1)
		return nil
	}
	return s
}

// farLoop relays what comes back on a session's far socket to its client
// until the session is idle for the timeout or its socket closes. A
// refusal (ICMP port unreachable) is counted and the session goes on, as a
// NAT's does.
func (g *gateway) farLoop(e *entry, s *udpSession, datagrams, bytes *atomic.Uint64) {
	buf := make([]byte, maxDatagram)
	for {
		deadline := s.idleDeadline(g.udpTimeout)
		if !time.Now().Before(deadline) {
			if s.expire == nil || s.expire() {
				e.c.expired.Add(1)
				return
			}
			continue
		}
		s.far.SetReadDeadline(deadline)
		n, err := s.far.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				continue
			case isRefused(err):
				e.c.failed.Add(1)
				e.c.refused.Add(1)
				continue
			}
			return
		}
		s.touch()
		if err := s.reply(buf[:n]); err != nil {
			g.log.Debug("datagram not returned to its client", "rule", e.text, "err", err.Error())
			continue
		}
		datagrams.Add(1)
		bytes.Add(uint64(n))
	}
}

// isRefused reports an ICMP port unreachable surfacing on a connected UDP
// socket: ECONNREFUSED from the kernel, the same words from the stack.
func isRefused(err error) bool {
	return netstack.IsRefused(err)
}

// matchUDP decides, in the packet path, which datagrams to the gateway's
// addresses start an expose session; the others get port unreachable.
func (g *gateway) matchUDP(_, dst netip.AddrPort) bool {
	if g.exposed("udp", dst) != nil {
		return true
	}
	g.deniedUDP.Add(1)
	return false
}

// exposeUDP starts a session for an inside client: its datagrams go to the
// host service from a socket of their own, and the replies come back.
func (g *gateway) exposeUDP(r *netstack.UDPRequest) {
	e := g.exposed("udp", r.Dst)
	ic, err := r.Accept()
	e.c.accepted.Add(1)
	if err != nil {
		e.c.fail(err)
		g.log.Info("expose: session not opened", "rule", e.text, "client", r.Src.String(), "err", err.Error())
		return
	}
	dst := e.hostDst(r.Dst.Port())
	if !g.spawn(func() { g.exposeSession(e, ic, dst) }) {
		ic.Close()
	}
}

func (g *gateway) exposeSession(e *entry, ic net.Conn, dst netip.AddrPort) {
	defer ic.Close()
	var d net.Dialer
	ctx, cancel := context.WithTimeout(g.ctx, g.dialTimeout)
	c, err := d.DialContext(ctx, "udp", dst.String())
	cancel()
	if err != nil {
		e.c.fail(err)
		g.log.Info("expose: cannot open a socket to the host service", "rule", e.text, "err", err.Error())
		return
	}
	defer c.Close()
	if !g.track(ic) {
		return
	}
	defer g.untrack(ic)
	if !g.track(c) {
		return
	}
	defer g.untrack(c)
	e.c.active.Add(1)
	defer e.c.active.Add(-1)
	s := &udpSession{far: c, reply: func(b []byte) error {
		ic.SetWriteDeadline(time.Now().Add(udpWriteTimeout))
		_, err := ic.Write(b)
		return err
	}}
	s.touch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			ic.SetReadDeadline(s.idleDeadline(g.udpTimeout))
			n, err := ic.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(s.idleDeadline(g.udpTimeout)) {
					continue
				}
				return
			}
			s.touch()
			if _, err := c.Write(buf[:n]); err != nil {
				if isRefused(err) {
					e.c.failed.Add(1)
					e.c.refused.Add(1)
				}
				continue
			}
			e.c.datagramsToHost.Add(1)
			e.c.bytesToHost.Add(uint64(n))
		}
	}()
	g.farLoop(e, s, &e.c.datagramsToChain, &e.c.bytesToChain)
	ic.Close()
	c.Close()
	<-done
}
