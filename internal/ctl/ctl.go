// Package ctl is the wire protocol of nfpipe's control sockets (a running
// function's --control socket, a chain runner's control.sock): a client
// connects to a unix socket, writes one JSON request on a line, and reads
// one JSON reply line (after which some requests stream raw bytes, such as
// a pcap capture). A reply with a non-empty "error" field is an error.
package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Reply is the reply of requests without a body of their own.
type Reply struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// Handler serves one connection whose request line has been read.
type Handler func(conn net.Conn, request []byte)

// Server accepts connections on a unix socket and hands each request to a
// Handler, in its own goroutine.
type Server struct {
	ln    *net.UnixListener
	h     Handler
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// Listen creates the socket at path, replacing a stale one (a socket file
// nobody listens on) but never a live one or another kind of file, and
// serves it with h. The socket file is removed by Close.
func Listen(path string, h Handler) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: something is listening on it already", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	s := &Server{ln: ln, h: h, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReaderSize(conn, 4096).ReadSlice('\n')
			if err == nil {
				conn.SetReadDeadline(time.Time{})
				s.h(conn, line)
			}
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, ends every open connection (streams included),
// waits for the handlers and removes the socket file.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Call sends req to the control socket at path and decodes the reply line
// into reply; a reply carrying an error becomes the returned error.
func Call(ctx context.Context, path string, req, reply any) error {
	conn, br, err := Open(ctx, path, req)
	if err != nil {
		return err
	}
	defer conn.Close()
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("no reply: %w", err)
	}
	var r Reply
	if json.Unmarshal(line, &r) == nil && r.Error != "" {
		return errors.New(r.Error)
	}
	return json.Unmarshal(line, reply)
}

// ErrNotRunning is wrapped by the errors of clients that found nobody
// listening on the socket.
var ErrNotRunning = errors.New("not running")

// Open connects, sends req and returns the connection and a reader of what
// follows, for requests that stream. The context's deadline, if any,
// applies to the whole connection.
func Open(ctx context.Context, path string, req any) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s: %v)", ErrNotRunning, path, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReader(conn), nil
}
