package frame

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/tiny.pcapng from the test's builder")

// pcapHeader builds a classic pcap file header.
func pcapHeader(bo binary.ByteOrder, magic uint32, major, minor uint16, linktype uint32) []byte {
	h := make([]byte, 24)
	bo.PutUint32(h[0:], magic)
	bo.PutUint16(h[4:], major)
	bo.PutUint16(h[6:], minor)
	bo.PutUint32(h[16:], 262144)
	bo.PutUint32(h[20:], linktype)
	return h
}

// pcapRec builds a classic pcap record; data need not be caplen long.
func pcapRec(bo binary.ByteOrder, sec, frac, caplen, origlen uint32, data []byte) []byte {
	h := make([]byte, 16)
	bo.PutUint32(h[0:], sec)
	bo.PutUint32(h[4:], frac)
	bo.PutUint32(h[8:], caplen)
	bo.PutUint32(h[12:], origlen)
	return cat(h, data)
}

// ng builds pcapng blocks in one byte order.
type ng struct{ bo binary.AppendByteOrder }

var (
	le = ng{binary.LittleEndian}
	be = ng{binary.BigEndian}
)

func (n ng) u16(v uint16) []byte { return n.bo.AppendUint16(nil, v) }
func (n ng) u32(v uint32) []byte { return n.bo.AppendUint32(nil, v) }
func (n ng) u64(v uint64) []byte { return n.bo.AppendUint64(nil, v) }

func padded(b []byte) []byte { return cat(b, make([]byte, int(pad4(uint32(len(b))))-len(b))) }

// block frames body (already padded) as a block of type typ.
func (n ng) block(typ uint32, body ...[]byte) []byte {
	b := cat(body...)
	total := uint32(12 + len(b))
	return cat(n.u32(typ), n.u32(total), b, n.u32(total))
}

func (n ng) opt(code uint16, val []byte) []byte {
	return cat(n.u16(code), n.u16(uint16(len(val))), padded(val))
}

func (n ng) endOpts() []byte { return n.opt(0, nil) }

func (n ng) shb(opts ...[]byte) []byte {
	return n.block(ngSHB, n.u32(ngByteOrderMagic), n.u16(1), n.u16(0), n.u64(^uint64(0)), cat(opts...))
}

func (n ng) idb(linktype uint16, opts ...[]byte) []byte {
	return n.block(ngIDB, n.u16(linktype), n.u16(0), n.u32(0), cat(opts...))
}

func (n ng) epb(ifid uint32, ts uint64, data []byte, origlen uint32, opts ...[]byte) []byte {
	return n.block(ngEPB, n.u32(ifid), n.u32(uint32(ts>>32)), n.u32(uint32(ts)),
		n.u32(uint32(len(data))), n.u32(origlen), padded(data), cat(opts...))
}

func (n ng) spb(origlen uint32, data []byte) []byte {
	return n.block(ngSPB, n.u32(origlen), padded(data))
}

// offsets returns where each part starts when they are concatenated.
func offsets(parts ...[]byte) []int64 {
	var offs []int64
	var off int64
	for _, p := range parts {
		offs = append(offs, off)
		off += int64(len(p))
	}
	return offs
}

// tinyPcapng is the fixture in testdata/tiny.pcapng: one section with an
// Ethernet interface in nanoseconds, a raw-IP interface, an Ethernet
// interface in 2^-20 s with an offset, and packets on each, in every kind
// of packet block, with blocks the reader must skip in between.
func tinyPcapng() (stream []byte, parts [][]byte, frames [][]byte) {
	a, b, c, d := mkFrame(60, 0xa), mkFrame(1514, 0xb), mkFrame(64, 0xc), mkFrame(14, 0xd)
	parts = [][]byte{
		le.shb(le.opt(4, []byte("nfpipe frame test")), le.endOpts()), // 0
		le.idb(1, le.opt(2, []byte("eth0")), le.opt(9, []byte{9}), le.endOpts()),
		le.epb(0, 1700000000_123456789, a, 60, le.opt(1, []byte("first")), le.endOpts()), // 2: a
		le.block(5, le.u32(0), le.u32(0), le.u32(0)),                                     // interface statistics
		le.idb(101),
		le.epb(1, 1, mkFrame(40, 1), 40), // 5: raw IP
		le.idb(1, le.opt(9, []byte{0x80 | 20}), le.opt(14, le.u64(100)), le.endOpts()),
		le.epb(2, 5<<20|1<<19, b, 1514), // 7: b
		le.spb(64, c),                   // 8: c
		le.epb(7, 0, a, 60),             // 9: undeclared interface
		le.epb(0, 0, a[:40], 100),       // 10: cut by snaplen
		le.block(0x40000bad, []byte("custom block")),
		le.epb(0, 0, d, 14), // 12: d
	}
	return cat(parts...), parts, [][]byte{a, b, c, d}
}

func TestPcapngFixture(t *testing.T) {
	built, parts, fr := tinyPcapng()
	path := filepath.Join("testdata", "tiny.pcapng")
	if *update {
		if err := os.WriteFile(path, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPcapngFixture -update to create it)", err)
	}
	if !bytes.Equal(file, built) {
		t.Fatalf("%s differs from what tinyPcapng builds; run go test -run TestPcapngFixture -update if the change is intended", path)
	}
	off := offsets(parts...)
	runSteps(t, PCAP, file, steps(
		okStep(fr[0]),
		errStep(fmt.Sprintf("pcapng block at byte %d: interface 1 has linktype 101, not ethernet (1)", off[5])),
		okStep(fr[1]),
		okStep(fr[2]),
		errStep(fmt.Sprintf("pcapng block at byte %d: packet on undeclared interface 7", off[9])),
		errStep(fmt.Sprintf("pcapng block at byte %d: frame truncated by capture snaplen (40 of 100 bytes captured)", off[10])),
		okStep(fr[3]),
		eofStep(), eofStep()))

	// Timestamps, following each interface's resolution and offset.
	r := NewReader(PCAP, bytes.NewReader(file)).(TimedReader)
	want := []time.Time{
		time.Unix(1700000000, 123456789),
		time.Unix(100+5, 500000000),
		{},
		time.Unix(0, 0),
	}
	for i := 0; i < len(want); {
		if _, err := r.ReadFrame(); err == io.EOF {
			t.Fatalf("EOF after %d frames", i)
		} else if err != nil {
			continue
		}
		if got := r.Timestamp(); !got.Equal(want[i]) {
			t.Errorf("frame %d: timestamp %v; want %v", i, got, want[i])
		}
		i++
	}
}

// TestPcapngSections reads a big-endian section followed by a
// little-endian one, whose interface numbers start again from 0.
func TestPcapngSections(t *testing.T) {
	a, b := mkFrame(60, 1), mkFrame(61, 2)
	in := cat(
		be.shb(), be.idb(1), be.epb(0, 1_500_000, a, 60),
		le.shb(), le.idb(113), le.idb(1), le.epb(1, 2_000_001, b, 61), le.epb(0, 0, b, 61),
	)
	off := int64(len(cat(be.shb(), be.idb(1), be.epb(0, 1_500_000, a, 60), le.shb(), le.idb(113), le.idb(1), le.epb(1, 2_000_001, b, 61))))
	runSteps(t, PCAP, in, steps(okStep(a), okStep(b),
		errStep(fmt.Sprintf("pcapng block at byte %d: interface 0 has linktype 113, not ethernet (1)", off)),
		eofStep()))

	r := NewReader(PCAP, bytes.NewReader(in)).(TimedReader)
	for _, want := range []time.Time{time.Unix(1, 500000000), time.Unix(2, 1000)} {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if got := r.Timestamp(); !got.Equal(want) {
			t.Errorf("timestamp %v; want %v", got, want)
		}
	}
}

// TestPcapByteOrders reads classic pcap in both byte orders, with
// microsecond and nanosecond timestamps, built by hand.
func TestPcapByteOrders(t *testing.T) {
	a, b := mkFrame(60, 1), mkFrame(1514, 2)
	for _, tc := range []struct {
		name  string
		bo    binary.ByteOrder
		magic uint32
		want  []time.Time
	}{
		{"little-endian micro", binary.LittleEndian, pcapMagicMicro, []time.Time{time.Unix(1700000000, 999999000), time.Unix(7, 1000)}},
		{"big-endian micro", binary.BigEndian, pcapMagicMicro, []time.Time{time.Unix(1700000000, 999999000), time.Unix(7, 1000)}},
		{"little-endian nano", binary.LittleEndian, pcapMagicNano, []time.Time{time.Unix(1700000000, 999999), time.Unix(7, 1)}},
		{"big-endian nano", binary.BigEndian, pcapMagicNano, []time.Time{time.Unix(1700000000, 999999), time.Unix(7, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cat(pcapHeader(tc.bo, tc.magic, 2, 4, 1),
				pcapRec(tc.bo, 1700000000, 999999, 60, 60, a),
				pcapRec(tc.bo, 7, 1, 1514, 1514, b))
			runSteps(t, PCAP, in, steps(okStep(a), okStep(b), eofStep()))
			r := NewReader(PCAP, bytes.NewReader(in)).(TimedReader)
			for i, want := range tc.want {
				if _, err := r.ReadFrame(); err != nil {
					t.Fatal(err)
				}
				if got := r.Timestamp(); !got.Equal(want) {
					t.Errorf("frame %d: timestamp %v; want %v", i, got, want)
				}
			}
		})
	}
}

// TestPcapWire pins the bytes our writer produces.
func TestPcapWire(t *testing.T) {
	f := mkFrame(14, 3)
	got := encode(t, PCAP, f)
	want := cat(
		[]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0},
		pcapRec(binary.LittleEndian, 1700000000, 123456, 14, 14, f))
	if !bytes.Equal(got, want) {
		t.Errorf("got\n%x\nwant\n%x", got, want)
	}
}

func TestPcapMalformed(t *testing.T) {
	lb := binary.LittleEndian
	hdr := pcapHeader(lb, pcapMagicMicro, 2, 4, 1)
	good := mkFrame(60, 1)
	rec := func(b []byte) []byte { return pcapRec(lb, 1, 2, uint32(len(b)), uint32(len(b)), b) }
	shb, idb := le.shb(), le.idb(1)
	ngOff := int64(len(shb) + len(idb)) // where the first packet block starts
	epb := le.epb(0, 0, good, 60)
	badTrailer := bytes.Clone(epb)
	lb.PutUint32(badTrailer[len(badTrailer)-4:], 88)
	const badMagic = "bad magic 0x%08x: want pcap (a1b2c3d4 or a1b23c4d, either byte order) or pcapng (0a0d0d0a)"

	runCases(t, []malformedCase{
		{"empty", PCAP, nil, steps(eofStep(), eofStep())},
		{"header only", PCAP, hdr, steps(eofStep(), eofStep())},
		{"truncated header", PCAP, hdr[:10], steps(
			fatalStep("pcap header at byte 0: truncated file header: want 24 bytes, got 10"))},
		{"truncated magic", PCAP, hdr[:3], steps(
			fatalStep("pcap header at byte 0: truncated file header: want 24 bytes, got 3"))},
		{"qemu stream", PCAP, qemuRec(60, good), steps(
			fatalStep("pcap header at byte 0: " + fmt.Sprintf(badMagic, 0x3c)))},
		{"hex stream", PCAP, []byte("FFFF"), steps(
			fatalStep("pcap header at byte 0: " + fmt.Sprintf(badMagic, 0x46464646)))},
		{"modified pcap magic", PCAP, pcapHeader(lb, 0xa1b2cd34, 2, 4, 1), steps(
			fatalStep("pcap header at byte 0: " + fmt.Sprintf(badMagic, 0x34cdb2a1)))},
		{"linktype 113", PCAP, cat(pcapHeader(lb, pcapMagicMicro, 2, 4, 113), rec(good)), steps(
			fatalStep("pcap header at byte 0: linktype 113 is not ethernet (1)"))},
		{"linktype 101 big-endian", PCAP, pcapHeader(binary.BigEndian, pcapMagicNano, 2, 4, 101), steps(
			fatalStep("pcap header at byte 0: linktype 101 is not ethernet (1)"))},
		{"version 1.0", PCAP, pcapHeader(lb, pcapMagicMicro, 1, 0, 1), steps(
			fatalStep("pcap header at byte 0: unsupported pcap version 1.0 (want 2.x)"))},
		{"caplen 300000", PCAP, cat(hdr, rec(good), pcapRec(lb, 0, 0, 300000, 300000, nil)), steps(
			okStep(good),
			fatalStep("pcap record at byte 100: captured length 300000 exceeds 262144"))},
		{"cut by snaplen", PCAP, cat(hdr, pcapRec(lb, 0, 0, 20, 60, good[:20]), rec(good)), steps(
			errStep("pcap record at byte 24: frame truncated by capture snaplen (20 of 60 bytes captured)"),
			okStep(good), eofStep())},
		{"runt", PCAP, cat(hdr, rec(good[:10]), rec(good)), steps(
			errStep("pcap record at byte 24: frame length 10 shorter than an Ethernet header (14)"),
			okStep(good), eofStep())},
		{"empty record", PCAP, cat(hdr, rec(nil), rec(good)), steps(
			errStep("pcap record at byte 24: frame length 0 shorter than an Ethernet header (14)"),
			okStep(good), eofStep())},
		{"jumbo 70000", PCAP, cat(hdr, rec(repeat(0x55, 70000)), rec(good)), steps(
			errStep("pcap record at byte 24: frame length 70000 exceeds 65535"),
			okStep(good), eofStep())},
		{"caplen over origlen", PCAP, cat(hdr, pcapRec(lb, 0, 0, 60, 50, good), rec(good)), steps(
			errStep("pcap record at byte 24: captured length 60 exceeds original length 50"),
			okStep(good), eofStep())},
		{"truncated record header", PCAP, cat(hdr, rec(good), make([]byte, 5)), steps(
			okStep(good),
			fatalStep("pcap record at byte 100: truncated record header: want 16 bytes, got 5"))},
		{"truncated record", PCAP, cat(hdr, rec(good)[:30]), steps(
			fatalStep("pcap record at byte 24: truncated record: want 76 bytes, got 30"))},
		{"truncated skipped record", PCAP, cat(hdr, pcapRec(lb, 0, 0, 20, 60, good[:5])), steps(
			fatalStep("pcap record at byte 24: truncated record: want 36 bytes, got 21"))},

		{"pcapng empty section", PCAP, shb, steps(eofStep())},
		{"pcapng truncated block header", PCAP, shb[:6], steps(
			fatalStep("pcapng block at byte 0: truncated block header: want 8 bytes, got 6"))},
		{"pcapng truncated section header", PCAP, shb[:10], steps(
			fatalStep("pcapng block at byte 0: truncated section header: want 12 bytes, got 10"))},
		{"pcapng bad byte-order magic", PCAP, cat(shb[:8], []byte{0xde, 0xad, 0xbe, 0xef}, shb[12:]), steps(
			fatalStep("pcapng block at byte 0: bad byte-order magic 0xdeadbeef in section header: want 1a2b3c4d in either byte order"))},
		{"pcapng version 2", PCAP, le.block(ngSHB, le.u32(ngByteOrderMagic), le.u16(2), le.u16(0), le.u64(0)), steps(
			fatalStep("pcapng block at byte 0: unsupported pcapng version 2.0 (want 1.x)"))},
		{"pcapng block length 33", PCAP, cat(shb, idb, le.u32(ngEPB), le.u32(33), make([]byte, 40)), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: block length 33 is not a multiple of 4", ngOff)))},
		{"pcapng absurd block length", PCAP, cat(shb, idb, le.u32(ngEPB), le.u32(0x7ffffffc)), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: block length 2147483644 exceeds 16777216", ngOff)))},
		{"pcapng short packet block", PCAP, cat(shb, idb, le.block(ngEPB, make([]byte, 16))), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: block length 28 shorter than 32 for block type 0x6", ngOff)))},
		{"pcapng short block", PCAP, cat(shb, idb, le.u32(0x99), le.u32(8), le.u32(8)), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: block length 8 shorter than 12 for block type 0x99", ngOff)))},
		{"pcapng trailer mismatch", PCAP, cat(shb, idb, badTrailer, epb), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: trailing block length 88 does not match leading 92", ngOff)))},
		{"pcapng caplen 300000", PCAP, cat(shb, idb, le.block(ngEPB, le.u32(0), le.u64(0), le.u32(300000), le.u32(300000), good)), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: captured length 300000 exceeds 262144", ngOff)))},
		{"pcapng caplen overruns block", PCAP, cat(shb, idb, le.block(ngEPB, le.u32(0), le.u64(0), le.u32(100), le.u32(100), good)), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: captured length 100 overruns block length 92", ngOff)))},
		{"pcapng cut by snaplen", PCAP, cat(shb, idb, le.epb(0, 0, good[:40], 100), epb), steps(
			errStep(fmt.Sprintf("pcapng block at byte %d: frame truncated by capture snaplen (40 of 100 bytes captured)", ngOff)),
			okStep(good), eofStep())},
		{"pcapng runt", PCAP, cat(shb, idb, le.epb(0, 0, good[:13], 13), epb), steps(
			errStep(fmt.Sprintf("pcapng block at byte %d: frame length 13 shorter than an Ethernet header (14)", ngOff)),
			okStep(good), eofStep())},
		{"pcapng simple packet cut by snaplen", PCAP, cat(shb, idb, le.spb(100, good), epb), steps(
			errStep(fmt.Sprintf("pcapng block at byte %d: frame truncated by capture snaplen (60 of 100 bytes captured)", ngOff)),
			okStep(good), eofStep())},
		{"pcapng simple packet without interface", PCAP, cat(shb, le.spb(60, good)), steps(
			errStep(fmt.Sprintf("pcapng block at byte %d: packet on undeclared interface 0", len(shb))),
			eofStep())},
		{"pcapng truncated block", PCAP, cat(shb, idb, epb[:50]), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: truncated block: want 92 bytes, got 50", ngOff)))},
		{"pcapng truncated trailer", PCAP, cat(shb, idb, epb[:90]), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: truncated block: want 92 bytes, got 90", ngOff)))},
		{"pcapng truncated skipped block", PCAP, cat(shb, idb, le.block(5, make([]byte, 20))[:20]), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: truncated block: want 32 bytes, got 20", ngOff)))},
		{"pcapng truncated options", PCAP, cat(shb, le.idb(1, le.opt(2, []byte("eth0")), le.endOpts())[:22]), steps(
			fatalStep(fmt.Sprintf("pcapng block at byte %d: truncated block: want 32 bytes, got 22", len(shb))))},
	})
}

// TestTimestampResolution checks the pcapng timestamp conversion at the
// edges of what if_tsresol can say.
func TestTimestampResolution(t *testing.T) {
	for _, tc := range []struct {
		res    tsResolution
		ts     uint64
		offset int64
		want   time.Time
	}{
		{microseconds, 1_500_000, 0, time.Unix(1, 500000000)},
		{tsResolution{exp: 0}, 42, 0, time.Unix(42, 0)},
		{tsResolution{exp: 9}, 1_000_000_007, 0, time.Unix(1, 7)},
		{tsResolution{exp: 12}, 3_000_000_001_999, 0, time.Unix(3, 1)},
		{tsResolution{exp: 19}, 15_000_000_000_000_000_000, 0, time.Unix(1, 500000000)},
		{tsResolution{exp: 20}, 15_000_000_000_000_000_000, 0, time.Unix(0, 150000000)},
		{tsResolution{exp: 30}, 15_000_000_000_000_000_000, 0, time.Unix(0, 0)},
		{tsResolution{exp: 127}, ^uint64(0), 0, time.Unix(0, 0)},
		{tsResolution{base2: true, exp: 0}, 42, 0, time.Unix(42, 0)},
		{tsResolution{base2: true, exp: 1}, 3, 0, time.Unix(1, 500000000)},
		{tsResolution{base2: true, exp: 20}, 5<<20 | 1<<18, 10, time.Unix(15, 250000000)},
		{tsResolution{base2: true, exp: 63}, 1 << 63, 0, time.Unix(1, 0)},
		{tsResolution{base2: true, exp: 64}, 1 << 63, 0, time.Unix(0, 500000000)},
		{tsResolution{base2: true, exp: 127}, ^uint64(0), 0, time.Unix(0, 0)},
		{microseconds, 0, -5, time.Unix(-5, 0)},
	} {
		if got := tc.res.time(tc.ts, tc.offset); !got.Equal(tc.want) {
			t.Errorf("%+v.time(%d, %d) = %v; want %v", tc.res, tc.ts, tc.offset, got, tc.want)
		}
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame from 10.0.0.1:1234 to
// 10.0.0.2:5678 with a valid IP header checksum.
func udpFrame(payload []byte) []byte {
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	var sum uint32
	for i := 0; i < len(ip); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := []byte{0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	eth := []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00}
	return cat(eth, ip, udp, payload)
}

// TestPcapTcpdump pipes our pcap output into tcpdump as it is written: the
// first frame must be decoded before the stream ends, which is what a live
// `nfpipe ... | tcpdump -r -` needs.
func TestPcapTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		skipWithoutTcpdump(t, "tcpdump not on PATH; install it to check that tcpdump decodes our pcap stream")
	}
	cmd := exec.Command(tcpdump, "-l", "-n", "-tt", "-r", "-")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()

	w := NewPcapWriter(stdin, fixedClock())
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 5
	if err := w.WriteFrame(udpFrame([]byte("frame 0"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	first := make(chan string, 1)
	go func() {
		if lines.Scan() {
			first <- lines.Text()
		}
		close(first)
	}()
	select {
	case line := <-first:
		if want := "1700000000.123456 IP 10.0.0.1.1234 > 10.0.0.2.5678: UDP, length 7"; line != want {
			t.Errorf("first line %q; want %q", line, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump printed nothing for the first flushed frame; stderr: %s", stderr.String())
	}
	for i := 1; i < n; i++ {
		if err := w.WriteFrame(udpFrame([]byte(fmt.Sprintf("frame %d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	var rest []string
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tcpdump: %v; stderr: %s", err, stderr.String())
	}
	if len(rest) != n-1 {
		t.Fatalf("tcpdump printed %d more lines; want %d:\n%s", len(rest), n-1, strings.Join(rest, "\n"))
	}
	for _, l := range rest {
		if !strings.Contains(l, " IP 10.0.0.1.1234 > 10.0.0.2.5678: UDP, length 7") {
			t.Errorf("tcpdump line %q does not show our UDP frame", l)
		}
	}
}

// TestPcapngTcpdump checks that the pcapng builder the fixtures rely on
// writes what tcpdump reads as pcapng, so the fixtures test the real
// format and not our idea of it.
func TestPcapngTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		skipWithoutTcpdump(t, "tcpdump not on PATH; install it to check our pcapng fixtures against tcpdump")
	}
	in := cat(le.shb(le.opt(4, []byte("test")), le.endOpts()),
		le.idb(1, le.opt(9, []byte{9}), le.endOpts()),
		le.epb(0, 1700000000_123456789, udpFrame([]byte("a")), uint32(len(udpFrame([]byte("a"))))),
		le.block(5, le.u32(0), le.u64(0)),
		le.spb(uint32(len(udpFrame([]byte("bc")))), udpFrame([]byte("bc"))))
	cmd := exec.Command(tcpdump, "-n", "-tt", "--time-stamp-precision=nano", "-r", "-")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	want := "1700000000.123456789 IP 10.0.0.1.1234 > 10.0.0.2.5678: UDP, length 1\n" +
		"0.000000000 IP 10.0.0.1.1234 > 10.0.0.2.5678: UDP, length 2\n"
	if string(out) != want {
		t.Errorf("tcpdump printed\n%s\nwant\n%s", out, want)
	}
	runSteps(t, PCAP, in, steps(okStep(udpFrame([]byte("a"))), okStep(udpFrame([]byte("bc"))), eofStep()))
}

// skipWithoutTcpdump skips a test that needs tcpdump, except in CI, where
// scripts/install-deps.sh must have installed it.
func skipWithoutTcpdump(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (in CI, scripts/install-deps.sh must install tcpdump)", why)
	}
	t.Skip(why)
}
