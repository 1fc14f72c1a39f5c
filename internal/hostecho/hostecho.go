// Package hostecho is a kernel TCP and UDP echo service on 127.0.0.1 for
// tests: the host-side service a gateway exposes to a chain, counting what
// it echoed so that a test can check every byte arrived.
package hostecho

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// Server echoes TCP streams and UDP datagrams on one port of 127.0.0.1.
type Server struct {
	Port     uint16
	TCPBytes atomic.Int64 // bytes echoed on TCP connections that ended
	UDPMsgs  atomic.Int64 // datagrams echoed

	stopOnce sync.Once
	stop     func()
}

// Start starts a server; it stops when the test ends, or at Stop.
func Start(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Port: uint16(l.Addr().(*net.TCPAddr).Port)}
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.Port)))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				n, _ := io.Copy(c, c)
				s.TCPBytes.Add(n)
				c.Close()
			})
		}
	})
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			n, a, err := u.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.UDPMsgs.Add(1)
			u.WriteToUDPAddrPort(buf[:n], a)
		}
	})
	s.stop = func() { l.Close(); u.Close(); wg.Wait() }
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the listeners and waits for every connection to end.
func (s *Server) Stop() { s.stopOnce.Do(s.stop) }
