package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestHandleTCPAndUDP checks the hooks a relay is built on: attempts to a
// port nobody listens on reach the handler when match says so and are
// accepted or refused by it; the others get the stack's usual reset; UDP
// sessions get one connected socket each; dial errors unwrap to errnos;
// Abort resets.
func TestHandleTCPAndUDP(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "l.sock")
	st := buildStopped(t,
		cfg(t, "gw", false, nil, "eth0=unix-listen:"+sock+",ip=192.0.2.1/24"),
		cfg(t, "client", false, nil, "eth0=unix:"+sock+",ip=192.0.2.2/24"))
	gw, client := st[0], st[1]

	var matched, handled, udpSessions atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	gw.HandleTCP(16, func(src, dst netip.AddrPort) bool {
		matched.Add(1)
		return src.Addr() == netip.MustParseAddr("192.0.2.2") && dst.Port() >= 7000 && dst.Port() <= 7002
	}, func(r *TCPRequest) {
		handled.Add(1)
		switch r.Dst.Port() {
		case 7000: // echo
			c, err := r.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.CloseWrite()
				c.Close()
			}()
		case 7001:
			r.Refuse()
		case 7002: // accept, read a byte, then reset
			c, err := r.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err != nil {
				t.Errorf("port 7002: handler read: %v", err)
			}
			c.Abort()
		}
	})
	gw.HandleUDP(func(_, dst netip.AddrPort) bool { return dst.Port() == 5300 }, func(r *UDPRequest) {
		udpSessions.Add(1)
		c, err := r.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 100)
			for range 2 {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					t.Errorf("udp session: %v", err)
					return
				}
				c.Write(append([]byte("re:"), buf[:n]...))
			}
		}()
	})
	gw.Start()
	client.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gwAddr := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)
	}

	c, err := client.DialTCPConn(ctx, gwAddr(7000))
	if err != nil {
		t.Fatal(err)
	}
	// Every read has a deadline: a lost FIN or reset fails the test
	// rather than hanging it.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("hello"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello" {
		t.Errorf("echo through the handler: %q, %v", got, err)
	}

	for _, port := range []uint16{7001, 7003} {
		_, err := client.DialTCPConn(ctx, gwAddr(port))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("port %d: %v, want ECONNREFUSED", port, err)
		}
		if want := fmt.Sprintf("dial tcp %s: connect tcp %[1]s: connection was refused", gwAddr(port)); err == nil || err.Error() != want {
			t.Errorf("port %d: error %q, want %q", port, err, want)
		}
	}

	c, err = client.DialTCPConn(ctx, gwAddr(7002))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("x"))
	_, err = io.ReadAll(c)
	c.Close()
	if ne, ok := err.(net.Error); err == nil || ok && ne.Timeout() {
		t.Errorf("port 7002: read ended with %v, want a reset", err)
	}

	u, err := client.DialUDP(ctx, gwAddr(5300))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	for _, msg := range []string{"a", "b"} {
		u.SetDeadline(time.Now().Add(5 * time.Second))
		u.Write([]byte(msg))
		n, err := u.Read(buf)
		if err != nil || string(buf[:n]) != "re:"+msg {
			t.Errorf("udp %q: got %q, %v", msg, buf[:n], err)
		}
	}
	u.Close()

	// An address nobody has: the dial fails once neighbour resolution
	// gives up, with an errno.
	_, err = client.DialTCPConn(ctx, netip.MustParseAddrPort("192.0.2.99:80"))
	if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("dial to a missing neighbour: %v, want EHOSTUNREACH", err)
	}

	wg.Wait()
	// 7000, 7001, 7002 handled; 7003 matched and turned down.
	if m, h, s := matched.Load(), handled.Load(), udpSessions.Load(); m != 4 || h != 3 || s != 1 {
		t.Errorf("match called %d times, handler %d, UDP sessions %d; want 4, 3, 1", m, h, s)
	}
}
