package chain

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nfpipe/nfpipe/internal/suggest"
	"github.com/nfpipe/nfpipe/netstack/rules"
)

// maxSocketPath is the longest path a unix socket can be bound to
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// check runs the checks that need the whole spec: link ends, the
// pipeline, interfaces used twice or never, MTUs, addresses across the
// chain, gateways, rules and kind parameters.
func (d *decoder) check(s *Spec) {
	fns := map[string]*Function{}
	for _, fn := range s.Functions {
		fns[fn.Name] = fn
	}
	u := &uses{d: d, by: map[*Interface][]use{}}
	for _, l := range s.Links {
		d.resolveLink(fns, l, u)
	}
	firstPipe := len(s.Links)
	pipe := d.resolvePipeline(s, fns, u)
	d.resolveMirrors(s, fns, u)
	u.report()
	d.pipelineEnds(s, pipe, firstPipe, u)
	for _, fn := range s.Functions {
		for _, ifc := range fn.Interfaces {
			if len(u.by[ifc]) == 0 {
				d.in(fn).errf(ifc.node, ifc.path, "interface is not linked: add it to links (or the pipeline), or remove it")
			}
		}
	}
	d.checkSocketPaths(s)
	d.nameLinks(s)
	for _, l := range s.Links {
		d.checkLink(fns, l)
	}
	d.checkAddresses(s)
	d.checkTAPs(s)
	for _, fn := range s.Functions {
		d.in(fn).checkRoutes(fn)
		d.in(fn).checkRules(fn)
	}
	for _, fn := range s.Functions {
		d.in(fn).checkParams(fn)
	}
}

// checkSocketPaths checks that the runner's and the functions' control
// sockets fit in a unix socket address.
func (d *decoder) checkSocketPaths(s *Spec) {
	paths := []string{filepath.Join(d.runDir, "control.sock")}
	for _, fn := range s.Functions {
		paths = append(paths, functionControl(d.runDir, fn.Name))
	}
	for _, p := range paths {
		if len(p) > maxSocketPath {
			d.errf(nil, "", "the control socket %s is %d bytes, more than the %d a unix socket allows: use a shorter runtime directory (--runtime-dir) or shorter names", p, len(p), maxSocketPath)
			return
		}
	}
}

// use is one place that joins an interface to something.
type use struct {
	node *yaml.Node
	what string // "links[0]", "pipeline[1]", "links[2].mirror"
}

// uses records which links use each interface, to find those used twice.
type uses struct {
	d  *decoder
	by map[*Interface][]use
}

func (u *uses) add(ifc *Interface, n *yaml.Node, what string) {
	u.by[ifc] = append(u.by[ifc], use{n, what})
}

// report says, at each use of an interface after its first (in the order
// of the spec), which link has it already.
func (u *uses) report() {
	var ifcs []*Interface
	for ifc := range u.by {
		ifcs = append(ifcs, ifc)
	}
	slices.SortFunc(ifcs, func(a, b *Interface) int {
		return cmp.Or(cmp.Compare(a.fn.Name, b.fn.Name), cmp.Compare(a.Name, b.Name))
	})
	for _, ifc := range ifcs {
		us := u.by[ifc]
		slices.SortStableFunc(us, func(a, b use) int {
			return cmp.Or(cmp.Compare(a.node.Line, b.node.Line), cmp.Compare(a.node.Column, b.node.Column))
		})
		for _, x := range us[1:] {
			u.d.errf(x.node, x.what, "%s.%s is already linked by %s (%s): an interface joins one link", ifc.fn.Name, ifc.Name, us[0].what, u.d.place(us[0].node))
		}
	}
}

// findEnd resolves "fn.if", or "fn" for a function with one interface.
func (d *decoder) findEnd(fns map[string]*Function, text string, n *yaml.Node, path string) *Interface {
	fname, iname, dotted := strings.Cut(text, ".")
	fn := fns[fname]
	if fn == nil {
		var names []string
		for n := range fns {
			names = append(names, n)
		}
		d.errf(n, path, "no function %q%s", fname, suggest.DidYouMean(fname, names))
		return nil
	}
	if !dotted {
		if len(fn.Interfaces) == 1 {
			return fn.Interfaces[0]
		}
		if len(fn.Interfaces) > 1 {
			d.errf(n, path, "%s has %d interfaces: say which, as %s.%s", fname, len(fn.Interfaces), fname, strings.Join(ifNames(fn), " or "+fname+"."))
		}
		return nil
	}
	for _, ifc := range fn.Interfaces {
		if ifc.Name == iname {
			return ifc
		}
	}
	if len(fn.Interfaces) > 0 {
		d.errf(n, path, "%s", noInterface(fn, iname))
	}
	return nil
}

// noInterface says that fn has no interface name: with the nearest name,
// or else the names it has.
func noInterface(fn *Function, name string) string {
	if hint := suggest.DidYouMean(name, ifNames(fn)); hint != "" {
		return fmt.Sprintf("%s has no interface %q%s", fn.Name, name, hint)
	}
	return fmt.Sprintf("%s has no interface %q (it has %s)", fn.Name, name, strings.Join(ifNames(fn), ", "))
}

func ifNames(fn *Function) []string {
	var out []string
	for _, ifc := range fn.Interfaces {
		out = append(out, ifc.Name)
	}
	return out
}

func (d *decoder) resolveLink(fns map[string]*Function, l *Link, u *uses) {
	want := l.Transport.ends()
	switch {
	case l.bad:
		// Its ends are linked, though the link is wrong.
		for i, text := range l.endText {
			if ifc := d.findEnd(fns, text, l.endNodes[i], l.path); ifc != nil {
				u.add(ifc, l.endNodes[i], l.path)
			}
		}
		return
	case len(l.endText) == 0 && l.endNodes == nil:
		return // already reported: no ends
	case !l.Transport.endsOK(len(l.endText)):
		l.bad = true
		for i, text := range l.endText {
			if ifc := d.findEnd(fns, text, l.endNodes[i], l.path); ifc != nil {
				u.add(ifc, l.endNodes[i], l.path)
			}
		}
		n := l.node
		if len(l.endNodes) > 0 {
			n = l.endNodes[0]
		}
		if want == 2 {
			d.errf(n, l.path, "a %s link joins two interfaces: want two ends, got %d", l.Transport, len(l.endText))
		} else {
			d.errf(n, l.path, "a %s link joins one interface to %s: want one end, got %d", l.Transport, outside(l.Transport), len(l.endText))
		}
		return
	}
	var ifcs []*Interface
	for i, text := range l.endText {
		path := index(l.path, i)
		if _, ok := l.keys["ends"]; ok {
			path = index(l.path+".ends", i)
		}
		ifc := d.findEnd(fns, text, l.endNodes[i], path)
		if ifc == nil {
			l.bad = true
			continue
		}
		ifcs = append(ifcs, ifc)
	}
	if l.bad {
		for i, ifc := range ifcs {
			u.add(ifc, l.endNodes[i], l.path)
		}
		return
	}
	if len(ifcs) == 2 && ifcs[0] == ifcs[1] {
		d.errf(l.endNodes[1], l.path, "both ends are %s.%s", ifcs[0].fn.Name, ifcs[0].Name)
		l.bad = true
		u.add(ifcs[0], l.endNodes[0], l.path)
		return
	}
	for i, ifc := range ifcs {
		l.Ends = append(l.Ends, End{Function: ifc.fn.Name, Interface: ifc.Name})
		u.add(ifc, l.endNodes[i], l.path)
	}
}

// outside names what a one-ended link joins its interface to.
func outside(t Transport) string {
	switch t {
	case TAP:
		return "a TAP device"
	case File:
		return "capture files"
	case Stdin:
		return "the runner's standard input"
	case Stdout:
		return "the runner's standard output"
	}
	return "something outside"
}

// resolvePipeline turns `pipeline: [a, b, c]` into links from each
// function's last interface to the next one's first.
func (d *decoder) resolvePipeline(s *Spec, fns map[string]*Function, u *uses) []*Function {
	var pipe []*Function
	var nodes []*yaml.Node
	for i, item := range d.pipelineNodes {
		path := index("pipeline", i)
		fn := d.pipelineFiles[item]
		if fn == nil {
			if ext := filepath.Ext(item.Value); ext == ".yaml" || ext == ".yml" {
				continue // the file's own errors are reported
			}
			fn = fns[item.Value]
			if fn == nil {
				var names []string
				for n := range fns {
					names = append(names, n)
				}
				d.errf(item, path, "no function %q%s", item.Value, suggest.DidYouMean(item.Value, names))
				continue
			}
		}
		if j := slices.Index(pipe, fn); j >= 0 {
			d.errf(item, path, "%s is in the pipeline twice (first at %s)", fn.Name, d.place(nodes[j]))
			continue
		}
		pipe = append(pipe, fn)
		nodes = append(nodes, item)
		s.Pipeline = append(s.Pipeline, fn.Name)
	}
	for i := 0; i+1 < len(pipe); i++ {
		a, b := pipe[i], pipe[i+1]
		if len(a.Interfaces) == 0 || len(b.Interfaces) == 0 {
			continue
		}
		from, to := a.Interfaces[len(a.Interfaces)-1], b.Interfaces[0]
		l := &Link{
			Transport: Seqpacket, node: nodes[i+1], path: index("pipeline", slices.Index(d.pipelineNodes, nodes[i+1])), fromPipeline: nodes[i+1],
			Ends: []End{{a.Name, from.Name}, {b.Name, to.Name}},
		}
		u.add(from, nodes[i+1], l.path)
		u.add(to, nodes[i+1], l.path)
		s.Links = append(s.Links, l)
	}
	return pipe
}

// pipelineEnds joins a pipeline's open ends to the runner's standard input
// and output, as a stage of a shell pipeline: the first function's first
// interface, the last function's last, when no link has them.
func (d *decoder) pipelineEnds(s *Spec, pipe []*Function, at int, u *uses) {
	if len(pipe) == 0 {
		return
	}
	first, last := pipe[0], pipe[len(pipe)-1]
	if len(first.Interfaces) > 0 {
		if ifc := first.Interfaces[0]; len(u.by[ifc]) == 0 {
			n := d.pipelineNodes[0]
			// Before the pipeline's hops, where the frames start.
			s.Links = slices.Insert(s.Links, at, &Link{Transport: Stdin, node: n, path: "pipeline[0]", fromPipeline: n, Ends: []End{{first.Name, ifc.Name}}})
			u.add(ifc, n, "pipeline[0]")
		}
	}
	if len(last.Interfaces) > 0 {
		if ifc := last.Interfaces[len(last.Interfaces)-1]; len(u.by[ifc]) == 0 {
			n := d.pipelineNodes[len(d.pipelineNodes)-1]
			path := index("pipeline", len(d.pipelineNodes)-1)
			s.Links = append(s.Links, &Link{Transport: Stdout, node: n, path: path, fromPipeline: n, Ends: []End{{last.Name, ifc.Name}}})
			u.add(ifc, n, path)
		}
	}
}

// resolveMirrors finds each mirror's copying end and monitor interface.
func (d *decoder) resolveMirrors(s *Spec, fns map[string]*Function, u *uses) {
	for _, l := range s.Links {
		mr := l.Mirror
		if mr == nil {
			continue
		}
		if mr.Kind == MirrorFunction {
			if ifc := d.findEnd(fns, mr.monitorText, mr.monitorNode, mr.path+".function"); ifc != nil {
				e := End{ifc.fn.Name, ifc.Name}
				u.add(ifc, mr.monitorNode, mr.path)
				if slices.Contains(l.Ends, e) {
					d.errf(mr.monitorNode, mr.path+".function", "%s is an end of the mirrored link itself: the monitor needs an interface of its own", e)
					l.bad = true
				}
				mr.Monitor = e
			} else {
				l.bad = true
			}
		}
		if len(l.Ends) == 0 {
			continue
		}
		mr.At = l.Ends[0]
		if mr.atText != "" {
			ifc := d.findEnd(fns, mr.atText, mr.atNode, mr.path+".at")
			if ifc == nil {
				l.bad = true
				continue
			}
			e := End{ifc.fn.Name, ifc.Name}
			if !slices.Contains(l.Ends, e) {
				var ends []string
				for _, x := range l.Ends {
					ends = append(ends, x.String())
				}
				d.errf(mr.atNode, mr.path+".at", "%s is not an end of this link (its ends: %s)", e, strings.Join(ends, ", "))
				l.bad = true
				continue
			}
			mr.At = e
		}
	}
}

// nameLinks gives each link its name and checks that names are unique.
func (d *decoder) nameLinks(s *Spec) {
	first := map[string]*Link{}
	for _, l := range s.Links {
		if len(l.Ends) == 0 {
			continue
		}
		if l.Name == "" {
			l.Name = defaultLinkName(l)
		}
		if o, dup := first[l.Name]; dup {
			// Default names clash only when the same ends are linked
			// twice, which is reported already.
			if k, ok := l.keys["name"]; ok {
				d.errf(k, l.path+".name", "link name %q is taken by %s (%s)", l.Name, o.path, d.place(o.node))
			}
			continue
		}
		first[l.Name] = l
	}
}

func defaultLinkName(l *Link) string {
	a := l.Ends[0].String()
	switch l.Transport {
	case TAP:
		if l.TAPName == "" {
			return a + "--tap"
		}
		return a + "--tap-" + l.TAPName
	case File:
		return a + "--file"
	case Stdin:
		return "stdin--" + a
	case Stdout:
		return a + "--stdout"
	}
	if len(l.Ends) < 2 {
		return a + "--" + string(l.Transport)
	}
	return a + "--" + l.Ends[1].String()
}

// checkLink checks a resolved link: MTUs, formats, socket paths, mirrors.
func (d *decoder) checkLink(fns map[string]*Function, l *Link) {
	if l.bad || !l.Transport.endsOK(len(l.Ends)) {
		return
	}
	if l.Transport.framed() && l.Format == "" {
		// Files are pcap unless said otherwise: what tcpdump writes. Every
		// other stream is qemu, what `nfpipe vnf` uses by default.
		l.Format = "qemu"
		if l.Transport == File {
			l.Format = "pcap"
		}
	}
	ifc := func(e End) *Interface {
		for _, i := range fns[e.Function].Interfaces {
			if i.Name == e.Interface {
				return i
			}
		}
		return nil
	}
	if len(l.Ends) == 2 {
		a, b := ifc(l.Ends[0]), ifc(l.Ends[1])
		if a.mtu() != b.mtu() {
			d.errf(l.node, l.path, "MTU mismatch: %s has %d, %s has %d; frames bigger than the smaller would be dropped (set the same mtu on both)", l.Ends[0], a.mtu(), l.Ends[1], b.mtu())
		}
	}
	if l.Transport == Unix {
		if l.Path == "" {
			l.Path = filepath.Join(d.runDir, "links", l.Name+".sock")
		}
		if len(l.Path) > maxSocketPath {
			d.errf(l.node, l.path, "socket path %s is %d bytes, more than the %d a unix socket allows: give a shorter path:, or use a shorter runtime directory", l.Path, len(l.Path), maxSocketPath)
		}
	}
	if mr := l.Mirror; mr != nil && mr.At.Function != "" {
		at := ifc(mr.At)
		if at.Capture != "" {
			d.errf(mr.node, mr.path, "%s already captures to %s (its capture:): an interface makes one copy; mirror at the other end (at:) or drop one", mr.At, at.captureText)
		}
	}
}

// checkAddresses finds addresses and MACs used twice in the chain.
func (d *decoder) checkAddresses(s *Spec) {
	type owner struct {
		what string
		fn   *Function
		node *yaml.Node
	}
	addrs := map[netip.Addr]owner{}
	macs := map[string]owner{}
	for _, fn := range s.Functions {
		fd := d.in(fn)
		for _, ifc := range fn.Interfaces {
			for i, p := range ifc.Addrs {
				at := ifc.addrAt[i]
				if o, dup := addrs[p.Addr()]; dup {
					fd.errf(at.node, at.path, "address %s is already on %s (%s)", p.Addr(), o.what, d.in(o.fn).place(o.node))
					continue
				}
				addrs[p.Addr()] = owner{fn.Name + "." + ifc.Name, fn, at.node}
			}
			if ifc.MAC != nil {
				if o, dup := macs[ifc.MAC.String()]; dup {
					fd.errf(ifc.macNode, ifc.path+".mac", "MAC %s is already on %s (%s)", ifc.MAC, o.what, d.in(o.fn).place(o.node))
					continue
				}
				macs[ifc.MAC.String()] = owner{fn.Name + "." + ifc.Name, fn, ifc.macNode}
			}
		}
	}
}

// subnets describes a function's subnets of one family, for messages.
func subnets(fn *Function, v6 bool) string {
	var out []string
	for _, ifc := range fn.Interfaces {
		for _, p := range ifc.Addrs {
			if p.Addr().Is6() == v6 {
				out = append(out, fmt.Sprintf("%s on %s", p.Masked(), ifc.Name))
			}
		}
	}
	if len(out) == 0 {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		return fmt.Sprintf("%s has no %s address", fn.Name, fam)
	}
	return strings.Join(out, ", ")
}

// checkGateway checks that gw is on one of fn's subnets (of interface dev,
// when given) and is not one of fn's own addresses.
func (d *decoder) checkGateway(fn *Function, gw netip.Addr, dev string, n *yaml.Node, path string) {
	for _, ifc := range fn.Interfaces {
		for _, p := range ifc.Addrs {
			if p.Addr() == gw {
				d.errf(n, path, "gateway %s is %s's own address (on %s)", gw, fn.Name, ifc.Name)
				return
			}
		}
	}
	for _, ifc := range fn.Interfaces {
		if dev != "" && ifc.Name != dev {
			continue
		}
		for _, p := range ifc.Addrs {
			if p.Contains(gw) {
				return
			}
		}
	}
	if dev != "" {
		d.errf(n, path, "gateway %s is not on %s's subnets (%s)", gw, dev, subnets(&Function{Name: fn.Name, Interfaces: onlyIf(fn, dev)}, gw.Is6()))
		return
	}
	d.errf(n, path, "gateway %s is not on any of %s's subnets (%s)", gw, fn.Name, subnets(fn, gw.Is6()))
}

func onlyIf(fn *Function, name string) []*Interface {
	for _, ifc := range fn.Interfaces {
		if ifc.Name == name {
			return []*Interface{ifc}
		}
	}
	return nil
}

func (d *decoder) checkRoutes(fn *Function) {
	names := ifNames(fn)
	for i, r := range fn.Routes {
		n, path := fn.routeAt[i].node, fn.routeAt[i].path
		if r.NIC != "" && !slices.Contains(names, r.NIC) {
			d.errf(n, path, "%s", noInterface(fn, r.NIC))
			continue
		}
		if r.Gateway.IsValid() {
			if r.Gateway.Is4() != r.Dst.Addr().Is4() {
				d.errf(n, path, "gateway %s and destination %s are of different IP families", r.Gateway, r.Dst)
				continue
			}
			d.checkGateway(fn, r.Gateway, r.NIC, n, path)
		}
	}
	for i, gw := range fn.Gateways {
		d.checkGateway(fn, gw, "", fn.gwAt[i].node, fn.gwAt[i].path)
	}
	for i, nb := range fn.Neighbors {
		if nb.NIC != "" && !slices.Contains(names, nb.NIC) {
			d.errf(fn.neighAt[i].node, fn.neighAt[i].path, "%s", noInterface(fn, nb.NIC))
		}
	}
}

// ruleSource names inline rules in the rules package's errors; the NUL
// keeps it apart from any file name.
const ruleSource = "\x00rules"

// checkRules parses and validates fn's rules as `nfpipe vnf` will, and
// checks the interfaces they name.
func (d *decoder) checkRules(fn *Function) {
	if len(fn.Rules) == 0 && len(fn.RuleFiles) == 0 {
		return
	}
	rs := &rules.Ruleset{}
	opts := rules.ParseOptions{Family: rules.IPv4}
	for i, path := range fn.RuleFiles {
		b, err := readFile(d.opts, path)
		if err != nil {
			d.errf(fn.fileAt[i].node, fn.fileAt[i].path, "%s: %s", fn.ruleFileNames[i], cleanIOError(err))
			continue
		}
		rs.AddFile(fn.ruleFileNames[i], b, opts)
	}
	if len(fn.Rules) > 0 {
		rs.AddCommands(ruleSource, fn.Rules, opts)
	}
	var list rules.ErrorList
	if err := rs.Validate(); err != nil && !errors.As(err, &list) {
		d.errf(fn.node, fn.path, "rules: %v", err)
	}
	for _, e := range list {
		d.ruleError(fn, e.Pos, e.Msg)
	}
	names := ifNames(fn)
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		for _, t := range rs.Tables(f) {
			for _, c := range t.Chains {
				for _, r := range c.Rules {
					for _, x := range []struct {
						opt string
						ifc rules.Iface
					}{{"-i", r.In}, {"-o", r.Out}} {
						if x.ifc.Name == "" || ifaceMatches(x.ifc.Name, names) {
							continue
						}
						d.ruleError(fn, r.Pos, fmt.Sprintf("%s %s: %s", x.opt, x.ifc.Name, noInterface(fn, x.ifc.Name)))
					}
				}
			}
		}
	}
}

func ifaceMatches(pattern string, names []string) bool {
	if p, ok := strings.CutSuffix(pattern, "+"); ok {
		return slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, p) })
	}
	return slices.Contains(names, pattern)
}

// ruleError reports a rules error at its place: the inline rule in the
// spec, or the line of the rule file (sorted where the spec names it).
func (d *decoder) ruleError(fn *Function, p rules.Pos, msg string) {
	if rest, ok := strings.CutPrefix(p.Source, ruleSource+"["); ok {
		i, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
		if err == nil && i >= 0 && i < len(fn.ruleAt) {
			d.errf(fn.ruleAt[i].node, fn.ruleAt[i].path, "%s", msg)
			return
		}
	}
	i := slices.Index(fn.ruleFileNames, p.Source)
	if i < 0 {
		d.errf(fn.node, fn.path+".rules", "%s: %s", p, msg)
		return
	}
	n := fn.fileAt[i].node
	at := d.at
	if at == (Pos{}) {
		at = Pos{File: d.file, Line: n.Line, Col: n.Column}
	}
	d.e.add(&Error{Pos: Pos{File: p.Source, Line: p.Line}, Path: fn.fileAt[i].path, Msg: msg, at: at})
}

// checkParams runs fn's kind parameters through the kind's own
// validation: the flags of `nfpipe vnf KIND` parse them and the kind's
// constructor checks them, with the function's interfaces. An error is
// reported at the parameter it names (a kind's errors start with --FLAG),
// which is then left out so that the next error can be found too.
func (d *decoder) checkParams(fn *Function) {
	if d.opts.Build == nil || fn.Kind == "" {
		return
	}
	kind, err := d.opts.Registry.Lookup(fn.Kind)
	if err != nil {
		return
	}
	base := []string{"--name", fn.Name}
	for _, ifc := range fn.Interfaces {
		base = append(base, "--if", ifc.Name+"=seqpacket:3"+addrOpts(ifc))
	}
	type value struct {
		flag string
		at   item
	}
	var active []value
	for _, p := range fn.Params {
		for _, it := range p.at {
			active = append(active, value{p.Flag, it})
		}
	}
	for range 16 {
		args := slices.Clone(base)
		for _, v := range active {
			args = append(args, "--"+v.flag+"="+v.at.val)
		}
		cfg, err := d.opts.Build(fn.Kind, args)
		if err == nil {
			_, err = kind.New(cfg)
		}
		if err == nil {
			return
		}
		msg := err.Error()
		culprit := -1
		for i, v := range active {
			if !namesFlag(msg, v.flag) {
				continue
			}
			if culprit < 0 || strings.Contains(msg, strconv.Quote(v.at.val)) && !strings.Contains(msg, strconv.Quote(active[culprit].at.val)) {
				culprit = i
			}
		}
		if culprit < 0 {
			d.errf(fn.node, fn.path, "%s", msg)
			return
		}
		v := active[culprit]
		d.errf(v.at.node, v.at.path, "%s", trimFlag(err, v.flag))
		active = slices.Delete(active, culprit, culprit+1)
	}
}

// namesFlag reports whether an error message is about --flag: it starts
// with it, or quotes it (as pflag does).
func namesFlag(msg, flag string) bool {
	if rest, ok := strings.CutPrefix(msg, "--"+flag); ok && (rest == "" || strings.IndexAny(rest[:1], ": =") == 0) {
		return true
	}
	return strings.Contains(msg, strconv.Quote("--"+flag))
}

// trimFlag drops a leading "--flag: " from a kind's error: the path
// already says which setting it is.
func trimFlag(err error, flag string) string {
	return strings.TrimPrefix(err.Error(), "--"+flag+": ")
}

// addrOpts returns an interface's ,ip=... options.
func addrOpts(ifc *Interface) string {
	var b strings.Builder
	for _, p := range ifc.Addrs {
		b.WriteString(",ip=" + p.String())
	}
	return b.String()
}
