package frame

import (
	"io"
	"testing"
)

// loopReader yields head once and then body over and over, so that a
// reader can be run for any number of frames from one encoded stream.
type loopReader struct {
	head, body []byte
	off        int // in head while < len(head), then in body
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if l.off < len(l.head) {
			c := copy(p[n:], l.head[l.off:])
			n += c
			l.off += c
			continue
		}
		i := (l.off - len(l.head)) % len(l.body)
		c := copy(p[n:], l.body[i:])
		n += c
		l.off += c
	}
	return n, nil
}

// endlessReader returns a reader of format f that yields 1514-byte frames
// forever, and the size of one frame on the wire.
func endlessReader(tb testing.TB, f Format) (Reader, int) {
	const n = 64
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = mkFrame(1514, byte(i))
	}
	var head []byte
	if f == PCAP {
		head = encode(tb, f)
	}
	body := encode(tb, f, frames...)[len(head):]
	return NewReader(f, &loopReader{head: head, body: body}), len(body) / n
}

// pcapngEndless is endlessReader for pcapng.
func pcapngEndless() (Reader, int) {
	head := cat(le.shb(), le.idb(1, le.opt(9, []byte{9}), le.endOpts()))
	epb := le.epb(0, 1700000000_000000000, mkFrame(1514, 1), 1514)
	return NewReader(PCAP, &loopReader{head: head, body: epb}), len(epb)
}

func BenchmarkRead(b *testing.B) {
	for _, f := range Formats() {
		b.Run(f.String(), func(b *testing.B) {
			r, size := endlessReader(b, f)
			benchRead(b, r, size)
		})
	}
	b.Run("pcapng", func(b *testing.B) {
		r, size := pcapngEndless()
		benchRead(b, r, size)
	})
}

func benchRead(b *testing.B, r Reader, wireSize int) {
	b.SetBytes(1514)
	b.ReportAllocs()
	for b.Loop() {
		if fr, err := r.ReadFrame(); err != nil || len(fr) != 1514 {
			b.Fatalf("%d bytes, %v", len(fr), err)
		}
	}
	// The bytes each frame takes in the stream, to compare formats.
	b.ReportMetric(float64(wireSize), "wire-B/frame")
}

func BenchmarkWrite(b *testing.B) {
	fr := mkFrame(1514, 1)
	for _, f := range Formats() {
		b.Run(f.String(), func(b *testing.B) {
			w := NewWriter(f, io.Discard)
			b.SetBytes(int64(len(fr)))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(fr); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestSteadyStateAllocs holds readers and writers to no allocation per
// frame once their buffers exist: they sit on every packet's path.
func TestSteadyStateAllocs(t *testing.T) {
	check := func(name string, fn func()) {
		fn() // let lazily made buffers be made
		if n := testing.AllocsPerRun(500, fn); n != 0 {
			t.Errorf("%s: %v allocations per frame; want 0", name, n)
		}
	}
	fr := mkFrame(1514, 1)
	for _, f := range Formats() {
		r, _ := endlessReader(t, f)
		check("read "+f.String(), func() {
			if _, err := r.ReadFrame(); err != nil {
				t.Fatal(err)
			}
		})
		w := NewWriter(f, io.Discard)
		check("write "+f.String(), func() {
			if err := w.WriteFrame(fr); err != nil {
				t.Fatal(err)
			}
		})
	}
	r, _ := pcapngEndless()
	check("read pcapng", func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	})
}
