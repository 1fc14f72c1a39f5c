package vnf

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nfpipe/nfpipe/internal/ctl"
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
type ControlReply = ctl.Reply

// Status is what a function says about itself.
type Status struct {
	Name       string                   `json:"name"`
	Kind       string                   `json:"kind"`
	PID        int                      `json:"pid"`
	Started    time.Time                `json:"started"`
	Interfaces []netstack.InterfaceInfo `json:"interfaces"`
}

type controlServer struct {
	srv     *ctl.Server
	log     *slog.Logger
	cfg     *Config
	stk     *netstack.Stack
	fn      Function
	rst     *ruleState
	place   fmt.Stringer
	stop    func()
	started time.Time
}

// close stops accepting, ends every connection (live captures included)
// and removes the socket file.
func (c *controlServer) close() { c.srv.Close() }

func (c *controlServer) handle(conn net.Conn, line []byte) {
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
		enc.Encode(statsReport(c.cfg, c.stk, c.fn, c.rst, c.place))
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
func startControl(cfg *Config, stk *netstack.Stack, fn Function, rst *ruleState, place fmt.Stringer, stop func(), log *slog.Logger) (*controlServer, error) {
	if cfg.Control == "" {
		return nil, nil
	}
	c := &controlServer{log: log, cfg: cfg, stk: stk, fn: fn, rst: rst, place: place, stop: stop, started: time.Now()}
	srv, err := ctl.Listen(cfg.Control, c.handle)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	return c, nil
}

// Control sends one request to the control socket at path and decodes the
// JSON response into reply. It is the client side for tools and tests.
func Control(ctx context.Context, path string, req ControlRequest, reply any) error {
	return ctl.Call(ctx, path, req, reply)
}
