package frame

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// maxHexLine is the longest line the hex reader decodes: a MaxFrame frame
// with a separator after every byte, plus slack for a CR and extra
// spacing. Longer lines are skipped, so that a stream with no newlines
// cannot make the reader buffer without bound.
const maxHexLine = 3*MaxFrame + 64

// Classes of input bytes other than hex digits, in hexValue.
const (
	hexSpace   = 16 // blank: space, tab, and CR so that CRLF input works
	hexSep     = 17 // a separator people put between bytes: ':' or '-'
	hexInvalid = 18
)

// hexValue maps an input byte to its digit value or its class.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = hexInvalid
	}
	for i := byte(0); i < 10; i++ {
		t['0'+i] = i
	}
	for i := byte(0); i < 6; i++ {
		t['a'+i] = 10 + i
		t['A'+i] = 10 + i
	}
	t[' '], t['\t'], t['\r'] = hexSpace, hexSpace, hexSpace
	t[':'], t['-'] = hexSep, hexSep
	return t
}()

// hexReader reads one frame per line of hex. It decodes each line as it
// streams past rather than collecting it first, so memory stays at one
// frame however long a line is.
type hexReader struct {
	s    stream
	line int    // lines consumed so far
	buf  []byte // MaxFrame bytes, reused for every frame
	err  error  // sticky after a read error
}

var _ Reader = (*hexReader)(nil)

func newHexReader(r io.Reader) *hexReader {
	return &hexReader{s: newStream(r)}
}

// hexLine is the decoding state of the current line.
type hexLine struct {
	length  int    // bytes of the line seen so far, excluding the newline
	n       int    // bytes decoded so far; only the first MaxFrame are kept
	hi      byte   // the first digit of a pair, while odd is set
	odd     bool   // an unpaired digit is pending
	started bool   // a character other than a blank has been seen
	comment bool   // the line is a comment
	tooLong bool   // the line exceeds maxHexLine, CR aside; decoding stopped
	last    byte   // the last byte of the line so far
	bad     string // the first invalid character, if any
}

func (hr *hexReader) ReadFrame() ([]byte, error) {
	if hr.err != nil {
		return nil, hr.err
	}
	if hr.buf == nil {
		hr.buf = make([]byte, MaxFrame)
	}
	for {
		start := hr.s.off
		var l hexLine
		if err := hr.scanLine(&l); err != nil {
			if err != io.EOF {
				hr.err = err
			}
			return nil, err
		}
		hr.line++
		var reason string
		switch {
		case l.comment:
			continue
		case l.tooLong || l.length > maxHexLine && l.last != '\r':
			reason = fmt.Sprintf("line longer than %d characters", maxHexLine)
		case !l.started:
			continue
		case l.bad != "":
			reason = l.bad
		case l.odd:
			reason = "odd number of hex digits"
		case l.n < MinFrame:
			reason = fmt.Sprintf("frame length %d shorter than an Ethernet header (%d)", l.n, MinFrame)
		case l.n > MaxFrame:
			reason = fmt.Sprintf("frame length %d exceeds %d", l.n, MaxFrame)
		default:
			return hr.buf[:l.n], nil
		}
		return nil, &MalformedError{Format: Hex, Offset: start, Line: hr.line, Reason: reason}
	}
}

// scanLine consumes one line, decoding it into hr.buf. It returns io.EOF
// only if the stream ended before the line's first byte; a last line with
// no newline is a line.
func (hr *hexReader) scanLine(l *hexLine) error {
	for {
		chunk, err := hr.s.br.ReadSlice('\n')
		hr.s.off += int64(len(chunk))
		ended := false
		if n := len(chunk); n > 0 && chunk[n-1] == '\n' {
			chunk, ended = chunk[:n-1], true
		}
		if !l.tooLong {
			// One more than the limit, for the CR of a CRLF.
			if room := maxHexLine + 1 - l.length; len(chunk) > room {
				// Decode up to the limit so that a long comment is
				// still recognised as one, then only count.
				hr.decode(l, chunk[:room])
				l.tooLong = true
			} else {
				hr.decode(l, chunk)
			}
		}
		l.length += len(chunk)
		if len(chunk) > 0 {
			l.last = chunk[len(chunk)-1]
		}
		switch {
		case ended:
			return nil
		case err == bufio.ErrBufferFull:
			// A line longer than the buffer: keep going.
		case err == io.EOF:
			if l.length == 0 {
				return io.EOF
			}
			return nil
		case err != nil:
			return fmt.Errorf("hex: read at byte %d: %w", hr.s.off, err)
		}
	}
}

// decode decodes the next part of a line. It stops at the first comment
// marker or invalid character, since the rest of such a line is skipped.
func (hr *hexReader) decode(l *hexLine, p []byte) {
	if l.comment || l.bad != "" {
		return
	}
	// Work on locals: through the pointer the compiler would store every
	// field back on every byte.
	buf, n, hi, odd, started := hr.buf[:MaxFrame], l.n, l.hi, l.odd, l.started
	defer func() { l.n, l.hi, l.odd, l.started = n, hi, odd, started }()
	for i := 0; i < len(p); i++ {
		c := p[i]
		v := hexValue[c]
		switch {
		case v < 16:
			started = true
			// Most input is digits in pairs: take a pair in one go.
			if !odd && i+1 < len(p) {
				if lo := hexValue[p[i+1]]; lo < 16 {
					if n < MaxFrame {
						buf[n] = v<<4 | lo
					}
					n++
					i++
					continue
				}
			}
			if !odd {
				hi, odd = v, true
				continue
			}
			if n < MaxFrame {
				buf[n] = hi<<4 | v
			}
			n++
			odd = false
		case v == hexSpace:
		case v == hexSep:
			started = true
		case c == '#' && !started:
			l.comment = true
			return
		default:
			started = true
			l.bad = fmt.Sprintf("invalid character %s at column %d", quoteByte(c), l.length+i+1)
			return
		}
	}
}

// quoteByte quotes c as a Go character literal, showing a byte that is
// part of a UTF-8 sequence as the byte rather than as a wrong character.
func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf(`'\x%02x'`, c)
}

// hexDigits are upper case so that output greps the same way every time.
const hexDigits = "0123456789ABCDEF"

// hexWriter writes one frame per line: destination MAC, source MAC and
// EtherType as solid runs of digits, then every further byte as a
// space-separated pair. The solid runs keep a grep for " 1F 90 " from
// matching inside an address.
type hexWriter struct {
	bw   *bufio.Writer
	line []byte
}

var _ Writer = (*hexWriter)(nil)

func newHexWriter(w io.Writer) *hexWriter {
	return &hexWriter{bw: bufio.NewWriterSize(w, bufSize)}
}

func (hw *hexWriter) WriteFrame(b []byte) error {
	if err := checkSize(Hex, b); err != nil {
		return err
	}
	// Three characters per byte, less the separators the first 14 bytes
	// do without, plus the newline.
	size := 3*len(b) - 12 + 1
	if hw.line == nil {
		hw.line = make([]byte, 3*MaxFrame)
	}
	l := hw.line[:size]
	j := 0
	for i, c := range b[:14] {
		if i == 6 || i == 12 {
			l[j] = ' '
			j++
		}
		l[j], l[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
	for _, c := range b[14:] {
		l[j], l[j+1], l[j+2] = ' ', hexDigits[c>>4], hexDigits[c&0xf]
		j += 3
	}
	l[j] = '\n'
	if _, err := hw.bw.Write(l); err != nil {
		return fmt.Errorf("hex: write: %w", err)
	}
	return nil
}

func (hw *hexWriter) Flush() error {
	if err := hw.bw.Flush(); err != nil {
		return fmt.Errorf("hex: flush: %w", err)
	}
	return nil
}
