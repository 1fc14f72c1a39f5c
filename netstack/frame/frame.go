// Package frame carries Ethernet frames on byte streams: pipes, FIFOs,
// stream sockets and files.
//
// A byte stream has no message boundaries, so each Format is one way of
// delimiting Ethernet frames in it: a length prefix (QEMU, VDE), a capture
// file (PCAP) or a line of text (Hex). A Reader turns a stream back into
// frames and a Writer turns frames into a stream. Readers treat their input
// as untrusted: a bad frame is reported as a *MalformedError, and the reader
// skips it when the format still lets it find the next one.
//
// Readers and Writers are not safe for concurrent use; a stream has one
// reading and one writing goroutine.
package frame

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Format is a way of delimiting Ethernet frames in a byte stream.
type Format int

const (
	// QEMU prefixes each frame with its length as a 4-byte big-endian
	// integer. It is byte-compatible with QEMU's `-netdev stream` (and
	// `-netdev socket`) and with passt.
	QEMU Format = iota
	// VDE prefixes each frame with its length as a 2-byte big-endian
	// integer, as vde_plug does on its standard input and output.
	VDE
	// PCAP is a libpcap savefile stream with LINKTYPE_ETHERNET, as written
	// by `tcpdump -w -`. Readers take either byte order and microsecond or
	// nanosecond timestamps, and also read pcapng (`dumpcap -w -`),
	// skipping packets of non-Ethernet interfaces.
	PCAP
	// Hex is one frame per text line in hexadecimal, EtherPIPE style, so
	// that frames can be read, grepped and typed by hand. Writers put the
	// destination MAC, source MAC and EtherType as runs of upper-case
	// digits and every further byte as a space-separated pair:
	//
	//	FFFFFFFFFFFF 0250AABBCCDD 0800 45 00 00 54 ...
	//
	// Readers ignore case, blanks and ':' or '-' separators, skip empty
	// lines and lines starting with '#', and accept CRLF line ends.
	Hex
)

// formatNames is indexed by Format.
var formatNames = [...]string{
	QEMU: "qemu",
	VDE:  "vde",
	PCAP: "pcap",
	Hex:  "hex",
}

const (
	// MinFrame is the shortest frame any Reader returns or any Writer
	// accepts: an Ethernet header (two MAC addresses and an EtherType).
	MinFrame = 14
	// MaxFrame is the longest frame any Reader returns or any Writer
	// accepts. It is the most that the VDE format's 2-byte length can
	// carry, so that every frame can be written in every format.
	MaxFrame = 65535
)

// bufSize is the size of every bufio buffer: large enough that a stream of
// full-size Ethernet frames costs about one system call per 40 frames.
const bufSize = 64 << 10

// ErrFrameSize is wrapped by the error a Writer returns for a frame shorter
// than MinFrame or longer than MaxFrame.
var ErrFrameSize = fmt.Errorf("frame length outside %d..%d", MinFrame, MaxFrame)

// Formats returns every Format, in the order of their values.
func Formats() []Format {
	fs := make([]Format, len(formatNames))
	for i := range fs {
		fs[i] = Format(i)
	}
	return fs
}

// String returns the name ParseFormat accepts, or "Format(n)" for a value
// that is not a Format.
func (f Format) String() string {
	if f.valid() {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

func (f Format) valid() bool { return f >= 0 && int(f) < len(formatNames) }

// ParseFormat returns the Format named s, ignoring case. The error for an
// unknown name lists the valid ones.
func ParseFormat(s string) (Format, error) {
	for i, name := range formatNames {
		if strings.EqualFold(s, name) {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown frame format %q (valid: %s)", s, validNames())
}

// validNames lists the format names sorted, as the house style asks of any
// error that lists the known choices.
func validNames() string {
	return strings.Join(slices.Sorted(slices.Values(formatNames[:])), ", ")
}

// MarshalText returns the name of f, so that a Format can sit in a config
// file or a flag.
func (f Format) MarshalText() ([]byte, error) {
	if !f.valid() {
		return nil, fmt.Errorf("unknown frame format %d", int(f))
	}
	return []byte(formatNames[f]), nil
}

// UnmarshalText sets f from its name, as ParseFormat does.
func (f *Format) UnmarshalText(b []byte) error {
	v, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Reader reads Ethernet frames from a byte stream.
type Reader interface {
	// ReadFrame returns the next frame, MinFrame to MaxFrame bytes long.
	// The slice is owned by the Reader and valid only until the next
	// call.
	//
	// At a clean end of stream, on a frame boundary, ReadFrame returns
	// io.EOF. On bad input it returns a *MalformedError. If the error is
	// not Fatal the reader has already skipped past the bad frame and the
	// caller may count it and call ReadFrame again. If it is Fatal the
	// stream cannot be trusted any further, and every later call returns
	// the same error. An error from the underlying io.Reader is returned
	// wrapped, and is also final, because the reader no longer knows
	// where the next frame starts.
	ReadFrame() ([]byte, error)
}

// TimedReader is implemented by the Readers whose format carries a capture
// time for each frame (PCAP).
type TimedReader interface {
	Reader
	// Timestamp returns the capture time of the frame last returned by
	// ReadFrame, or the zero time if the format recorded none for it
	// (a pcapng Simple Packet Block).
	Timestamp() time.Time
}

// Writer writes Ethernet frames to a byte stream.
type Writer interface {
	// WriteFrame writes one frame. A frame shorter than MinFrame or longer
	// than MaxFrame is refused with an error wrapping ErrFrameSize, and
	// nothing is written. Output is buffered: it reaches the underlying
	// io.Writer when the buffer fills or on Flush. WriteFrame never blocks
	// other than in the underlying io.Writer. Once the underlying
	// io.Writer fails, every later call returns that error.
	WriteFrame(b []byte) error
	// Flush writes any buffered output to the underlying io.Writer.
	Flush() error
}

// NewReader returns a Reader of format f from r. It reads from r only when
// ReadFrame is called and buffers up to 64 KiB ahead. A Reader for a value
// of f that is not a Format fails on every call.
func NewReader(f Format, r io.Reader) Reader {
	switch f {
	case QEMU, VDE:
		return newLengthReader(f, r)
	case PCAP:
		return newPcapReader(r)
	case Hex:
		return newHexReader(r)
	}
	return badFormat(f)
}

// NewWriter returns a Writer of format f to w, with a 64 KiB buffer. A PCAP
// writer buffers the file header at once, so a Flush right after creation
// lets a reader such as `tcpdump -r -` start before the first frame. A
// Writer for a value of f that is not a Format fails on every call.
func NewWriter(f Format, w io.Writer) Writer {
	switch f {
	case QEMU, VDE:
		return newLengthWriter(f, w)
	case PCAP:
		return NewPcapWriter(w, time.Now)
	case Hex:
		return newHexWriter(w)
	}
	return badFormat(f)
}

// checkSize is the common WriteFrame precondition.
func checkSize(f Format, b []byte) error {
	if len(b) < MinFrame || len(b) > MaxFrame {
		return fmt.Errorf("%s: cannot write a %d-byte frame: %w", f, len(b), ErrFrameSize)
	}
	return nil
}

// badFormat is returned for an invalid Format rather than panicking, since
// the value may come from a config file that was not validated.
type badFormat Format

var (
	_ Reader = badFormat(0)
	_ Writer = badFormat(0)
)

func (f badFormat) err() error                 { return fmt.Errorf("unknown frame format %d", int(f)) }
func (f badFormat) ReadFrame() ([]byte, error) { return nil, f.err() }
func (f badFormat) WriteFrame([]byte) error    { return f.err() }
func (f badFormat) Flush() error               { return f.err() }

// MalformedError reports bad input: a frame, record or line that does not
// follow the format.
type MalformedError struct {
	// Format is the format the stream was read as.
	Format Format
	// Offset is the byte offset in the stream where the bad frame, record,
	// block or line began.
	Offset int64
	// Line is the 1-based line number of the bad line for Hex, and 0 for
	// the other formats.
	Line int
	// Reason says what was wrong, e.g. "frame length 3 shorter than an
	// Ethernet header (14)".
	Reason string
	// Fatal says that the reader could not skip the bad input and that
	// the rest of the stream cannot be trusted.
	Fatal bool

	// what names the unit that was bad when it is not the format's usual
	// one, e.g. "pcapng block" rather than "pcap record".
	what string
}

// Error puts the position first, e.g. "hex line 12: odd number of hex
// digits" or "qemu frame at byte 4096: length 90000 exceeds 65535".
func (e *MalformedError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d: %s", e.Format, e.Line, e.Reason)
	}
	what := e.what
	if what == "" {
		what = e.Format.String() + " frame"
		if e.Format == PCAP {
			what = "pcap record"
		}
	}
	return fmt.Sprintf("%s at byte %d: %s", what, e.Offset, e.Reason)
}

// stream is the bufio.Reader under every Reader, counting the bytes
// consumed so that errors can say where the bad input began.
type stream struct {
	br  *bufio.Reader
	off int64
}

func newStream(r io.Reader) stream {
	return stream{br: bufio.NewReaderSize(r, bufSize)}
}

// readFull reads exactly len(p) bytes. It returns io.EOF if the stream
// ended before the first byte and io.ErrUnexpectedEOF if it ended after
// it, as io.ReadFull does, with the count read.
func (s *stream) readFull(p []byte) (int, error) {
	n, err := io.ReadFull(s.br, p)
	s.off += int64(n)
	return n, err
}

// discard skips n bytes, with the same errors as readFull.
func (s *stream) discard(n int) (int, error) {
	d, err := s.br.Discard(n)
	s.off += int64(d)
	if err == io.EOF && d > 0 {
		err = io.ErrUnexpectedEOF
	}
	return d, err
}

// isEOF reports whether err means the stream ended, cleanly or not.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
