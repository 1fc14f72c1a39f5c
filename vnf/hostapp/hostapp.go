// Package hostapp owns the applications that run on a host function's own
// user-space stack: the clients started with --run (ping, echo, gen, http,
// bulk) and the servers started with --serve (echo, sink, http, bulk).
//
// It parses their one-line specs, runs them against a small Net interface
// and reports what they did, both as human-readable lines and as a
// JSON-marshalable summary. It never touches gVisor: production hands it an
// adapter over a host's stack, tests an adapter over the real loopback.
package hostapp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/nfpipe/nfpipe/internal/suggest"
)

// Net is the network an application runs on: a host's own user-space stack
// in production, the real loopback in tests. All methods are safe for
// concurrent use.
type Net interface {
	// DialTCP opens a TCP connection to addr. It gives up when ctx ends.
	DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// ListenTCP listens for TCP connections on addr. An unspecified or
	// invalid (zero) address listens on all addresses of both families.
	ListenTCP(addr netip.AddrPort) (net.Listener, error)
	// DialUDP returns a UDP socket connected to addr. It gives up when ctx
	// ends.
	DialUDP(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// ListenUDP opens a UDP socket bound to addr. An unspecified or invalid
	// (zero) address binds to all addresses of both families.
	ListenUDP(addr netip.AddrPort) (net.PacketConn, error)
	// NewPinger opens an ICMP (v6 false) or ICMPv6 (v6 true) echo socket.
	NewPinger(v6 bool) (Pinger, error)
}

// Pinger sends ICMP or ICMPv6 echo requests and receives what comes back:
// echo replies and also errors such as time exceeded, so that a traceroute
// or a TTL test can see them. Send and Recv may be called concurrently from
// one sender and one receiver goroutine.
type Pinger interface {
	// Send sends one echo request to dst with the given identifier,
	// sequence number, TTL (hop limit) and payload.
	Send(dst netip.Addr, id, seq uint16, ttl uint8, payload []byte) error
	// Recv waits until deadline for the next reply. On timeout it returns
	// an error satisfying errors.Is(err, os.ErrDeadlineExceeded). For an
	// ICMP error, ID and Seq come from the echo request quoted in it.
	Recv(deadline time.Time) (PingReply, error)
	// Close releases the socket; a blocked Recv returns an error.
	Close() error
}

// ReplyKind says what kind of ICMP message a PingReply is.
type ReplyKind int

// The kinds of ICMP message a Pinger reports.
const (
	EchoReply    ReplyKind = iota // an echo reply
	TimeExceeded                  // time (hop limit) exceeded in transit
	Unreachable                   // destination unreachable, with a code
	OtherICMP                     // any other ICMP error quoting our request
)

// String returns the kind as iputils would print it.
func (k ReplyKind) String() string {
	switch k {
	case EchoReply:
		return "echo reply"
	case TimeExceeded:
		return "time exceeded"
	case Unreachable:
		return "destination unreachable"
	case OtherICMP:
		return "other ICMP"
	}
	return fmt.Sprintf("ReplyKind(%d)", int(k))
}

// PingReply is one message a Pinger received.
type PingReply struct {
	From netip.Addr // the sender: the target, or a router for errors
	Kind ReplyKind
	Code uint8  // the ICMP code (for Unreachable and OtherICMP)
	ID   uint16 // the echo identifier (of the quoted request for errors)
	Seq  uint16 // the echo sequence number (likewise)
	TTL  uint8  // the TTL (hop limit) of the IP packet carrying the reply
	Size int    // the ICMP message in bytes, including its 8-byte header
}

// Env is what an application gets when it runs.
type Env struct {
	// Net is the network to run on.
	Net Net
	// Out receives human-readable report lines (ping lines, summaries). It
	// may be shared between applications, so each Write is whole lines.
	// Nil discards them.
	Out io.Writer
	// Log receives operational logs. Nil discards them.
	Log *slog.Logger
	// Host is the function's name (the http server says it, so that a
	// client behind a load balancer can tell the backends apart).
	Host string
	// Expect is the host's --expect N: what a sink must have received by
	// the time it stops (UDP: datagrams, TCP: bytes, since a byte stream
	// has no messages). -1 means not set; other applications ignore it.
	Expect int64
}

// App is one parsed application instance. Run it once.
type App interface {
	// Name returns the application name: "ping", "echo", "gen", "http",
	// "bulk", "conns" or "sink".
	Name() string
	// Run runs the application. A client returns when it is done, with an
	// error on failure (loss, corruption, an unexpected status). A server
	// serves until ctx is cancelled and then returns nil, or an error for
	// a result that is wrong (a sink that missed Env.Expect) or a failure
	// to serve at all.
	Run(ctx context.Context, env *Env) error
	// Stats returns a JSON-marshalable summary of what the application has
	// done so far (counts, bytes, rates, a per-flow table). It is safe to
	// call while Run is running.
	Stats() any
}

// runApps and serveApps list the applications per mode; their parsers take
// the split spec.
var (
	runApps = map[string]func(*spec) (App, error){
		"bulk":  parseBulkClient,
		"conns": parseConns,
		"echo":  parseEchoClient,
		"gen":   parseGen,
		"http":  parseHTTPClient,
		"ping":  parsePing,
	}
	serveApps = map[string]func(*spec) (App, error){
		"bulk": parseBulkServer,
		"echo": parseEchoServer,
		"http": parseHTTPServer,
		"sink": parseSink,
	}
)

// ParseRun parses a --run spec: a client that runs to completion.
func ParseRun(spec string) (App, error) {
	return parseApp(spec, "--run", runApps, serveApps, "--serve")
}

// ParseServe parses a --serve spec: a server that runs until the function
// stops.
func ParseServe(spec string) (App, error) {
	return parseApp(spec, "--serve", serveApps, runApps, "--run")
}

// Usage returns the help text listing every application's syntax and
// options, for `nfpipe vnf host --help`.
func Usage() string {
	return usageText
}

const usageText = `Applications run on the host's own stack. A spec is one string of words:
the application, its arguments, then key=value options.
Durations use Go syntax (200ms, 3s); sizes accept 1500, 64K, 1M (K/M/G are
binary); rates accept 1000 or 1000pps (packets/s) and 10Mbit, 1Gbit (bits/s
of payload; k/M/G are decimal); rate=0 means as fast as the network accepts.

--run (clients; the host fails if one fails):
  ping ADDR [count=5] [interval=1s] [size=56] [ttl=64] [timeout=2s]
      ICMP/ICMPv6 echo, iputils-style output; fails if any reply is missing.
      timeout is how long to wait for stragglers after the last request.
  echo tcp|udp ADDR:PORT [count=10] [size=64] [timeout=2s]
      sends count messages of size bytes one at a time and checks every echo
      byte for byte; fails if any is missing or corrupt.
  gen udp|tcp ADDR:PORT [count=N] [duration=D] [size=200] [rate=R]
      traffic generator. UDP: datagrams of size bytes starting with an 8-byte
      big-endian sequence number (what sink checks). TCP: one connection of
      size-byte messages. Stops after count or duration, whichever comes
      first; count=1000 if neither is given.
  http get URL [count=1] [expect=200] [keepalive=yes]
      HTTP GET (IP literals only: there is no DNS); fails on a transport
      error or a status other than expect. Prints the first line of a text
      body (the http server names its host); keepalive=no opens a new
      connection per request (so a load balancer spreads them).
  bulk ADDR[:PORT] [seconds=3] [size=128K] [port=5201]
      TCP throughput sender for the bulk server, iperf-style: writes size-byte
      buffers for seconds, prints per-second intervals, and fails unless the
      receiver got every byte sent.
  conns ADDR:PORT [count=1000] [parallel=64] [size=16] [hold=0s] [timeout=10s]
      opens count TCP connections to an echo server, parallel dials at a
      time, each echoing size bytes as it opens, and keeps them all open;
      after hold, echoes again on every one and closes them. Prints the
      set-up rate; fails if any connection failed to open or to echo (what a
      NAT's or firewall's connection tracking must hold at once).

--serve (servers; they run until the function stops):
  echo tcp:PORT | udp:PORT      (also: echo tcp|udp [ADDR:]PORT, tcp:ADDR:PORT)
      echo server.
  sink udp:PORT | tcp:PORT      (same address forms as echo)
      counts packets and bytes per flow, and for UDP the loss, duplicates and
      reordering seen in gen's sequence numbers. With the host's --expect N it
      fails unless exactly N datagrams (UDP) or N bytes (TCP) arrived.
  http [[ADDR]:PORT]            (default :80)
      HTTP server: / greets the client, /bytes/N returns N bytes (at most
      1 GiB), /healthz returns 200.
  bulk [[ADDR]:PORT]            (default :5201)
      receiver for bulk clients; prints one line per connection.
`

// parseApp splits text and hands it to the parser of its application.
func parseApp(text, mode string, apps, otherApps map[string]func(*spec) (App, error), otherMode string) (App, error) {
	s := splitSpec(text)
	names := sortedKeys(apps)
	if s.app == "" {
		return nil, fmt.Errorf("empty spec %q: want an application: one of %s", text, joinNames(names))
	}
	parse, ok := apps[s.app]
	if !ok {
		if _, other := otherApps[s.app]; other {
			return nil, fmt.Errorf("application %q in %q runs only with %s (%s applications: %s)", s.app, text, otherMode, mode, joinNames(names))
		}
		return nil, fmt.Errorf("unknown application %q in %q: want one of %s%s", s.app, text, joinNames(names), suggest.DidYouMean(s.app, names))
	}
	return parse(s)
}
