package rules

import (
	"fmt"
	"strings"
)

// Error is one problem in the input: where it is, the token at fault and
// what is wrong.
type Error struct {
	Pos Pos
	// Token is the word of the input at fault (an option, a value, a chain
	// name), or "" when the problem is the line as a whole.
	Token string
	// Msg describes the problem; it already quotes Token where useful.
	Msg string
}

// Error returns "place: message", e.g. `nat.rules:3: unknown option "--dprot"`.
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found, in input order. Functions of this
// package return it as their error when there is at least one problem.
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

// err returns the list as an error, or nil when it is empty.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func newError(pos Pos, tok, format string, args ...any) *Error {
	return &Error{Pos: pos, Token: tok, Msg: fmt.Sprintf(format, args...)}
}
