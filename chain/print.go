package chain

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the plan for people: the runtime directory, each
// function with its interfaces, descriptors and command line, the links
// and the mirrors.
func (p *Plan) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	title := "chain " + p.Chain
	if p.Description != "" {
		title += ": " + p.Description
	}
	fmt.Fprintln(b, title)
	fmt.Fprintf(b, "  spec     %s\n", p.Spec)
	fmt.Fprintf(b, "  runtime  %s (control.sock, runner.pid, logs/, fn/)\n", p.Runtime.Dir)
	for _, f := range p.Runtime.FIFOs {
		fmt.Fprintf(b, "  fifo     %s\n", f)
	}
	for _, s := range p.Runtime.Sockets {
		fmt.Fprintf(b, "  socket   %s\n", s)
	}
	fmt.Fprintf(b, "\nfunctions (%d)\n", len(p.Functions))
	for _, f := range p.Functions {
		role := ""
		if f.Client {
			role = ", client"
		}
		fmt.Fprintf(b, "  %s (%s%s), restart %s\n", f.Name, f.Kind, role, f.Restart)
		width := 0
		for _, ifc := range f.Interfaces {
			width = max(width, len(ifc.Name))
		}
		for _, ifc := range f.Interfaces {
			addrs := make([]string, len(ifc.Addrs))
			for i, a := range ifc.Addrs {
				addrs[i] = a.String()
			}
			if len(addrs) == 0 {
				addrs = []string{"no address"}
			}
			fmt.Fprintf(b, "    %-*s  %s  mac %s  mtu %d  %s\n", width, ifc.Name, strings.Join(addrs, " "), ifc.MAC, ifc.MTU, p.joinedBy(ifc))
		}
		for _, fd := range f.FDs {
			fmt.Fprintf(b, "    fd %d  %s of links[%d] %s, end %d (%s)\n", fd.FD, fd.Object, fd.Link, p.Links[fd.Link].Name, fd.End, fd.Interface)
		}
		for _, e := range f.Env {
			fmt.Fprintf(b, "    env   %s\n", e)
		}
		fmt.Fprintf(b, "    log   %s\n", f.Log)
		fmt.Fprintf(b, "    ctl   %s\n", f.Control)
		fmt.Fprintf(b, "    $ %s\n", commandLine(f.Argv, "      "))
	}
	fmt.Fprintf(b, "\nlinks (%d)\n", len(p.Links))
	for i, l := range p.Links {
		fmt.Fprintf(b, "  [%d] %s: %s\n", i, l.Name, linkText(l))
	}
	if len(p.Mirrors) > 0 {
		fmt.Fprintf(b, "\nmirrors (%d)\n", len(p.Mirrors))
		for i, m := range p.Mirrors {
			fmt.Fprintf(b, "  [%d] links[%d] %s: %s\n", i, m.Link, p.Links[m.Link].Name, mirrorText(m))
		}
	}
	if p.Host != nil {
		p.Host.writeText(b, p)
	}
	if len(p.Notes) > 0 {
		fmt.Fprintln(b, "\nnotes")
		for _, n := range p.Notes {
			fmt.Fprintf(b, "  - %s\n", n)
		}
	}
	return b.Flush()
}

// joinedBy says what an interface is joined to.
func (p *Plan) joinedBy(ifc InterfacePlan) string {
	if ifc.Link < 0 {
		m := p.Mirrors[ifc.Mirror]
		return fmt.Sprintf("monitor of links[%d] %s", m.Link, p.Links[m.Link].Name)
	}
	s := fmt.Sprintf("links[%d] %s", ifc.Link, p.Links[ifc.Link].Name)
	if ifc.Capture != "" {
		s += ", capture " + ifc.Capture
	}
	return s
}

func linkText(l LinkPlan) string {
	t := string(l.Transport)
	if l.Format != "" {
		t += " format=" + l.Format
	}
	ends := make([]string, len(l.Ends))
	for i, e := range l.Ends {
		ends[i] = e.String()
	}
	switch l.Transport {
	case FIFO:
		return fmt.Sprintf("%s, %s <-> %s via %s and %s", t, ends[0], ends[1], l.FIFOs[0], l.FIFOs[1])
	case Unix:
		if len(ends) == 1 {
			return fmt.Sprintf("%s, %s listens on %s", t, ends[0], l.Path)
		}
		return fmt.Sprintf("%s, %s listens on %s, %s connects", t, ends[0], l.Path, ends[1])
	case TAP:
		s := fmt.Sprintf("%s, %s <-> TAP device %s", t, ends[0], l.TAP)
		if l.Netns != "" {
			s += " in netns " + l.Netns
		}
		return s
	case File:
		var parts []string
		if l.Replay != "" {
			r := "replays " + l.Replay
			if l.OriginalTiming {
				r += " at its own pace"
			}
			parts = append(parts, r)
		}
		if l.Record != "" {
			parts = append(parts, "records into "+l.Record)
		}
		return fmt.Sprintf("%s, %s %s", t, ends[0], strings.Join(parts, ", "))
	case Stdin:
		return fmt.Sprintf("%s, the chain's standard input -> %s", t, ends[0])
	case Stdout:
		return fmt.Sprintf("%s, %s -> the chain's standard output", t, ends[0])
	}
	return fmt.Sprintf("%s, %s <-> %s", t, ends[0], ends[1])
}

func mirrorText(m MirrorPlan) string {
	switch m.Kind {
	case MirrorFIFO:
		return fmt.Sprintf("to the FIFO %s (capture= on %s)", m.Capture, m.At)
	case MirrorFunction:
		return fmt.Sprintf("to %s through the FIFO %s (capture= on %s)", *m.Monitor, m.Capture, m.At)
	}
	return fmt.Sprintf("to the capture file %s (capture= on %s)", m.Capture, m.At)
}

// commandLine renders argv as a shell command, one option per line.
func commandLine(argv []string, indent string) string {
	var b strings.Builder
	b.WriteString("nfpipe")
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if strings.HasPrefix(a, "--") && i >= 2 {
			b.WriteString(" \\\n" + indent)
		} else {
			b.WriteString(" ")
		}
		if flag, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(flag, "--") {
			b.WriteString(flag + "=" + shellQuote(val))
		} else {
			b.WriteString(shellQuote(a))
		}
		// A flag and its separate value stay on one line.
		if strings.HasPrefix(a, "--") && !strings.Contains(a, "=") && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
			i++
			b.WriteString(" " + shellQuote(argv[i]))
		}
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
