package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfpipe/nfpipe/netstack"
)

// relayBuffer is the copy buffer of one direction of a TCP relay: 64 KiB
// moves a large transfer in few stack calls.
const relayBuffer = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBuffer); return &b }}

// acceptTCP takes a forward's host connections until its socket closes.
func (g *gateway) acceptTCP(e *entry) {
	for {
		c, err := e.tcpLn.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, most likely: let some close.
			g.log.Warn("accept failed", "rule", e.text, "err", err.Error())
			time.Sleep(100 * time.Millisecond)
			continue
		}
		e.c.accepted.Add(1)
		if !g.spawn(func() { g.forwardTCP(e, c) }) {
			c.Close()
			return
		}
	}
}

// forwardTCP dials the inside address for a host connection and relays.
// When the inside cannot be reached, the host client's connection is
// reset, the nearest a proxy can come to the refusal it would have seen.
func (g *gateway) forwardTCP(e *entry, hc *net.TCPConn) {
	if !g.track(hc) {
		hc.Close()
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.dialTimeout)
	ic, err := g.stk.DialTCPConn(ctx, e.insideDst())
	cancel()
	if err != nil {
		reason := e.c.fail(err)
		g.log.Info("forward: the inside address did not take the connection", "rule", e.text, "client", hc.RemoteAddr().String(), "reason", reason, "err", err.Error())
		abortHost(hc)
		g.untrack(hc)
		return
	}
	g.relay(e, hc, ic)
	g.untrack(hc)
}

// matchTCP decides, in the stack's packet path, which connection attempts
// to the gateway's addresses exposeTCP takes; the others are reset.
func (g *gateway) matchTCP(_, dst netip.AddrPort) bool {
	if g.exposed("tcp", dst) != nil {
		return true
	}
	g.deniedTCP.Add(1)
	return false
}

// exposeTCP connects to the host service first and completes the inside
// handshake only when the host accepted: the inside client sees a refusal
// (a reset) when the host refuses or does not answer.
func (g *gateway) exposeTCP(r *netstack.TCPRequest) {
	e := g.exposed("tcp", r.Dst)
	if e == nil || !g.enter() {
		r.Refuse()
		return
	}
	defer g.wg.Done()
	e.c.accepted.Add(1)
	dst := e.hostDst(r.Dst.Port())
	ctx, cancel := context.WithTimeout(g.ctx, g.dialTimeout)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		reason := e.c.fail(err)
		g.log.Info("expose: the host service did not take the connection", "rule", e.text, "client", r.Src.String(), "reason", reason, "err", err.Error())
		r.Refuse()
		return
	}
	hc := c.(*net.TCPConn)
	if !g.track(hc) {
		hc.Close()
		r.Refuse()
		return
	}
	defer g.untrack(hc)
	ic, err := r.Accept()
	if err != nil {
		e.c.fail(err)
		g.log.Info("expose: the inside client went away during the handshake", "rule", e.text, "client", r.Src.String(), "err", err.Error())
		abortHost(hc)
		return
	}
	g.relay(e, hc, ic)
}

// relay copies both ways until both sides have finished: an end of
// stream is passed on as a half-close, an error (a reset) as a reset of
// the other side.
func (g *gateway) relay(e *entry, hc *net.TCPConn, ic *netstack.TCPConn) {
	if !g.track(ic) {
		ic.Close()
		hc.Close()
		return
	}
	defer g.untrack(ic)
	e.c.active.Add(1)
	defer e.c.active.Add(-1)
	var aborted atomic.Bool
	abort := func() {
		if aborted.CompareAndSwap(false, true) {
			abortHost(hc)
			ic.Abort()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(ic, hc, &e.c.bytesToChain, abort)
	}()
	pipe(hc, ic, &e.c.bytesToHost, abort)
	<-done
	if !aborted.Load() {
		hc.Close()
		ic.Close()
	}
}

// halfCloser is a connection whose sending side can be closed alone.
type halfCloser interface {
	io.ReadWriter
	CloseWrite() error
}

// pipe copies src to dst, counting the bytes written.
func pipe(dst, src halfCloser, n *atomic.Uint64, abort func()) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				abort()
				return
			}
			n.Add(uint64(k))
		}
		if rerr == io.EOF {
			dst.CloseWrite()
			return
		}
		if rerr != nil {
			abort()
			return
		}
	}
}

// abortHost closes a host connection with a reset.
func abortHost(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
