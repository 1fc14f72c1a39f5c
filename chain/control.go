package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nfpipe/nfpipe/internal/ctl"
	"github.com/nfpipe/nfpipe/vnf"
)

// The runner's control socket (Runtime.Control) speaks the functions'
// protocol (vnf/control.go), one JSON request line per connection, for the
// whole chain:
//
//	{"op":"status"}                               -> ChainStatus
//	{"op":"stats"[,"function":"fw"]}              -> ChainStats
//	{"op":"reload"[,"function":"fw"]}             -> {"ok":true} or {"error":...}
//	{"op":"capture","function":"fw","if":"eth1"}  -> {"ok":true}, then pcap
//	{"op":"down"}                                 -> {"ok":true}; the chain stops

// ControlRequest is one request to a chain's control socket.
type ControlRequest struct {
	Op       string `json:"op"`
	Function string `json:"function,omitempty"`
	If       string `json:"if,omitempty"`
}

// ChainStatus is what `chain status` shows.
type ChainStatus struct {
	Chain     string           `json:"chain"`
	Spec      string           `json:"spec"`
	PID       int              `json:"pid"`
	Started   time.Time        `json:"started"`
	Dir       string           `json:"runtime_dir"`
	Functions []FunctionStatus `json:"functions"`
}

// FunctionStatus is one function's state in a running chain.
type FunctionStatus struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Exit     int    `json:"exit"`
	Reason   string `json:"reason,omitempty"`
	Log      string `json:"log"`
}

// ChainStats holds every function's --stats=json report.
type ChainStats struct {
	Chain     string                     `json:"chain"`
	Functions map[string]json.RawMessage `json:"functions"`
	// Errors names the functions that could not be asked (not running).
	Errors map[string]string `json:"errors,omitempty"`
}

type controlServer struct {
	srv *ctl.Server
	r   *runner
}

func (r *runner) listenControl() (*controlServer, error) {
	c := &controlServer{r: r}
	srv, err := ctl.Listen(r.p.Runtime.Control, c.handle)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	return c, nil
}

func (c *controlServer) close() { c.srv.Close() }

func (c *controlServer) handle(conn net.Conn, line []byte) {
	enc := json.NewEncoder(conn)
	var req ControlRequest
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(vnf.ControlReply{Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	r := c.r
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch req.Op {
	case "status":
		enc.Encode(r.status())
	case "stats":
		fns, err := r.pick(req.Function)
		if err != nil {
			enc.Encode(vnf.ControlReply{Error: err.Error()})
			return
		}
		st := ChainStats{Chain: r.p.Chain, Functions: map[string]json.RawMessage{}}
		for _, f := range fns {
			var raw json.RawMessage
			if err := call(ctx, f.plan.Control, vnf.ControlRequest{Op: "stats"}, &raw); err != nil {
				if st.Errors == nil {
					st.Errors = map[string]string{}
				}
				st.Errors[f.plan.Name] = err.Error()
				continue
			}
			st.Functions[f.plan.Name] = raw
		}
		enc.Encode(st)
	case "reload":
		fns, err := r.pick(req.Function)
		if err != nil {
			enc.Encode(vnf.ControlReply{Error: err.Error()})
			return
		}
		var errs []string
		for _, f := range fns {
			var rep vnf.ControlReply
			if err := call(ctx, f.plan.Control, vnf.ControlRequest{Op: "reload"}, &rep); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", f.plan.Name, err))
			}
		}
		if len(errs) > 0 {
			enc.Encode(vnf.ControlReply{Error: strings.Join(errs, "; ")})
			return
		}
		enc.Encode(vnf.ControlReply{OK: true})
	case "capture":
		fns, err := r.pick(req.Function)
		if err == nil && req.Function == "" {
			err = errors.New("capture: say which function (function:interface)")
		}
		if err != nil {
			enc.Encode(vnf.ControlReply{Error: err.Error()})
			return
		}
		relayCapture(conn, fns[0].plan.Control, req.If, enc)
	case "down":
		enc.Encode(vnf.ControlReply{OK: true})
		r.requestStop()
	default:
		enc.Encode(vnf.ControlReply{Error: fmt.Sprintf("unknown op %q (want status, stats, reload, capture or down)", req.Op)})
	}
}

// pick returns the named function, or all of them for "".
func (r *runner) pick(name string) ([]*fnRun, error) {
	if name == "" {
		return r.fns, nil
	}
	var names []string
	for _, f := range r.fns {
		if f.plan.Name == name {
			return []*fnRun{f}, nil
		}
		names = append(names, f.plan.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no function %q in chain %s (have: %s)", name, r.p.Chain, strings.Join(names, ", "))
}

func (r *runner) status() ChainStatus {
	st := ChainStatus{Chain: r.p.Chain, Spec: r.p.Spec, PID: os.Getpid(), Started: r.started, Dir: r.p.Runtime.Dir}
	for _, f := range r.fns {
		f.mu.Lock()
		st.Functions = append(st.Functions, FunctionStatus{Name: f.plan.Name, Kind: f.plan.Kind, State: f.state, PID: f.pid,
			Restarts: f.restarts, Exit: f.exit, Reason: f.reason, Log: f.plan.Log})
		f.mu.Unlock()
	}
	return st
}

// relayCapture asks a function for a capture and copies its reply and
// pcap stream to the client until either side closes.
func relayCapture(client net.Conn, fnControl, ifName string, enc *json.Encoder) {
	fc, err := net.Dial("unix", fnControl)
	if err != nil {
		enc.Encode(vnf.ControlReply{Error: fmt.Sprintf("the function is not running: %v", err)})
		return
	}
	defer fc.Close()
	b, _ := json.Marshal(vnf.ControlRequest{Op: "capture", If: ifName})
	if _, err := fc.Write(append(b, '\n')); err != nil {
		enc.Encode(vnf.ControlReply{Error: err.Error()})
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(client, fc); done <- struct{}{} }()
	go func() { io.Copy(io.Discard, client); done <- struct{}{} }()
	<-done
}

// call sends one request to a control socket (a function's or a chain's)
// and decodes the reply; a reply carrying an error becomes the error.
func call(ctx context.Context, path string, req any, reply any) error {
	return ctl.Call(ctx, path, req, reply)
}

// Call sends one request to the chain whose runtime directory is dir.
func Call(ctx context.Context, dir string, req ControlRequest, reply any) error {
	return call(ctx, controlPath(dir), req, reply)
}

// Capture opens a live pcap stream of one function's interface in the
// chain at dir; read it until done, then close it.
func Capture(ctx context.Context, dir, function, ifName string) (io.ReadCloser, error) {
	conn, br, err := ctl.Open(ctx, controlPath(dir), ControlRequest{Op: "capture", Function: function, If: ifName})
	if err != nil {
		return nil, fmt.Errorf("the chain is not running: %w", err)
	}
	conn.SetDeadline(time.Time{}) // a capture runs until the caller stops it
	line, err := br.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("no reply: %w", err)
	}
	var r vnf.ControlReply
	if err := json.Unmarshal(line, &r); err != nil || !r.OK {
		conn.Close()
		if r.Error != "" {
			return nil, errors.New(r.Error)
		}
		return nil, fmt.Errorf("bad reply %q", line)
	}
	return struct {
		io.Reader
		io.Closer
	}{br, conn}, nil
}

func controlPath(dir string) string { return dir + "/control.sock" }
