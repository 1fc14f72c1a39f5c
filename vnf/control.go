package vnf

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nfpipe/nfpipe/netstack"
)

// The control socket (--control PATH) lets a supervisor (the chain runner)
// or a user ask a running function for its state and tell it what to do.
// A client connects, writes one JSON request on a line and reads one JSON
// response line:
//
//	{"op":"status"}            -> Status
//	{"op":"stats"}             -> StatsReport
//	{"op":"reload"}            -> {"ok":true} or {"error":"..."}: re-read rules
//	{"op":"stop"}              -> {"ok":true}; the function stops as on SIGTERM
//	{"op":"capture","if":"X"}  -> {"ok":true}, then a pcap stream of X's
//	                              frames until the client closes
//
// The socket appears once the function has started (its servers bound and
// its frames flowing), so a supervisor can take its existence as readiness.

// ControlRequest is one request on the control socket.
type ControlRequest struct {
	Op string `json:"op"`
	If string `json:"if,omitempty"`
}

// ControlReply is the response to requests without a body of their own.
type ControlReply struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// Status is what a function says about itself.
type Status struct {
	Name       string                   `json:"name"`
	Kind       string                   `json:"kind"`
	PID        int                      `json:"pid"`
	Started    time.Time                `json:"started"`
	Interfaces []netstack.InterfaceInfo `json:"interfaces"`
}

type controlServer struct {
	ln      *net.UnixListener
	path    string
	log     *slog.Logger
	cfg     *Config
	stk     *netstack.Stack
	fn      Function
	rst     *ruleState
	stop    func()
	started time.Time
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
}

// listenControl creates the control socket at path, replacing a stale one
// (a socket file nobody listens on) but never a live one.
func listenControl(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another function is listening on it", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

func (c *controlServer) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.conns == nil {
			c.conns = map[net.Conn]bool{}
		}
		c.conns[conn] = true
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handle(conn)
			c.mu.Lock()
			delete(c.conns, conn)
			c.mu.Unlock()
		}()
	}
}

// close stops accepting, ends every connection (live captures included)
// and removes the socket file.
func (c *controlServer) close() {
	c.ln.Close()
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *controlServer) handle(conn net.Conn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(conn, 4096).ReadSlice('\n')
	if err != nil {
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req ControlRequest
	enc := json.NewEncoder(conn)
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(ControlReply{Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	switch req.Op {
	case "status":
		enc.Encode(Status{Name: c.cfg.Stack.Name, Kind: c.cfg.Kind, PID: os.Getpid(), Started: c.started, Interfaces: c.stk.Interfaces()})
	case "stats":
		enc.Encode(statsReport(c.cfg, c.stk, c.fn, c.rst))
	case "reload":
		if err := c.rst.apply(c.cfg, c.stk); err != nil {
			c.log.Error("reload failed; the old rules stay in force", "err", err.Error())
			enc.Encode(ControlReply{Error: err.Error()})
			return
		}
		c.log.Info("rules reloaded")
		enc.Encode(ControlReply{OK: true})
	case "stop":
		enc.Encode(ControlReply{OK: true})
		c.stop()
	case "capture":
		c.capture(conn, req.If, enc)
	default:
		enc.Encode(ControlReply{Error: fmt.Sprintf("unknown op %q (want status, stats, reload, stop or capture)", req.Op)})
	}
}

// capture streams a pcap of one interface on conn until the client closes
// it or the function stops.
func (c *controlServer) capture(conn net.Conn, ifName string, enc *json.Encoder) {
	// The stream is written by the stack's receive and send paths; conn is
	// closed by the capture when it ends, so hand the stack a wrapper whose
	// Close is idempotent.
	found := false
	var names []string
	for _, ifc := range c.stk.Interfaces() {
		found = found || ifc.Name == ifName
		names = append(names, ifc.Name)
	}
	if !found {
		enc.Encode(ControlReply{Error: fmt.Sprintf("no interface %q (have: %s)", ifName, strings.Join(names, ", "))})
		return
	}
	// The reply line first, then the pcap stream (its header at once).
	if err := enc.Encode(ControlReply{OK: true}); err != nil {
		return
	}
	w := &onceCloser{Conn: conn}
	stop, done, err := c.stk.Capture(ifName, w)
	if err != nil {
		return
	}
	defer stop()
	// The client sends nothing more; a read returns when it goes away.
	ended := make(chan struct{})
	go func() {
		var b [1]byte
		conn.Read(b[:])
		close(ended)
	}()
	select {
	case <-ended:
	case <-done:
	}
}

type onceCloser struct {
	net.Conn
	once sync.Once
}

func (o *onceCloser) Close() error {
	o.once.Do(func() { o.Conn.Close() })
	return nil
}

// startControl opens the control socket if cfg asks for one.
func startControl(cfg *Config, stk *netstack.Stack, fn Function, rst *ruleState, stop func(), log *slog.Logger) (*controlServer, error) {
	if cfg.Control == "" {
		return nil, nil
	}
	ln, err := listenControl(cfg.Control)
	if err != nil {
		return nil, err
	}
	c := &controlServer{ln: ln, path: cfg.Control, log: log, cfg: cfg, stk: stk, fn: fn, rst: rst, stop: stop, started: time.Now()}
	c.wg.Add(1)
	go c.serve()
	return c, nil
}

// errNoControl is returned by Control clients when nothing listens.
var errNoControl = errors.New("no function is listening on the control socket")

// Control sends one request to the control socket at path and decodes the
// JSON response into reply. It is the client side for tools and tests.
func Control(ctx context.Context, path string, req ControlRequest, reply any) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", path, errNoControl, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("%s: no reply: %w", path, err)
	}
	var r ControlReply
	if json.Unmarshal(line, &r) == nil && r.Error != "" {
		return errors.New(r.Error)
	}
	return json.Unmarshal(line, reply)
}
