package chain

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf"
)

// Plan is a chain resolved into what the runner does: for each function
// the exact command line of its `nfpipe vnf KIND` child and the file
// descriptors to hand it, for each link the objects to create, and the
// paths of the chain's runtime directory. The runner creates the links'
// objects, starts the children and supervises them; it computes nothing
// that is here.
type Plan struct {
	// Chain is the chain's name.
	Chain       string `json:"chain"`
	Description string `json:"description,omitempty"`
	// Spec is the spec's file name as given.
	Spec    string  `json:"spec"`
	Runtime Runtime `json:"runtime"`
	// Functions are in the order of the spec. Start those with Client
	// false first: Client functions run checks against the others.
	Functions []FunctionPlan `json:"functions"`
	Links     []LinkPlan     `json:"links"`
	Mirrors   []MirrorPlan   `json:"mirrors,omitempty"`
	// Host is what the runner creates in the host's kernel for tap links
	// (namespaces, TAP devices, addresses, routes, nftables rules); nil
	// without tap links.
	Host *HostPlan `json:"host,omitempty"`
	// Notes are things the user should know before running the chain
	// (a link that needs root, frames on the runner's stdin).
	Notes []string `json:"notes,omitempty"`
}

// Runtime is the chain's runtime directory and what is in it. The runner
// creates Dir (mode 0700) and removes it, with everything in it, when the
// chain stops; a Dir left by a crashed runner is cleaned at the next start.
type Runtime struct {
	Dir string `json:"dir"`
	// Control is the runner's control socket (status, stats, capture,
	// reload, down); PIDFile holds the runner's process ID.
	Control string `json:"control"`
	PIDFile string `json:"pid_file"`
	// Functions holds the functions' own control sockets
	// (FunctionPlan.Control).
	Functions string `json:"functions"`
	// Logs holds one log file per function (FunctionPlan.Log).
	Logs string `json:"logs"`
	// FIFOs must exist as named pipes (mkfifo, mode 0600) before any
	// function starts: fifo links, and mirrors into a FIFO or a
	// monitoring function (a capture= path that is not a FIFO would be
	// created as a regular file).
	FIFOs []string `json:"fifos,omitempty"`
	// Sockets are the unix links' socket paths: a stale one is removed
	// before the chain starts.
	Sockets []string `json:"sockets,omitempty"`
}

// FunctionPlan is one function's child process.
type FunctionPlan struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Argv is the child's arguments after the executable: run the nfpipe
	// binary itself with them ("vnf", KIND, "--name", NAME, ...).
	Argv []string `json:"argv"`
	// FDs are the child's inherited descriptors in ExtraFiles order:
	// FDs[i].FD == 3+i. Argv names them (seqpacket:3, fd:4|fd:5).
	FDs []FD `json:"fds,omitempty"`
	// Env is added to the child's environment, as KEY=VALUE, sorted. The
	// runner should drop NFPIPE_* variables it inherited itself: the argv
	// is the function's whole configuration.
	Env     []string      `json:"env,omitempty"`
	Restart RestartPolicy `json:"restart"`
	// Log is the file that keeps this function's output.
	Log string `json:"log"`
	// Control is the function's control socket (--control in Argv): it
	// appears when the function is ready, and serves status, stats,
	// reload, stop and live capture (see vnf/control.go).
	Control string `json:"control"`
	// Client is true when the function runs clients (a host's run): it
	// finishes by itself, and its exit status is a result (0 passed, 1
	// failed), not a crash.
	Client bool `json:"client"`
	// Interfaces are the function's NICs as configured, for status and
	// the graph.
	Interfaces []InterfacePlan `json:"interfaces"`
}

// InterfacePlan is one NIC of a function.
type InterfacePlan struct {
	Name  string         `json:"name"`
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	// MAC is the interface's address: the one the spec gives, or the
	// stable default netstack derives.
	MAC string `json:"mac"`
	MTU uint32 `json:"mtu"`
	// Link is the index in Plan.Links of the link the interface is an end
	// of, and End which end (0 or 1); Link is -1 for a monitoring
	// interface, fed by Plan.Mirrors[Mirror].
	Link   int `json:"link"`
	End    int `json:"end"`
	Mirror int `json:"mirror"`
	// Spec is the --if argument: NAME=ENDPOINT,options.
	Spec string `json:"spec"`
	// Capture is the capture= path, when the interface makes a copy.
	Capture string `json:"capture,omitempty"`
}

// FDObject says which object of a link a descriptor is.
type FDObject string

// Descriptor objects.
const (
	// FDSocket is the link's socketpair end number End (seqpacket and
	// stream links).
	FDSocket FDObject = "socket"
	// FDPipeRx is the read end of the pipe that carries frames to end
	// End; FDPipeTx the write end of the pipe that carries frames from
	// it (pipe links).
	FDPipeRx FDObject = "pipe-rx"
	FDPipeTx FDObject = "pipe-tx"
	// FDStdin and FDStdout are the runner's own standard input and output
	// (stdin and stdout links).
	FDStdin  FDObject = "stdin"
	FDStdout FDObject = "stdout"
)

// FD is one descriptor a child inherits.
type FD struct {
	// FD is its number in the child.
	FD int `json:"fd"`
	// Link is the index in Plan.Links, End the end (0 or 1).
	Link      int      `json:"link"`
	End       int      `json:"end"`
	Object    FDObject `json:"object"`
	Interface string   `json:"interface"`
}

// LinkPlan is one link and the objects the runner creates for it. The
// runner keeps its own copy of every descriptor, so that a restarted
// function gets its links back while the others run on.
type LinkPlan struct {
	Name      string    `json:"name"`
	Transport Transport `json:"transport"`
	// Format is the frame format on byte streams; empty for seqpacket
	// and tap.
	Format string `json:"format,omitempty"`
	// Ends are one or two function interfaces.
	Ends []End `json:"ends"`
	// FIFOs (fifo links) are two named pipes: FIFOs[0] carries frames
	// from end 0 to end 1, FIFOs[1] back.
	FIFOs []string `json:"fifos,omitempty"`
	// Path is a unix link's socket: end 0 listens, end 1 (if any)
	// connects.
	Path string `json:"path,omitempty"`
	// TAP is a tap link's device and Netns its network namespace (empty:
	// the runner's); Plan.Host says how the runner sets them up.
	TAP   string `json:"tap,omitempty"`
	Netns string `json:"netns,omitempty"`
	// Replay and Record are a file link's captures; OriginalTiming
	// replays at the capture's pace.
	Replay         string `json:"replay,omitempty"`
	Record         string `json:"record,omitempty"`
	OriginalTiming bool   `json:"original_timing,omitempty"`
	// GSO says whether the link carries TCP segments larger than its MTU
	// whole (netstack.LinkSpec.UsesGSO): by default on links between two
	// functions, which are nfpipe stacks on both ends, and tap links, where
	// the kernel segments; off where a program other than nfpipe may read
	// the frames (the chain's stdin/stdout, files, a unix socket with one
	// end) unless the spec says `gso: on`.
	GSO bool `json:"gso"`
	// Pack says whether a seqpacket link carries several frames per
	// message (netstack.LinkSpec.Pack): on unless the spec says
	// `pack: off` (both ends of a seqpacket link are functions).
	Pack bool `json:"pack"`
	// Mirror is the index in Plan.Mirrors of the link's mirror, or -1.
	Mirror int `json:"mirror"`
}

// MirrorPlan is how a mirror is made: the interface At writes a pcap of
// every frame it sends and receives (which is all the link carries) to
// Capture, through its capture= option, so nothing on the link changes.
// For a FIFO or a monitoring function, Capture is a FIFO in
// Runtime.FIFOs; a monitoring function's interface (Monitor) reads it as
// fifo:Capture|none,format=pcap.
type MirrorPlan struct {
	Link    int        `json:"link"`
	Kind    MirrorKind `json:"kind"`
	At      End        `json:"at"`
	Capture string     `json:"capture"`
	Monitor *End       `json:"monitor,omitempty"`
}

// DefaultRuntimeRoot is where chains keep their runtime directories:
// $XDG_RUNTIME_DIR/nfpipe, or nfpipe-UID in the temporary directory.
func DefaultRuntimeRoot() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "nfpipe")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("nfpipe-%d", os.Getuid()))
}

// Check decodes and checks a spec, resolves it into a plan and, with
// Options.Build, parses every generated argv with the real flags of
// `nfpipe vnf KIND` and the kind's own checks. Every problem is reported
// at once, as an ErrorList.
func Check(file string, data []byte, opts Options) (*Plan, error) {
	s, err := Decode(file, data, opts)
	if err != nil {
		return nil, err
	}
	p := Resolve(s)
	if opts.Build != nil {
		if err := checkArgv(s, p, opts); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// LoadPlan reads the spec at path and checks it (see Check).
func LoadPlan(path string, opts Options) (*Plan, error) {
	b, err := readFile(opts, path)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: cleanIOError(err)}}
	}
	return Check(path, b, opts)
}

// checkArgv parses each generated argv as `nfpipe vnf` will, and compares
// what it configures with what the spec says.
func checkArgv(s *Spec, p *Plan, opts Options) error {
	e := &errs{}
	for i, fp := range p.Functions {
		fn := s.Functions[i]
		fail := func(format string, args ...any) {
			pos := Pos{File: fn.file, Line: fn.node.Line, Col: fn.node.Column}
			e.add(&Error{Pos: pos, Path: fn.path, Msg: "the generated command line " + fmt.Sprintf(format, args...) + " (a bug in nfpipe: please report it)", at: fn.at})
		}
		cfg, err := opts.Build(fp.Kind, fp.Argv[2:])
		if err != nil {
			fail("does not parse: %v", err)
			continue
		}
		kind, err := opts.Registry.Lookup(fp.Kind)
		if err != nil {
			fail("names an unknown kind: %v", err)
			continue
		}
		if _, err := kind.New(cfg); err != nil {
			fail("is refused by %s: %v", fp.Kind, err)
			continue
		}
		if msg := sameConfig(fn, &fp, cfg); msg != "" {
			fail("%s", msg)
		}
	}
	return e.sorted()
}

// sameConfig compares what an argv configured with the function it was
// made from, and says how they differ.
func sameConfig(fn *Function, fp *FunctionPlan, cfg *vnf.Config) string {
	if cfg.Stack.Name != fn.Name {
		return fmt.Sprintf("names the function %q", cfg.Stack.Name)
	}
	if len(cfg.Stack.NICs) != len(fn.Interfaces) {
		return fmt.Sprintf("gives %d interfaces, not %d", len(cfg.Stack.NICs), len(fn.Interfaces))
	}
	for i, n := range cfg.Stack.NICs {
		ifc := fn.Interfaces[i]
		switch {
		case n.Name != ifc.Name:
			return fmt.Sprintf("names interface %d %q, not %q", i+1, n.Name, ifc.Name)
		case !slices.Equal(n.Addrs, ifc.Addrs):
			return fmt.Sprintf("gives %s addresses %v, not %v", n.Name, n.Addrs, ifc.Addrs)
		case n.MTU != ifc.MTU:
			return fmt.Sprintf("gives %s mtu %d, not %d", n.Name, n.MTU, ifc.MTU)
		case ifc.MAC != nil && n.MAC.String() != ifc.MAC.String():
			return fmt.Sprintf("gives %s mac %s, not %s", n.Name, n.MAC, ifc.MAC)
		}
	}
	if len(cfg.Stack.Routes) != len(fn.Routes)+len(fn.Gateways) {
		return fmt.Sprintf("gives %d routes, not %d", len(cfg.Stack.Routes), len(fn.Routes)+len(fn.Gateways))
	}
	if cfg.Control != fp.Control {
		return fmt.Sprintf("gives the control socket %q", cfg.Control)
	}
	// The spec's neighbours, plus the static entries for link peers.
	if want := countNeigh(fp.Argv); len(cfg.Stack.Neighbors) != want || want < len(fn.Neighbors) {
		return fmt.Sprintf("gives %d neighbours, not %d", len(cfg.Stack.Neighbors), want)
	}
	if !slices.Equal(cfg.Rules, fn.Rules) || !slices.Equal(cfg.RuleFiles, fn.RuleFiles) {
		return "gives other rules"
	}
	return ""
}

// Resolve turns a checked spec into a plan.
func Resolve(s *Spec) *Plan {
	run := s.RuntimeDir
	p := &Plan{
		Chain: s.Name, Description: s.Description, Spec: s.File,
		Runtime: Runtime{
			Dir:       run,
			Control:   filepath.Join(run, "control.sock"),
			PIDFile:   filepath.Join(run, "runner.pid"),
			Logs:      filepath.Join(run, "logs"),
			Functions: filepath.Join(run, "fn"),
		},
	}
	// Where each interface is joined: an end of a link, or a monitor.
	type place struct{ link, end, mirror int }
	places := map[End]place{}
	for i, l := range s.Links {
		lp := LinkPlan{Name: l.Name, Transport: l.Transport, Format: l.Format, Ends: l.Ends, Mirror: -1}
		switch l.Transport {
		case TAP:
			lp.GSO = l.GSO != "off"
		case Seqpacket, Stream, Pipe, FIFO, Unix:
			lp.GSO = l.GSO == "on" || (l.GSO == "" && len(l.Ends) == 2)
		}
		if l.Transport == Seqpacket {
			lp.Pack = l.Pack == "on" || (l.Pack == "" && len(l.Ends) == 2)
		}
		switch l.Transport {
		case FIFO:
			lp.FIFOs = []string{filepath.Join(run, "links", l.Name+".ab"), filepath.Join(run, "links", l.Name+".ba")}
			p.Runtime.FIFOs = append(p.Runtime.FIFOs, lp.FIFOs...)
		case Unix:
			lp.Path = l.Path
			p.Runtime.Sockets = append(p.Runtime.Sockets, l.Path)
		case TAP:
			lp.TAP, lp.Netns = l.TAPName, l.Netns
			if lp.TAP == "" {
				lp.TAP = TAPDevice(s.Name, l.Name)
			}
			need := "CAP_NET_ADMIN"
			if l.Netns != "" {
				need += " and CAP_SYS_ADMIN (netns)"
			}
			p.Notes = append(p.Notes, fmt.Sprintf("link %s: a tap link needs %s: run `chain up` as root", l.Name, need))
		case File:
			lp.Replay, lp.Record, lp.OriginalTiming = l.Replay, l.Record, l.OriginalTiming
		case Stdin:
			p.Notes = append(p.Notes, fmt.Sprintf("%s reads frames (%s format) from the chain's standard input", l.Ends[0], l.Format))
		case Stdout:
			p.Notes = append(p.Notes, fmt.Sprintf("%s writes frames (%s format) to the chain's standard output", l.Ends[0], l.Format))
		}
		if mr := l.Mirror; mr != nil {
			mp := MirrorPlan{Link: i, Kind: mr.Kind, At: mr.At, Capture: mr.Path}
			switch mr.Kind {
			case MirrorFIFO:
				p.Runtime.FIFOs = append(p.Runtime.FIFOs, mr.Path)
			case MirrorFunction:
				mp.Capture = filepath.Join(run, "mirrors", l.Name+".pcap")
				p.Runtime.FIFOs = append(p.Runtime.FIFOs, mp.Capture)
				mon := mr.Monitor
				mp.Monitor = &mon
				places[mon] = place{link: -1, mirror: len(p.Mirrors)}
			}
			lp.Mirror = len(p.Mirrors)
			p.Mirrors = append(p.Mirrors, mp)
		}
		for j, e := range l.Ends {
			places[e] = place{link: i, end: j, mirror: -1}
		}
		p.Links = append(p.Links, lp)
	}
	for _, fn := range s.Functions {
		fp := FunctionPlan{
			Name: fn.Name, Kind: fn.Kind, Restart: fn.Restart,
			Log:     filepath.Join(p.Runtime.Logs, fn.Name+".log"),
			Control: functionControl(run, fn.Name),
			Argv:    []string{"vnf", fn.Kind, "--name", fn.Name},
		}
		for _, ifc := range fn.Interfaces {
			e := End{fn.Name, ifc.Name}
			pl := places[e]
			ip := InterfacePlan{Name: ifc.Name, Addrs: ifc.Addrs, MTU: ifc.mtu(), Link: pl.link, End: pl.end, Mirror: pl.mirror, Capture: ifc.Capture}
			mac := ifc.MAC
			if mac == nil {
				var first netip.Prefix
				if len(ifc.Addrs) > 0 {
					first = ifc.Addrs[0]
				}
				mac = netstack.DefaultMAC(fn.Name, ifc.Name, first)
			}
			ip.MAC = mac.String()
			var endpoint, format string
			if pl.link >= 0 {
				l := &p.Links[pl.link]
				format = l.Format
				endpoint = p.endpoint(&fp, l, pl.link, pl.end, ifc.Name)
				if l.Mirror >= 0 && p.Mirrors[l.Mirror].At == e {
					ip.Capture = p.Mirrors[l.Mirror].Capture
				}
			} else {
				endpoint, format = "fifo:"+p.Mirrors[pl.mirror].Capture+"|none", "pcap"
			}
			opts := ifOptions(ifc, format, ip.Capture, pl.link >= 0 && p.Links[pl.link].OriginalTiming)
			if pl.link >= 0 {
				opts += gsoOption(&p.Links[pl.link])
				if p.Links[pl.link].Pack {
					opts += ",pack=on"
				}
			}
			ip.Spec = ifc.Name + "=" + endpoint + opts
			fp.Argv = append(fp.Argv, "--if", ip.Spec)
			fp.Interfaces = append(fp.Interfaces, ip)
		}
		for _, r := range fn.Routes {
			fp.Argv = append(fp.Argv, "--route", routeString(r))
		}
		for _, gw := range fn.Gateways {
			fp.Argv = append(fp.Argv, "--gw", gw.String())
		}
		for _, nb := range fn.Neighbors {
			s := nb.Addr.String() + " lladdr " + nb.MAC.String()
			if nb.NIC != "" {
				s += " dev " + nb.NIC
			}
			fp.Argv = append(fp.Argv, "--neigh", s)
		}
		// "--flag=value": a value may start with '-' (a rule), and a flag
		// with an optional value (--stats) only takes it this way.
		for _, f := range fn.RuleFiles {
			fp.Argv = append(fp.Argv, "--rules="+f)
		}
		for _, r := range fn.Rules {
			fp.Argv = append(fp.Argv, "--rule="+r)
		}
		for _, prm := range fn.Params {
			for _, v := range prm.Values {
				fp.Argv = append(fp.Argv, "--"+prm.Flag+"="+v)
			}
			if prm.Flag == "run" && len(prm.Values) > 0 {
				fp.Client = true
			}
		}
		// A function fed by the chain's standard input ends when that
		// input ends (its other links never end: the runner holds them);
		// the runner then closes its links, and the end of input moves
		// down the chain.
		for _, d := range fp.FDs {
			if d.Object == FDStdin {
				fp.Argv = append(fp.Argv, "--end-on", d.Interface)
			}
		}
		if fn.LogLevel != "" {
			fp.Argv = append(fp.Argv, "--log-level", fn.LogLevel)
		}
		fp.Argv = append(fp.Argv, "--control", fp.Control)
		for k, v := range fn.Env {
			fp.Env = append(fp.Env, k+"="+v)
		}
		sort.Strings(fp.Env)
		p.Functions = append(p.Functions, fp)
	}
	p.staticNeighbors()
	p.Host = resolveHost(s, p)
	return p
}

// staticNeighbors gives both ends of every link between two functions a
// static ARP/NDP entry for each of the other end's addresses: the runner
// knows them, so functions need not resolve each other, and a burst sent
// before a resolution completes cannot overflow the stack's queue of
// packets waiting for it. Entries the spec gives itself are kept.
func (p *Plan) staticNeighbors() {
	ifc := map[End]*InterfacePlan{}
	fnOf := map[string]*FunctionPlan{}
	for i := range p.Functions {
		fp := &p.Functions[i]
		fnOf[fp.Name] = fp
		for j := range fp.Interfaces {
			ifc[End{Function: fp.Name, Interface: fp.Interfaces[j].Name}] = &fp.Interfaces[j]
		}
	}
	for _, l := range p.Links {
		if len(l.Ends) != 2 {
			continue
		}
		switch l.Transport {
		case Seqpacket, Stream, Pipe, FIFO, Unix:
		default:
			continue
		}
		for e := range 2 {
			me, peer := l.Ends[e], l.Ends[1-e]
			fp, pi := fnOf[me.Function], ifc[peer]
			if fp == nil || pi == nil || pi.MAC == "" {
				continue
			}
			for _, a := range pi.Addrs {
				if neighborGiven(fp.Argv, a.Addr()) {
					continue
				}
				fp.Argv = append(fp.Argv, "--neigh", a.Addr().String()+" lladdr "+pi.MAC+" dev "+me.Interface)
			}
		}
	}
}

// countNeigh counts the --neigh flags of argv.
func countNeigh(argv []string) int {
	n := 0
	for _, a := range argv {
		if a == "--neigh" {
			n++
		}
	}
	return n
}

// neighborGiven reports whether argv already has a --neigh for addr.
func neighborGiven(argv []string, addr netip.Addr) bool {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == "--neigh" && strings.HasPrefix(argv[i+1], addr.String()+" ") {
			return true
		}
	}
	return false
}

// functionControl is the path of a function's control socket.
func functionControl(runDir, name string) string {
	return filepath.Join(runDir, "fn", name+".sock")
}

// endpoint returns the ENDPOINT of an interface that is end `end` of link
// l, adding the descriptors it inherits to fp.
func (p *Plan) endpoint(fp *FunctionPlan, l *LinkPlan, link, end int, ifname string) string {
	fd := func(obj FDObject) string {
		n := 3 + len(fp.FDs)
		fp.FDs = append(fp.FDs, FD{FD: n, Link: link, End: end, Object: obj, Interface: ifname})
		return strconv.Itoa(n)
	}
	switch l.Transport {
	case Seqpacket:
		return "seqpacket:" + fd(FDSocket)
	case Stream:
		return "fd:" + fd(FDSocket)
	case Pipe:
		rx := fd(FDPipeRx)
		return "fd:" + rx + "|fd:" + fd(FDPipeTx)
	case FIFO:
		return "fifo:" + l.FIFOs[1-end] + "|fifo:" + l.FIFOs[end]
	case Unix:
		if end == 0 {
			return "unix-listen:" + l.Path
		}
		return "unix:" + l.Path
	case TAP:
		if l.Netns != "" {
			return "tap:" + l.TAP + ",netns=" + l.Netns
		}
		return "tap:" + l.TAP
	case File:
		rx, tx := "none", "none"
		if l.Replay != "" {
			rx = "file:" + l.Replay
		}
		if l.Record != "" {
			tx = "file:" + l.Record
		}
		return rx + "|" + tx
	case Stdin:
		return "fd:" + fd(FDStdin) + "|none"
	case Stdout:
		return "none|fd:" + fd(FDStdout)
	}
	panic("chain: unknown transport " + string(l.Transport))
}

// ifOptions returns the ,key=value options of an --if argument.
func ifOptions(ifc *Interface, format, capture string, originalTiming bool) string {
	var b strings.Builder
	if format != "" {
		b.WriteString(",format=" + format)
	}
	for _, a := range ifc.Addrs {
		b.WriteString(",ip=" + a.String())
	}
	if ifc.MAC != nil {
		b.WriteString(",mac=" + ifc.MAC.String())
	}
	if ifc.MTU != 0 {
		b.WriteString(",mtu=" + strconv.FormatUint(uint64(ifc.MTU), 10))
	}
	if capture != "" {
		b.WriteString(",capture=" + capture)
	}
	if originalTiming {
		b.WriteString(",timing=original")
	}
	return b.String()
}

// gsoOption is the gso= option of a link's interfaces, where the plan
// differs from the interface's default.
func gsoOption(l *LinkPlan) string {
	switch {
	case l.Transport == TAP && !l.GSO:
		return ",gso=off"
	case l.Transport != TAP && l.GSO:
		return ",gso=on"
	}
	return ""
}

// routeString writes a route so that netstack.ParseRoute reads it back:
// the destination as a prefix, since "default" alone means IPv4.
func routeString(r netstack.Route) string {
	s := r.Dst.String()
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.NIC != "" {
		s += " dev " + r.NIC
	}
	return s
}
