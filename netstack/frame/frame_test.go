package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// mkFrame returns an n-byte frame whose every byte depends on seed and its
// position, so that a frame read back from the wrong place shows.
func mkFrame(n int, seed byte) []byte {
	b := make([]byte, n)
	copy(b, []byte{0x02, 0, 0, 0, 0, seed, 0x02, 0, 0, 0, 1, seed, 0x88, 0xb5})
	for i := 14; i < n; i++ {
		b[i] = byte(i*7) + seed
	}
	return b
}

// fixedClock is a clock for pcap writers whose output must not depend on
// when the test runs. Each call advances it by 1.5 ms.
func fixedClock() func() time.Time {
	t := time.Unix(1700000000, 123456000)
	return func() time.Time {
		now := t
		t = t.Add(1500 * time.Microsecond)
		return now
	}
}

// newTestWriter is NewWriter with a fixed clock for PCAP.
func newTestWriter(f Format, w io.Writer) Writer {
	if f == PCAP {
		return NewPcapWriter(w, fixedClock())
	}
	return NewWriter(f, w)
}

// encode writes frames in format f.
func encode(t testing.TB, f Format, frames ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newTestWriter(f, &buf)
	for _, b := range frames {
		if err := w.WriteFrame(b); err != nil {
			t.Fatalf("%s: WriteFrame(%d bytes): %v", f, len(b), err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("%s: Flush: %v", f, err)
	}
	return buf.Bytes()
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats() {
		if got, err := ParseFormat(f.String()); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	for s, want := range map[string]Format{"QEMU": QEMU, "Vde": VDE, "PCAP": PCAP, "hEx": Hex} {
		if got, err := ParseFormat(s); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	_, err := ParseFormat("pcapng")
	if want := `unknown frame format "pcapng" (valid: hex, pcap, qemu, vde)`; err == nil || err.Error() != want {
		t.Errorf("ParseFormat(pcapng) error = %v; want %q", err, want)
	}
}

func TestFormatString(t *testing.T) {
	want := []string{"qemu", "vde", "pcap", "hex"}
	fs := Formats()
	if len(fs) != len(want) {
		t.Fatalf("Formats() = %v; want %d formats", fs, len(want))
	}
	for i, f := range fs {
		if f != Format(i) || f.String() != want[i] {
			t.Errorf("Formats()[%d] = %d %q; want %d %q", i, f, f, i, want[i])
		}
	}
	if got := Format(9).String(); got != "Format(9)" {
		t.Errorf("Format(9).String() = %q", got)
	}
}

func TestFormatText(t *testing.T) {
	var f Format
	if err := f.UnmarshalText([]byte("Hex")); err != nil || f != Hex {
		t.Errorf("UnmarshalText(Hex) = %v, %v", f, err)
	}
	if b, err := VDE.MarshalText(); err != nil || string(b) != "vde" {
		t.Errorf("VDE.MarshalText() = %q, %v", b, err)
	}
	if err := f.UnmarshalText([]byte("tap")); err == nil {
		t.Error("UnmarshalText(tap) succeeded")
	}
	if _, err := Format(-1).MarshalText(); err == nil {
		t.Error("Format(-1).MarshalText() succeeded")
	}
}

func TestInvalidFormat(t *testing.T) {
	const want = "unknown frame format 7"
	if _, err := NewReader(Format(7), bytes.NewReader(nil)).ReadFrame(); err == nil || err.Error() != want {
		t.Errorf("ReadFrame error = %v; want %q", err, want)
	}
	w := NewWriter(Format(7), io.Discard)
	if err := w.WriteFrame(mkFrame(60, 1)); err == nil || err.Error() != want {
		t.Errorf("WriteFrame error = %v; want %q", err, want)
	}
	if err := w.Flush(); err == nil {
		t.Error("Flush succeeded")
	}
}

func TestMalformedErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  MalformedError
		want string
	}{
		{MalformedError{Format: Hex, Offset: 300, Line: 12, Reason: "odd number of hex digits"}, "hex line 12: odd number of hex digits"},
		{MalformedError{Format: QEMU, Offset: 4096, Reason: "length 90000 exceeds 65535", Fatal: true}, "qemu frame at byte 4096: length 90000 exceeds 65535"},
		{MalformedError{Format: VDE, Offset: 2, Reason: "x"}, "vde frame at byte 2: x"},
		{MalformedError{Format: PCAP, Offset: 24, Reason: "x"}, "pcap record at byte 24: x"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q; want %q", got, tc.want)
		}
	}
}

// TestRoundTrip writes frames of every interesting size in every format
// and reads them back through readers that deliver the stream in pieces.
func TestRoundTrip(t *testing.T) {
	var frames [][]byte
	for i, n := range []int{14, 60, 1514, 9000, 65535, 15, 64, 1518, 65534} {
		frames = append(frames, mkFrame(n, byte(i)))
	}
	for i := range 300 {
		frames = append(frames, mkFrame(14+(i*37)%1500, byte(i)))
	}
	frames = append(frames, mkFrame(65535, 0xee), mkFrame(14, 0xff))

	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"onebyte":  iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"dataerr":  iotest.DataErrReader,
		"onebyte2": func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) },
	}
	for _, f := range Formats() {
		stream := encode(t, f, frames...)
		for name, wrap := range readers {
			t.Run(fmt.Sprintf("%s/%s", f, name), func(t *testing.T) {
				r := NewReader(f, wrap(bytes.NewReader(stream)))
				clock := fixedClock()
				for i, want := range frames {
					got, err := r.ReadFrame()
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("frame %d: got %d bytes %x...; want %d bytes %x...", i, len(got), head(got), len(want), head(want))
					}
					if tr, ok := r.(TimedReader); ok {
						if ts, want := tr.Timestamp(), clock().Truncate(time.Microsecond); !ts.Equal(want) {
							t.Fatalf("frame %d: timestamp %v; want %v", i, ts, want)
						}
					}
				}
				for range 2 {
					if b, err := r.ReadFrame(); err != io.EOF {
						t.Fatalf("after last frame: got %d bytes, %v; want io.EOF", len(b), err)
					}
				}
			})
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 20)] }

// TestWriterRejectsSize checks that a frame of the wrong size is refused
// and leaves no trace in the stream.
func TestWriterRejectsSize(t *testing.T) {
	for _, f := range Formats() {
		empty := encode(t, f)
		for _, n := range []int{0, 13, 65536, 100000} {
			var buf bytes.Buffer
			w := newTestWriter(f, &buf)
			err := w.WriteFrame(make([]byte, n))
			want := fmt.Sprintf("%s: cannot write a %d-byte frame: frame length outside 14..65535", f, n)
			if err == nil || err.Error() != want || !errors.Is(err, ErrFrameSize) {
				t.Errorf("%s: WriteFrame(%d bytes) = %v; want %q", f, n, err, want)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), empty) {
				t.Errorf("%s: WriteFrame(%d bytes) wrote %q", f, n, buf.Bytes())
			}
		}
	}
}

// TestWriterBuffers checks that nothing reaches the io.Writer before Flush
// while the buffer has room, and everything does after it.
func TestWriterBuffers(t *testing.T) {
	for _, f := range Formats() {
		var buf bytes.Buffer
		w := newTestWriter(f, &buf)
		if err := w.WriteFrame(mkFrame(100, 1)); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before Flush", f, buf.Len())
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if buf.Len() == 0 {
			t.Errorf("%s: nothing written after Flush", f)
		}
	}
}

// failWriter fails every write.
type failWriter struct{}

var errBroken = errors.New("broken pipe")

func (failWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestWriterError(t *testing.T) {
	for _, f := range Formats() {
		w := newTestWriter(f, failWriter{})
		var err error
		// Write until the buffer fills and the error surfaces.
		for i := 0; i < 10 && err == nil; i++ {
			err = w.WriteFrame(mkFrame(MaxFrame, 1))
		}
		if !errors.Is(err, errBroken) {
			t.Errorf("%s: WriteFrame error = %v; want %v", f, err, errBroken)
		}
		if err := w.Flush(); !errors.Is(err, errBroken) {
			t.Errorf("%s: Flush error = %v; want %v", f, err, errBroken)
		}
	}
}

// TestReadError checks that an error from the underlying reader is
// returned wrapped and sticks.
func TestReadError(t *testing.T) {
	errRead := errors.New("connection reset")
	for _, f := range Formats() {
		stream := encode(t, f, mkFrame(60, 1), mkFrame(60, 2))
		// Cut the second frame in half so the error lands inside it.
		in := io.MultiReader(bytes.NewReader(stream[:len(stream)-30]), iotest.ErrReader(errRead))
		r := NewReader(f, in)
		if _, err := r.ReadFrame(); err != nil {
			t.Fatalf("%s: first frame: %v", f, err)
		}
		_, err := r.ReadFrame()
		if !errors.Is(err, errRead) {
			t.Fatalf("%s: second frame error = %v; want %v", f, err, errRead)
		}
		if _, err2 := r.ReadFrame(); err2 != err {
			t.Errorf("%s: error after read error = %v; want %v again", f, err2, err)
		}
	}
}

// step is one expected ReadFrame result: a frame, an error, or io.EOF.
type step struct {
	frame []byte
	err   string
	fatal bool
	eof   bool
}

func okStep(b []byte) step                { return step{frame: b} }
func errStep(msg string) step             { return step{err: msg} }
func fatalStep(msg string) step           { return step{err: msg, fatal: true} }
func eofStep() step                       { return step{eof: true} }
func steps(s ...step) []step              { return s }
func cat(parts ...[]byte) []byte          { return bytes.Join(parts, nil) }
func repeat(b byte, n int) []byte         { return bytes.Repeat([]byte{b}, n) }
func u32be(v uint32) []byte               { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
func u16be(v uint16) []byte               { return []byte{byte(v >> 8), byte(v)} }
func concat(a []byte, b ...[]byte) []byte { return cat(append([][]byte{a}, b...)...) }

// malformedCase is a stream and the results reading it must give.
type malformedCase struct {
	name  string
	f     Format
	in    []byte
	steps []step
}

// runSteps reads in and checks each result against want, both with the
// stream in one piece and one byte at a time. After a fatal error it also
// checks that the error sticks.
func runSteps(t *testing.T, f Format, in []byte, want []step) {
	t.Helper()
	for _, oneByte := range []bool{false, true} {
		var src io.Reader = bytes.NewReader(in)
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		r := NewReader(f, src)
		for i, s := range want {
			b, err := r.ReadFrame()
			switch {
			case s.eof:
				if err != io.EOF {
					t.Fatalf("onebyte=%v step %d: got %d bytes, %v; want io.EOF", oneByte, i, len(b), err)
				}
			case s.err != "":
				var me *MalformedError
				if !errors.As(err, &me) {
					t.Fatalf("onebyte=%v step %d: got %d bytes, %v; want MalformedError %q", oneByte, i, len(b), err, s.err)
				}
				if me.Error() != s.err || me.Fatal != s.fatal || me.Format != f {
					t.Fatalf("onebyte=%v step %d: got %q fatal=%v format=%v; want %q fatal=%v", oneByte, i, me.Error(), me.Fatal, me.Format, s.err, s.fatal)
				}
				if b != nil {
					t.Fatalf("onebyte=%v step %d: frame returned with error", oneByte, i)
				}
				if s.fatal {
					if _, err2 := r.ReadFrame(); err2 != err {
						t.Fatalf("onebyte=%v step %d: after fatal error got %v; want the same error", oneByte, i, err2)
					}
				}
			default:
				if err != nil {
					t.Fatalf("onebyte=%v step %d: %v", oneByte, i, err)
				}
				if !bytes.Equal(b, s.frame) {
					t.Fatalf("onebyte=%v step %d: got %x; want %x", oneByte, i, head(b), head(s.frame))
				}
			}
		}
	}
}

func runCases(t *testing.T, cases []malformedCase) {
	for _, tc := range cases {
		t.Run(tc.f.String()+"/"+tc.name, func(t *testing.T) {
			runSteps(t, tc.f, tc.in, tc.steps)
		})
	}
}
