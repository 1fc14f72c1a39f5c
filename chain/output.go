package chain

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// prefixer merges the children's output onto one writer, a line at a time,
// each line prefixed with its function's name (coloured on a terminal), so
// that lines of different functions never interleave mid-line.
type prefixer struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	width int
	hue   map[string]int
}

var palette = []int{36, 33, 35, 32, 34, 31, 96, 93, 95, 92, 94, 91}

func newPrefixer(w io.Writer, color bool, p *Plan) *prefixer {
	x := &prefixer{w: w, color: color, hue: map[string]int{}}
	for i, f := range p.Functions {
		x.width = max(x.width, len(f.Name))
		x.hue[f.Name] = palette[i%len(palette)]
	}
	return x
}

func (x *prefixer) prefix(name string) string {
	pad := fmt.Sprintf("%-*s |", x.width, name)
	if x.color {
		return fmt.Sprintf("\x1b[%dm%s\x1b[0m ", x.hue[name], pad)
	}
	return pad + " "
}

// writers returns the writers for a child's stdout and stderr: both go to
// the merged output and, unprefixed, to the function's log file.
func (x *prefixer) writers(name string, log io.Writer) (stdout, stderr *lineWriter) {
	return &lineWriter{x: x, prefix: x.prefix(name), log: log}, &lineWriter{x: x, prefix: x.prefix(name), log: log}
}

// lineWriter buffers a partial line until its newline.
type lineWriter struct {
	x      *prefixer
	prefix string
	log    io.Writer
	buf    []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	if l.log != nil {
		l.log.Write(b)
	}
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a very long line: out it goes
		l.Flush()
	}
	return len(b), nil
}

func (l *lineWriter) emit(line []byte) {
	l.x.mu.Lock()
	defer l.x.mu.Unlock()
	io.WriteString(l.x.w, l.prefix)
	l.x.w.Write(line)
}

// Flush writes a last unterminated line.
func (l *lineWriter) Flush() {
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}
