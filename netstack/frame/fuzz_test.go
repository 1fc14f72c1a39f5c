package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// readResult is what one ReadFrame call gave.
type readResult struct {
	frame []byte
	err   string
}

// readAll reads r to the end, or to a fatal or read error, checking the
// Reader contract on the way. It fails the test if a call makes no
// progress, since a reader that returns the same non-fatal error without
// consuming input would spin its caller forever.
func readAll(t *testing.T, f Format, r Reader, inputLen int) []readResult {
	t.Helper()
	var out []readResult
	// Every call consumes at least one byte of input, except the last.
	for range inputLen + 2 {
		b, err := r.ReadFrame()
		if err == io.EOF {
			if b != nil {
				t.Fatalf("%s: frame returned with io.EOF", f)
			}
			return out
		}
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("%s: error %v (%T) is not a MalformedError", f, err, err)
			}
			if b != nil {
				t.Fatalf("%s: frame returned with error %v", f, err)
			}
			if me.Format != f || me.Reason == "" || me.Offset < 0 || int(me.Offset) > inputLen {
				t.Fatalf("%s: bad error fields %#v", f, me)
			}
			out = append(out, readResult{err: err.Error()})
			if me.Fatal {
				if _, err2 := r.ReadFrame(); err2 != err {
					t.Fatalf("%s: after fatal %v, got %v", f, err, err2)
				}
				return out
			}
			continue
		}
		if len(b) < MinFrame || len(b) > MaxFrame {
			t.Fatalf("%s: returned a %d-byte frame", f, len(b))
		}
		out = append(out, readResult{frame: bytes.Clone(b)})
	}
	t.Fatalf("%s: more than %d results from %d bytes of input", f, inputLen+2, inputLen)
	return nil
}

// fuzzReader is the property every reader must have: no panic, only frames
// of legal size, the same results however the input is split into reads,
// and every frame survives a round trip through our Writer.
func fuzzReader(t *testing.T, f Format, data []byte) {
	whole := readAll(t, f, NewReader(f, bytes.NewReader(data)), len(data))
	pieces := readAll(t, f, NewReader(f, iotest.OneByteReader(bytes.NewReader(data))), len(data))
	if len(whole) != len(pieces) {
		t.Fatalf("%s: %d results reading whole, %d reading byte by byte", f, len(whole), len(pieces))
	}
	var frames [][]byte
	for i := range whole {
		if whole[i].err != pieces[i].err || !bytes.Equal(whole[i].frame, pieces[i].frame) {
			t.Fatalf("%s: result %d differs: whole %q %x, byte by byte %q %x",
				f, i, whole[i].err, whole[i].frame, pieces[i].err, pieces[i].frame)
		}
		if whole[i].frame != nil {
			frames = append(frames, whole[i].frame)
		}
	}

	var buf bytes.Buffer
	w := newTestWriter(f, &buf)
	for _, b := range frames {
		if err := w.WriteFrame(b); err != nil {
			t.Fatalf("%s: re-encoding a %d-byte frame: %v", f, len(b), err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(f, &buf)
	for i, want := range frames {
		got, err := r.ReadFrame()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: re-encoded frame %d: got %x, %v; want %x", f, i, got, err, want)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("%s: after re-encoded frames: %v; want io.EOF", f, err)
	}
}

// seedCorpus adds good streams of f and the malformed cases of the unit
// tests.
func seedCorpus(f *testing.F, format Format, bad [][]byte) {
	f.Add([]byte{})
	f.Add(encode(f, format, mkFrame(14, 1)))
	f.Add(encode(f, format, mkFrame(60, 1), mkFrame(1514, 2), mkFrame(14, 3)))
	for _, b := range bad {
		f.Add(b)
	}
}

func FuzzQEMUReader(f *testing.F) {
	good := mkFrame(60, 1)
	seedCorpus(f, QEMU, [][]byte{
		qemuRec(3, []byte("abc")),
		cat(qemuRec(0, nil), qemuRec(60, good)),
		qemuRec(90000, nil),
		qemuRec(60, good[:10]),
		{0, 0},
	})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzReader(t, QEMU, data) })
}

func FuzzVDEReader(f *testing.F) {
	good := mkFrame(60, 1)
	seedCorpus(f, VDE, [][]byte{
		vdeRec(3, []byte("abc")),
		cat(vdeRec(0, nil), vdeRec(60, good)),
		vdeRec(0xffff, good),
		{0},
	})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzReader(t, VDE, data) })
}

func FuzzPcapReader(f *testing.F) {
	good := mkFrame(60, 1)
	hdr := pcapHeader(binary.LittleEndian, pcapMagicMicro, 2, 4, 1)
	tiny, _, _ := tinyPcapng()
	seedCorpus(f, PCAP, [][]byte{
		tiny,
		cat(be.shb(), be.idb(1), be.epb(0, 1, good, 60), le.shb(), le.idb(1), le.spb(60, good)),
		cat(le.shb(), le.idb(1), le.epb(0, 0, good[:40], 100)),
		cat(le.shb(), le.idb(1, le.opt(9, []byte{0x80 | 20}), le.opt(14, le.u64(5)), le.endOpts()), le.epb(0, 1<<40, good, 60)),
		cat(hdr, pcapRec(binary.LittleEndian, 0, 0, 20, 60, good[:20])),
		cat(pcapHeader(binary.BigEndian, pcapMagicNano, 2, 4, 1), pcapRec(binary.BigEndian, 1, 2, 60, 60, good)),
		cat(hdr, pcapRec(binary.LittleEndian, 0, 0, 300000, 300000, nil)),
		pcapHeader(binary.LittleEndian, pcapMagicMicro, 2, 4, 113),
	})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzReader(t, PCAP, data) })
}

func FuzzHexReader(f *testing.F) {
	seedCorpus(f, Hex, [][]byte{
		[]byte("# comment\n\nff:ff:ff:ff:ff:ff-02:50:aa:bb:cc:dd 08 00\r\n"),
		[]byte("FFFFFFFFFFFF 0250AABBCCDD 0800 4\n"),
		[]byte("FFFFFFFFFFFF 0250AABBCCDZ 0800\n"),
		[]byte("0102\nFFFFFFFFFFFF0250AABBCCDD0800"),
		[]byte("--\n\t#\n"),
	})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzReader(t, Hex, data) })
}
