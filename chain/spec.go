package chain

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nfpipe/nfpipe/netstack"
)

// Spec is a chain spec as written, decoded and checked: the functions, the
// links between their interfaces, and the settings of each. Paths in it
// are absolute. It is the input of Resolve; the runner consumes the Plan.
type Spec struct {
	// Name names the chain: its runtime directory, its control socket, the
	// argument of `nfpipe chain down NAME`.
	Name string
	// Description is the spec's optional one-line summary.
	Description string
	// File is the spec's file name as given ("configs/quickstart.yaml"), or
	// a name such as "<built-in quickstart.yaml>"; errors name it.
	File string
	// Functions are the network functions, in the order written: those of
	// `functions`, then those a pipeline reads from function files.
	Functions []*Function
	// Links join the functions' interfaces: those of `links`, then those
	// the pipeline implies.
	Links []*Link
	// Pipeline is the `pipeline` shorthand's functions, in order; empty
	// when the spec has none.
	Pipeline []string
	// RuntimeDir is the chain's runtime directory: its FIFOs, sockets,
	// logs and control socket.
	RuntimeDir string
}

// Function is one network function: a process `nfpipe vnf KIND`.
type Function struct {
	Name string
	Kind string
	// Interfaces are the function's NICs in the order written; the order
	// decides which is "first" and "last" in a pipeline, and NIC IDs.
	Interfaces []*Interface
	// Routes are static routes, `ip route` style; Gateways are default
	// gateways (--gw); Neighbors static ARP/NDP entries.
	Routes    []netstack.Route
	Gateways  []netip.Addr
	Neighbors []netstack.Neighbor
	// RuleFiles are iptables rule files (absolute paths), applied first, in
	// order; Rules are iptables commands applied after them — the order
	// `nfpipe vnf --rules ... --rule ...` applies them in.
	RuleFiles []string
	Rules     []string
	// Params are the kind's own settings, as flags of `nfpipe vnf KIND`:
	// run, serve and expect for a host; timeout, stats, linger and the
	// like for every kind.
	Params  []Param
	Restart RestartPolicy
	// Env is added to the function's environment.
	Env map[string]string
	// LogLevel is debug, info, warn or error; empty leaves the default.
	LogLevel string

	// file and dir are where the function was written (the spec, or a
	// function file), for errors and relative paths.
	file, dir string
	node      *yaml.Node
	path      string
	// at is the position in the spec that names a function file.
	at Pos
	// keys holds the node of each key written, for errors about it; the
	// other nodes locate each item of the lists above.
	keys                                   map[string]*yaml.Node
	routeAt, gwAt, neighAt, ruleAt, fileAt []item
	// ruleFileNames are the rule files as errors name them.
	ruleFileNames []string
}

// item is one value of a list in the spec, where it was written.
type item struct {
	val  string
	node *yaml.Node
	path string
}

// Interface is one NIC of a function.
type Interface struct {
	Name string
	// Addrs are its IPv4 and IPv6 addresses with prefix length.
	Addrs []netip.Prefix
	// MAC is nil for the stable default (netstack.DefaultMAC).
	MAC net.HardwareAddr
	// MTU is 0 for netstack.DefaultMTU.
	MTU uint32
	// Capture is a file (absolute path) that gets a pcap of the
	// interface's frames.
	Capture string
	// captureText is Capture as errors name it.
	captureText string

	fn   *Function
	node *yaml.Node
	path string
	// addrAt, macNode, mtuNode and captureNode locate the fields.
	addrAt                        []item
	macNode, mtuNode, captureNode *yaml.Node
}

// mtu returns the effective MTU.
func (i *Interface) mtu() uint32 {
	if i.MTU == 0 {
		return netstack.DefaultMTU
	}
	return i.MTU
}

// Param is one kind parameter: a flag of `nfpipe vnf KIND` and its values
// (one for a plain flag, any number for a repeatable one).
type Param struct {
	Flag   string
	Values []string

	list bool
	node *yaml.Node
	path string
	at   []item
}

// RestartPolicy says what the runner does when a function exits.
type RestartPolicy struct {
	// Policy is "never", "on-failure" (a non-zero exit or a signal) or
	// "always".
	Policy string
	// Backoff is the delay before the first restart; it doubles with each
	// restart in a row, up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxRestarts is how many restarts within Window are tolerated; one
	// more and the function is reported as crash-looping and left stopped
	// (and `chain up` fails). Zero means no limit. A run longer than
	// Window resets the backoff and the count.
	MaxRestarts int
	Window      time.Duration
}

// MarshalJSON writes durations as strings ("100ms").
func (r RestartPolicy) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Policy      string `json:"policy"`
		Backoff     string `json:"backoff"`
		MaxBackoff  string `json:"max_backoff"`
		MaxRestarts int    `json:"max_restarts"`
		Window      string `json:"window"`
	}{r.Policy, r.Backoff.String(), r.MaxBackoff.String(), r.MaxRestarts, r.Window.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *RestartPolicy) UnmarshalJSON(b []byte) error {
	var v struct {
		Policy      string `json:"policy"`
		Backoff     string `json:"backoff"`
		MaxBackoff  string `json:"max_backoff"`
		MaxRestarts int    `json:"max_restarts"`
		Window      string `json:"window"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Policy, r.MaxRestarts = v.Policy, v.MaxRestarts
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{v.Backoff, &r.Backoff}, {v.MaxBackoff, &r.MaxBackoff}, {v.Window, &r.Window}} {
		t, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("restart policy: %w", err)
		}
		*d.dst = t
	}
	return nil
}

// String returns "on-failure (backoff 100ms..5s, at most 5 in 1m0s)".
func (r RestartPolicy) String() string {
	if r.Policy == RestartNever {
		return r.Policy
	}
	limit := "no limit"
	if r.MaxRestarts > 0 {
		limit = fmt.Sprintf("at most %d in %s", r.MaxRestarts, r.Window)
	}
	return fmt.Sprintf("%s (backoff %s..%s, %s)", r.Policy, r.Backoff, r.MaxBackoff, limit)
}

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// defaultRestart is the policy of a function that sets none.
func defaultRestart() RestartPolicy {
	return RestartPolicy{
		// never: a function's exit is usually its result (a client done,
		// a sink that counted); restarting is asked for, not assumed.
		Policy: RestartNever,
		// 100ms: a crash from a transient cause is retried almost at once.
		Backoff: 100 * time.Millisecond,
		// 5s: a function that keeps failing is retried often enough to
		// notice a fix, rarely enough not to flood the logs.
		MaxBackoff: 5 * time.Second,
		// 5 within a minute: beyond that it is broken, not unlucky.
		MaxRestarts: 5,
		Window:      time.Minute,
	}
}

// Transport is how a link carries frames.
type Transport string

// Transports. The first five join two functions; the others join one
// function to something outside the chain.
const (
	// Seqpacket is a unix SOCK_SEQPACKET socketpair the runner creates:
	// one frame per message, no framing. The default.
	Seqpacket Transport = "seqpacket"
	// Stream is a unix SOCK_STREAM socketpair with a frame format.
	Stream Transport = "stream"
	// Pipe is a pair of pipes, one per direction, with a frame format.
	Pipe Transport = "pipe"
	// FIFO is a pair of named pipes in the chain's runtime directory.
	FIFO Transport = "fifo"
	// Unix is a unix stream socket at a path: the first end listens, the
	// second connects. With one end, the function listens for a peer
	// outside the chain.
	Unix Transport = "unix"
	// TAP is a Linux TAP device to the host (needs CAP_NET_ADMIN).
	TAP Transport = "tap"
	// File replays a capture into the interface and/or records what it
	// sends.
	File Transport = "file"
	// Stdin and Stdout are the runner's own standard input and output, so
	// that a chain is a stage of a shell pipeline.
	Stdin  Transport = "stdin"
	Stdout Transport = "stdout"
)

var transports = []Transport{Seqpacket, Stream, Pipe, FIFO, Unix, TAP, File, Stdin, Stdout}

// ends returns how many function interfaces a link of this transport
// joins.
func (t Transport) ends() int {
	switch t {
	case TAP, File, Stdin, Stdout:
		return 1
	}
	return 2
}

// endsOK reports whether a link of this transport can have n ends: a unix
// link may have one, listening for a peer outside the chain.
func (t Transport) endsOK(n int) bool { return n == t.ends() || t == Unix && n == 1 }

// framed reports whether the transport is a byte stream that needs a
// frame format.
func (t Transport) framed() bool { return t != Seqpacket && t != TAP }

// Link joins two function interfaces, or one to something outside the
// chain (a TAP device, a file, the runner's stdin or stdout).
type Link struct {
	// Name identifies the link in the plan, in runtime file names and in
	// the graph; by default "fn.if--fn.if".
	Name      string
	Ends      []End
	Transport Transport
	// Format is the frame format on byte-stream transports (qemu, vde,
	// pcap, hex); empty for seqpacket and tap.
	Format string
	// Path is a unix link's socket path (absolute).
	Path string
	// TAPName and Netns are a tap link's device and optional network
	// namespace. An empty TAPName has the runner derive a name from the
	// chain's and the link's (TAPDevice). NetnsCreate has the runner
	// create Netns, and delete it when the chain stops; otherwise Netns
	// must exist.
	TAPName, Netns string
	NetnsCreate    bool
	// Host is what a tap link's kernel side gets: addresses, routes and
	// host nftables rules; nil for none.
	Host *TAPHost
	// Replay and Record are a file link's input and output captures
	// (absolute paths; either may be empty). OriginalTiming replays at the
	// capture's pace.
	Replay, Record string
	OriginalTiming bool
	// GSO is "on" or "off" as written, "" for the default: large TCP
	// segments travel whole on links between two functions and on tap
	// links (see LinkPlan.GSO).
	GSO string
	// Pack is "on" or "off" as written, "" for the default: several frames
	// per message on seqpacket links between two functions (see
	// LinkPlan.Pack).
	Pack string
	// Mirror, when set, copies the link's frames somewhere.
	Mirror *Mirror

	node *yaml.Node
	path string
	// fromPipeline is the pipeline item that made the link, or nil.
	fromPipeline *yaml.Node
	// endText and endNodes are the ends as written, before they are
	// resolved; keys holds the node of each key written.
	endText  []string
	endNodes []*yaml.Node
	keys     map[string]*yaml.Node
	// bad marks a link with an error already reported: its ends count as
	// linked, so that they are not reported as unlinked too, and nothing
	// more is checked.
	bad bool
}

// End is one end of a link: an interface of a function.
type End struct {
	Function  string `json:"function"`
	Interface string `json:"interface"`
}

// String returns "fn.if".
func (e End) String() string { return e.Function + "." + e.Interface }

// MirrorKind says where a mirror sends its copy.
type MirrorKind string

// Mirror kinds.
const (
	// MirrorCapture writes a pcap file.
	MirrorCapture MirrorKind = "capture"
	// MirrorFIFO writes a pcap stream into a named pipe that anyone may
	// read (tcpdump -nr PATH).
	MirrorFIFO MirrorKind = "fifo"
	// MirrorFunction feeds a pcap stream into an interface of a
	// monitoring function of the chain.
	MirrorFunction MirrorKind = "function"
)

// Mirror copies every frame of a link, both directions, without changing
// what the link carries.
type Mirror struct {
	Kind MirrorKind
	// At is the end whose interface makes the copy (its capture= option).
	At End
	// Path is the capture file or the FIFO (absolute).
	Path string
	// Monitor is the monitoring function's interface, for MirrorFunction.
	Monitor End

	node                *yaml.Node
	path                string
	atNode, monitorNode *yaml.Node
	// at and monitor are the ends as written, before they are resolved.
	atText, monitorText string
}
