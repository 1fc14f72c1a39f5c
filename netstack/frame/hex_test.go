package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// hexOf returns the line our writer makes for b, without the newline.
func hexOf(t testing.TB, b []byte) string {
	return strings.TrimSuffix(string(encode(t, Hex, b)), "\n")
}

func TestHexWire(t *testing.T) {
	f := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x50, 0xaa, 0xbb, 0xcc, 0xdd, 0x08, 0x00,
		0x45, 0x00, 0x00, 0x54, 0x1f, 0x90,
	}
	if got, want := string(encode(t, Hex, f)), "FFFFFFFFFFFF 0250AABBCCDD 0800 45 00 00 54 1F 90\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	if got, want := string(encode(t, Hex, f[:14], f[:15])), "FFFFFFFFFFFF 0250AABBCCDD 0800\nFFFFFFFFFFFF 0250AABBCCDD 0800 45\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

// TestHexGrep checks the promise of the line layout: a byte pair in the
// payload can be grepped for without matching inside an address.
func TestHexGrep(t *testing.T) {
	inMAC := []byte{0x00, 0x1f, 0x90, 0x1f, 0x90, 0x00, 0x1f, 0x90, 0x1f, 0x90, 0x1f, 0x90, 0x1f, 0x90, 0x00, 0x01}
	if line := hexOf(t, inMAC); strings.Contains(line, " 1F 90 ") || strings.Contains(line, " 1F 90") {
		t.Errorf("%q matches a byte pair that is only in the header", line)
	}
	inPayload := append(bytes.Clone(inMAC[:14]), 0x00, 0x1f, 0x90, 0x00)
	if line := hexOf(t, inPayload); !strings.Contains(line, " 1F 90 ") {
		t.Errorf("%q does not match a byte pair in the payload", line)
	}
}

func TestHexMalformed(t *testing.T) {
	good := mkFrame(60, 1)
	line := hexOf(t, good)
	big := mkFrame(MaxFrame, 2)
	padToMax := line + strings.Repeat(" ", maxHexLine-len(line))
	runCases(t, []malformedCase{
		{"empty", Hex, nil, steps(eofStep(), eofStep())},
		{"blank lines and comments", Hex, []byte("\n# comment\n   \n\t# indented comment\n\r\n" + line + "\n\n#\n"), steps(
			okStep(good), eofStep())},
		{"crlf", Hex, []byte(line + "\r\n" + line + "\r\n"), steps(okStep(good), okStep(good), eofStep())},
		{"no trailing newline", Hex, []byte(line + "\n" + line), steps(okStep(good), okStep(good), eofStep())},
		{"separators and case", Hex, []byte("ff:ff:ff:ff:ff:ff-02:50:aA:Bb:cc:dd\t08-00  45 \n"), steps(
			okStep([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x50, 0xaa, 0xbb, 0xcc, 0xdd, 0x08, 0x00, 0x45}), eofStep())},
		{"solid lower case", Hex, []byte(hex.EncodeToString(good) + "\n"), steps(okStep(good), eofStep())},
		{"largest frame", Hex, []byte(hex.EncodeToString(big)), steps(okStep(big), eofStep())},
		{"line of exactly the limit", Hex, []byte(padToMax + "\n" + padToMax + "\r\n"), steps(okStep(good), okStep(good), eofStep())},

		{"odd digits", Hex, []byte("# c\n" + line + "0\n" + line + "\n"), steps(
			errStep("hex line 2: odd number of hex digits"), okStep(good), eofStep())},
		{"odd digit split by separator", Hex, []byte("FFFFFFFFFFFF 0250AABBCCDD 0800 4 5\n"), steps(
			okStep([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x50, 0xaa, 0xbb, 0xcc, 0xdd, 0x08, 0x00, 0x45}), eofStep())},
		{"invalid character", Hex, []byte("FFFFFFFFFFFF 0250AABBCCDZ 0800\n" + line + "\n"), steps(
			errStep("hex line 1: invalid character 'Z' at column 25"), okStep(good), eofStep())},
		{"trailing comment", Hex, []byte(line + " # note\n" + line), steps(
			errStep(fmt.Sprintf("hex line 1: invalid character '#' at column %d", len(line)+2)), okStep(good), eofStep())},
		{"utf-8", Hex, []byte("FFFF é\n"), steps(
			errStep(`hex line 1: invalid character '\xc3' at column 6`), eofStep())},
		{"0x prefix", Hex, []byte("0x" + line + "\n"), steps(
			errStep("hex line 1: invalid character 'x' at column 2"), eofStep())},
		{"runt", Hex, []byte("\n\n0102 03\n" + line + "\n"), steps(
			errStep("hex line 3: frame length 3 shorter than an Ethernet header (14)"), okStep(good), eofStep())},
		{"separators only", Hex, []byte("--\n"), steps(
			errStep("hex line 1: frame length 0 shorter than an Ethernet header (14)"), eofStep())},
		{"jumbo", Hex, []byte(strings.Repeat("ab", 70000) + "\n" + line + "\n"), steps(
			errStep("hex line 1: frame length 70000 exceeds 65535"), okStep(good), eofStep())},
		{"line over the limit", Hex, []byte(padToMax + " \n" + line + "\n"), steps(
			errStep("hex line 1: line longer than 196669 characters"), okStep(good), eofStep())},
		{"long line of digits", Hex, []byte(strings.Repeat("A", 1<<20) + "\n" + line + "\n"), steps(
			errStep("hex line 1: line longer than 196669 characters"), okStep(good), eofStep())},
		{"long line at end", Hex, []byte(line + "\n" + strings.Repeat("A", 1<<20)), steps(
			okStep(good), errStep("hex line 2: line longer than 196669 characters"), eofStep())},
		{"long comment", Hex, []byte("#" + strings.Repeat("x", 1<<20) + "\n" + line + "\n"), steps(
			okStep(good), eofStep())},
		{"bad last line", Hex, []byte(line + "\n0102"), steps(
			okStep(good), errStep("hex line 2: frame length 2 shorter than an Ethernet header (14)"), eofStep())},
	})
}

func TestHexErrorOffset(t *testing.T) {
	in := "# header\nzz\n"
	_, err := NewReader(Hex, strings.NewReader(in)).ReadFrame()
	var me *MalformedError
	if !errors.As(err, &me) || me.Offset != 9 || me.Line != 2 || me.Fatal {
		t.Errorf("got %#v; want offset 9, line 2, not fatal", err)
	}
}

// repeatReader yields n copies of c.
type repeatReader struct {
	c byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n)]
	for i := range p {
		p[i] = r.c
	}
	r.n -= len(p)
	return len(p), nil
}

// TestHexLongLineMemory feeds a 64 MiB line and checks that the reader
// skips it without holding it.
func TestHexLongLineMemory(t *testing.T) {
	good := mkFrame(60, 1)
	in := io.MultiReader(&repeatReader{c: 'A', n: 64 << 20}, strings.NewReader("\n"+hexOf(t, good)+"\n"))
	r := NewReader(Hex, in)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := r.ReadFrame()
	runtime.ReadMemStats(&after)
	if want := "hex line 1: line longer than 196669 characters"; err == nil || err.Error() != want {
		t.Fatalf("got %v; want %q", err, want)
	}
	// The reader's own buffers are 128 KiB; allow some slack for the
	// runtime and the test.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("skipping a 64 MiB line allocated %d bytes", alloc)
	}
	if b, err := r.ReadFrame(); err != nil || !bytes.Equal(b, good) {
		t.Errorf("after the long line: %x, %v; want %x", b, err, good)
	}
}
