// Package syncwriter serialises writes from concurrent goroutines to one
// writer, so that lines from different sources never interleave.
package syncwriter

import (
	"bytes"
	"io"
	"sync"
)

// Writer is an io.Writer safe for concurrent use: each Write reaches W
// whole, one at a time.
type Writer struct {
	mu sync.Mutex
	W  io.Writer
}

// New returns a Writer for w.
func New(w io.Writer) *Writer { return &Writer{W: w} }

// Write implements io.Writer.
func (s *Writer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.W.Write(b)
}

// Buffer is a bytes.Buffer safe to read while another goroutine writes it
// (a child process's output, say).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
