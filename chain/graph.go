package chain

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// GraphFormats are the formats WriteGraph draws.
var GraphFormats = []string{"ascii", "dot", "mermaid"}

// WriteGraph draws the chain's topology: functions, the links between
// their interfaces, what lies outside the chain (TAP devices, files, the
// runner's stdin and stdout) and mirrors. format is "ascii" (for a
// terminal), "dot" (Graphviz) or "mermaid".
func (p *Plan) WriteGraph(w io.Writer, format string) error {
	g := newGraph(p)
	var out string
	switch format {
	case "ascii", "":
		out = g.ascii()
	case "dot":
		out = g.dot()
	case "mermaid":
		out = g.mermaid()
	default:
		return fmt.Errorf("graph format %q: want ascii, dot or mermaid", format)
	}
	_, err := io.WriteString(w, out)
	return err
}

// gedge is a link or mirror seen from one of its functions.
type gedge struct {
	key   string // the link or mirror, so that it is drawn once
	local string // the local interface
	// remote is the other function's end, or nil for something outside
	// the chain, which ext names.
	remote *End
	ext    string
	label  string // transport (and format), or "mirror"
	// in and out say which way frames go, seen from local: both for a
	// two-way link.
	in, out bool
	mirror  bool
}

type graph struct {
	p     *Plan
	kinds map[string]string
	edges map[string][]gedge
}

func newGraph(p *Plan) *graph {
	g := &graph{p: p, kinds: map[string]string{}, edges: map[string][]gedge{}}
	for _, f := range p.Functions {
		g.kinds[f.Name] = f.Kind
	}
	// Edges in each function's interface order: its link, then a mirror it
	// makes or feeds.
	for _, f := range p.Functions {
		for _, ifc := range f.Interfaces {
			if ifc.Link < 0 {
				m := p.Mirrors[ifc.Mirror]
				at := m.At
				g.edges[f.Name] = append(g.edges[f.Name], gedge{key: fmt.Sprintf("m%d", ifc.Mirror), local: ifc.Name, remote: &at, label: "mirror", in: true, mirror: true})
				continue
			}
			l := p.Links[ifc.Link]
			e := gedge{key: fmt.Sprintf("l%d", ifc.Link), local: ifc.Name, label: string(l.Transport), in: true, out: true}
			if l.Format != "" {
				e.label += "/" + l.Format
			}
			if len(l.Ends) == 2 {
				r := l.Ends[1-ifc.End]
				e.remote = &r
			} else {
				e.ext = externalName(l)
				switch l.Transport {
				case Stdin:
					e.out = false
				case Stdout:
					e.in = false
				case File:
					e.in, e.out = l.Replay != "", l.Record != ""
				}
			}
			g.edges[f.Name] = append(g.edges[f.Name], e)
			if l.Mirror >= 0 && p.Mirrors[l.Mirror].At == (End{f.Name, ifc.Name}) {
				m := p.Mirrors[l.Mirror]
				me := gedge{key: fmt.Sprintf("m%d", l.Mirror), local: ifc.Name, label: "mirror", out: true, mirror: true}
				if m.Monitor != nil {
					mon := *m.Monitor
					me.remote = &mon
				} else {
					me.ext = fmt.Sprintf("[%s %s]", m.Kind, filepath.Base(m.Capture))
				}
				g.edges[f.Name] = append(g.edges[f.Name], me)
			}
		}
	}
	return g
}

func externalName(l LinkPlan) string {
	switch l.Transport {
	case TAP:
		if l.Netns != "" {
			return fmt.Sprintf("[tap %s in %s]", l.TAP, l.Netns)
		}
		return "[tap " + l.TAP + "]"
	case File:
		var parts []string
		if l.Replay != "" {
			parts = append(parts, "replay "+filepath.Base(l.Replay))
		}
		if l.Record != "" {
			parts = append(parts, "record "+filepath.Base(l.Record))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case Stdin:
		return "[stdin]"
	case Stdout:
		return "[stdout]"
	case Unix:
		return "[unix " + l.Path + "]"
	}
	return "[" + string(l.Transport) + "]"
}

func (g *graph) label(fn string) string { return fmt.Sprintf("%s (%s)", fn, g.kinds[fn]) }

// arrow draws an edge's line, seen from its local end on the left.
func (e gedge) arrow() string {
	line := "--"
	if e.mirror {
		line = "~~"
	}
	left, right := line, line
	switch {
	case e.in && !e.out:
		left = "<" + line
	case e.out && !e.in:
		right = line + ">"
	}
	return left + e.label + right
}

// ascii draws the chain as lines of `fn (kind) if --transport-- if fn
// (kind) ...`: a depth-first walk from the chain's start, where a function
// with several links continues on new lines aligned under its first.
func (g *graph) ascii() string {
	var lines []string
	drawn := map[string]bool{}
	visited := map[string]bool{}
	var draw func(fn string, li int) int
	draw = func(fn string, li int) int {
		col := len(lines[li]) + 1
		first := true
		for _, e := range g.edges[fn] {
			if drawn[e.key] {
				continue
			}
			drawn[e.key] = true
			if first {
				lines[li] += " "
				first = false
			} else {
				lines = append(lines, strings.Repeat(" ", col))
				li = len(lines) - 1
			}
			lines[li] += e.local + " " + e.arrow() + " "
			if e.remote == nil {
				lines[li] += e.ext
				continue
			}
			lines[li] += e.remote.Interface + " " + g.label(e.remote.Function)
			if visited[e.remote.Function] {
				lines[li] += " (above)"
				continue
			}
			visited[e.remote.Function] = true
			li = draw(e.remote.Function, li)
		}
		return li
	}
	for _, root := range g.roots() {
		if visited[root] {
			continue
		}
		visited[root] = true
		line := ""
		// A chain that reads the runner's stdin starts with it, on the
		// left, the way a shell pipeline reads.
		for _, e := range g.edges[root] {
			if e.ext == "[stdin]" && !drawn[e.key] {
				drawn[e.key] = true
				line = fmt.Sprintf("%s --%s--> %s ", e.ext, e.label, e.local)
				break
			}
		}
		lines = append(lines, line+g.label(root))
		draw(root, len(lines)-1)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chain %s: %s, %s", g.p.Chain, count(len(g.p.Functions), "function"), count(len(g.p.Links), "link"))
	if len(g.p.Mirrors) > 0 {
		fmt.Fprintf(&b, ", %s", count(len(g.p.Mirrors), "mirror"))
	}
	b.WriteString("\n\n")
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	return b.String()
}

// roots orders the functions to start walks from: one reading the
// runner's stdin first, then functions with a single link (the clients
// and servers at the edges), then the rest, each in plan order.
func (g *graph) roots() []string {
	var stdin, leaves, rest []string
	for _, f := range g.p.Functions {
		es := g.edges[f.Name]
		links := 0
		for _, e := range es {
			if !e.mirror {
				links++
			}
		}
		switch {
		case len(es) > 0 && es[0].ext == "[stdin]":
			stdin = append(stdin, f.Name)
		case links == 1 && !es[0].mirror:
			leaves = append(leaves, f.Name)
		default:
			rest = append(rest, f.Name)
		}
	}
	return append(append(stdin, leaves...), rest...)
}

// dot draws the chain for Graphviz: `nfpipe chain graph --format dot F |
// dot -Tsvg > chain.svg`.
func (g *graph) dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %q {\n", g.p.Chain)
	b.WriteString("  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n")
	for _, f := range g.p.Functions {
		lbl := []string{f.Name + " (" + f.Kind + ")"}
		for _, ifc := range f.Interfaces {
			s := ifc.Name
			for _, a := range ifc.Addrs {
				s += " " + a.String()
			}
			lbl = append(lbl, s)
		}
		fmt.Fprintf(&b, "  %q [label=%q];\n", f.Name, strings.Join(lbl, "\n"))
	}
	ext := 0
	drawn := map[string]bool{}
	for _, f := range g.p.Functions {
		for _, e := range g.edges[f.Name] {
			if drawn[e.key] {
				continue
			}
			drawn[e.key] = true
			attrs := fmt.Sprintf("label=%q, taillabel=%q", e.label, e.local)
			if e.mirror {
				attrs += ", style=dashed"
			}
			to := ""
			if e.remote != nil {
				to = fmt.Sprintf("%q", e.remote.Function)
				attrs += fmt.Sprintf(", headlabel=%q", e.remote.Interface)
			} else {
				to = fmt.Sprintf("\"ext%d\"", ext)
				fmt.Fprintf(&b, "  \"ext%d\" [shape=note, label=%q];\n", ext, strings.Trim(e.ext, "[]"))
				ext++
			}
			switch {
			case e.in && !e.out:
				attrs += ", dir=back"
			case e.out && !e.in:
				attrs += ", dir=forward"
			}
			fmt.Fprintf(&b, "  %q -- %s [%s];\n", f.Name, to, attrs)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// mermaid draws the chain as a Mermaid flowchart (GitHub renders it in
// ```mermaid blocks).
func (g *graph) mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := map[string]string{}
	for i, f := range g.p.Functions {
		id[f.Name] = fmt.Sprintf("f%d", i)
		fmt.Fprintf(&b, "  f%d[\"%s (%s)\"]\n", i, mermaidText(f.Name), mermaidText(f.Kind))
	}
	ext := 0
	drawn := map[string]bool{}
	for _, f := range g.p.Functions {
		for _, e := range g.edges[f.Name] {
			if drawn[e.key] {
				continue
			}
			drawn[e.key] = true
			to, text := "", e.local+" · "+e.label
			if e.remote != nil {
				to = id[e.remote.Function]
				text += " · " + e.remote.Interface
			} else {
				to = fmt.Sprintf("x%d", ext)
				fmt.Fprintf(&b, "  x%d[/\"%s\"/]\n", ext, mermaidText(strings.Trim(e.ext, "[]")))
				ext++
			}
			from, line := id[f.Name], "---"
			switch {
			case e.in && !e.out:
				// Frames come in: draw the arrow from where they come.
				from, to, line = to, from, "-->"
				text = e.label + " · " + e.local
			case e.out && !e.in:
				line = "-->"
			}
			if e.mirror {
				line = "-.->"
			}
			fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", from, line, mermaidText(text), to)
		}
	}
	return b.String()
}

// mermaidText escapes a label for Mermaid's quoted strings.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "|", "#124;").Replace(s)
}

// count returns "1 link", "2 links".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
