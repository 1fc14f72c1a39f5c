package chain

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a place in a file. Line and Col count from 1; zero means unknown
// (a rule file's errors have a line and no column, a missing file neither).
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col", "file:line" or "file".
func (p Pos) String() string {
	switch {
	case p.Line > 0 && p.Col > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Error is one problem in a chain spec: where it is, the path of the field
// at fault (functions.fw.rules[2]) and what is wrong.
type Error struct {
	Pos Pos
	// Path names the field, as keys and indexes from the top of the spec:
	// "links[1].ends[0]", "functions.nat.interfaces.eth1.mtu". It is empty
	// for a problem with the file as a whole.
	Path string
	Msg  string
	// at is where in the chain spec the error sorts: its own position, or
	// for an error inside a file the spec names (a rule file, a function
	// file), the position of the name.
	at Pos
	// seq keeps errors at one place in the order they were found.
	seq int
}

// Error returns "file:line:col: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a spec, in the order of the spec.
// Decode and Check return it as their error when there is at least one.
type ErrorList []*Error

// Error returns the errors one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	s := make([]error, len(l))
	for i, e := range l {
		s[i] = e
	}
	return s
}

// errs collects errors while a spec is decoded and checked.
type errs struct {
	list ErrorList
}

func (c *errs) add(e *Error) {
	if e.at == (Pos{}) {
		e.at = e.Pos
	}
	e.seq = len(c.list)
	c.list = append(c.list, e)
}

// sorted returns the errors in spec order, each said once, or nil.
func (c *errs) sorted() error {
	if len(c.list) == 0 {
		return nil
	}
	l := slices.Clone(c.list)
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.at.Line, b.at.Line), cmp.Compare(a.at.Col, b.at.Col),
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.seq, b.seq))
	})
	seen := map[string]bool{}
	l = slices.DeleteFunc(l, func(e *Error) bool {
		s := e.Error()
		dup := seen[s]
		seen[s] = true
		return dup
	})
	return l
}
