package frame

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// lengthReader reads the length-prefixed formats, QEMU and VDE. They differ
// only in the width of the prefix.
type lengthReader struct {
	f    Format
	s    stream
	hlen int     // 4 for QEMU, 2 for VDE
	hdr  [4]byte // the length prefix
	buf  []byte  // MaxFrame bytes, reused for every frame
	err  error   // sticky once the stream cannot be trusted
}

var _ Reader = (*lengthReader)(nil)

func newLengthReader(f Format, r io.Reader) *lengthReader {
	lr := &lengthReader{f: f, s: newStream(r), hlen: 4}
	if f == VDE {
		lr.hlen = 2
	}
	return lr
}

func (lr *lengthReader) ReadFrame() ([]byte, error) {
	if lr.err != nil {
		return nil, lr.err
	}
	b, err := lr.next()
	if err != nil {
		if me, ok := err.(*MalformedError); err != io.EOF && (!ok || me.Fatal) {
			lr.err = err
		}
	}
	return b, err
}

func (lr *lengthReader) next() ([]byte, error) {
	start := lr.s.off
	n, err := lr.s.readFull(lr.hdr[:lr.hlen])
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, lr.ioErr(start, "length prefix", lr.hlen, n, err)
	}
	var size int
	if lr.hlen == 4 {
		// Compare as uint32 so that a length of 4 GiB does not wrap
		// to a small or negative int on a 32-bit platform.
		u := binary.BigEndian.Uint32(lr.hdr[:4])
		if u > MaxFrame {
			// Unlike a short frame we could skip this one, but a
			// length this large almost always means the stream is
			// not QEMU at all (or we lost sync), and skipping could
			// mean swallowing gigabytes of whatever it really is.
			return nil, &MalformedError{Format: lr.f, Offset: start, Fatal: true,
				Reason: fmt.Sprintf("length %d exceeds %d (is the other side speaking this format?)", u, MaxFrame)}
		}
		size = int(u)
	} else {
		size = int(binary.BigEndian.Uint16(lr.hdr[:2]))
	}
	if size < MinFrame {
		// The length is still trustworthy, so skip the runt and keep
		// the stream.
		if d, err := lr.s.discard(size); err != nil {
			return nil, lr.ioErr(start, "frame", size, d, err)
		}
		return nil, &MalformedError{Format: lr.f, Offset: start,
			Reason: fmt.Sprintf("frame length %d shorter than an Ethernet header (%d)", size, MinFrame)}
	}
	if lr.buf == nil {
		lr.buf = make([]byte, MaxFrame)
	}
	b := lr.buf[:size]
	if n, err := lr.s.readFull(b); err != nil {
		return nil, lr.ioErr(start, "frame", size, n, err)
	}
	return b, nil
}

// ioErr turns a failed read of want bytes, of which got arrived, into the
// error to return: a Fatal truncation if the stream ended, the wrapped read
// error otherwise.
func (lr *lengthReader) ioErr(start int64, what string, want, got int, err error) error {
	if isEOF(err) {
		return &MalformedError{Format: lr.f, Offset: start, Fatal: true,
			Reason: fmt.Sprintf("truncated %s: want %d bytes, got %d", what, want, got)}
	}
	return fmt.Errorf("%s: read at byte %d: %w", lr.f, lr.s.off, err)
}

// lengthWriter writes the length-prefixed formats, QEMU and VDE.
type lengthWriter struct {
	f    Format
	bw   *bufio.Writer
	hlen int
	hdr  [4]byte
}

var _ Writer = (*lengthWriter)(nil)

func newLengthWriter(f Format, w io.Writer) *lengthWriter {
	lw := &lengthWriter{f: f, bw: bufio.NewWriterSize(w, bufSize), hlen: 4}
	if f == VDE {
		lw.hlen = 2
	}
	return lw
}

func (lw *lengthWriter) WriteFrame(b []byte) error {
	if err := checkSize(lw.f, b); err != nil {
		return err
	}
	if lw.hlen == 4 {
		binary.BigEndian.PutUint32(lw.hdr[:], uint32(len(b)))
	} else {
		binary.BigEndian.PutUint16(lw.hdr[:], uint16(len(b)))
	}
	if _, err := lw.bw.Write(lw.hdr[:lw.hlen]); err != nil {
		return fmt.Errorf("%s: write: %w", lw.f, err)
	}
	if _, err := lw.bw.Write(b); err != nil {
		return fmt.Errorf("%s: write: %w", lw.f, err)
	}
	return nil
}

func (lw *lengthWriter) Flush() error {
	if err := lw.bw.Flush(); err != nil {
		return fmt.Errorf("%s: flush: %w", lw.f, err)
	}
	return nil
}
