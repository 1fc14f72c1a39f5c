package frame

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// File format references: the libpcap savefile format
// (https://www.tcpdump.org/manpages/pcap-savefile.5.html) and pcapng
// (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html).
const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d

	// pcapHeaderLen and pcapRecordLen are the sizes of the file header
	// and of the header in front of every record.
	pcapHeaderLen = 24
	pcapRecordLen = 16

	// pcapSnaplen is the largest record we accept, and the snaplen we
	// write. It is libpcap's MAXIMUM_SNAPLEN: tcpdump refuses larger
	// records too, so a larger one means corruption, not a big frame.
	pcapSnaplen = 262144

	// linktypeEthernet is LINKTYPE_ETHERNET (and DLT_EN10MB).
	linktypeEthernet = 1
	// linktypeMask strips the FCS bits libpcap keeps in the upper bits of
	// the file header's link-layer field.
	linktypeMask = 0x03ffffff
)

// pcapng block types and constants.
const (
	ngSHB = 0x0a0d0d0a // Section Header Block; the same in both byte orders
	ngIDB = 1          // Interface Description Block
	ngSPB = 3          // Simple Packet Block
	ngEPB = 6          // Enhanced Packet Block

	ngByteOrderMagic = 0x1a2b3c4d

	// ngMaxBlock is the longest block we accept. Wireshark uses the same
	// limit: nothing legitimate is larger, and a block length read from
	// garbage usually is.
	ngMaxBlock = 16 << 20

	ngOptEnd      = 0
	ngOptTSResol  = 9
	ngOptTSOffset = 14
)

// pcapReader reads a libpcap savefile or a pcapng stream; which one is
// decided by the first four bytes.
type pcapReader struct {
	s       stream
	started bool
	ng      bool
	bo      binary.ByteOrder
	nano    bool // classic pcap: the fractions are nanoseconds
	ts      time.Time
	hdr     [pcapHeaderLen]byte // scratch for headers
	buf     []byte              // MaxFrame bytes, reused for every frame
	ifaces  []ngIface           // interfaces of the current pcapng section
	err     error               // sticky once the stream cannot be trusted
}

// ngIface is what we need to know about a pcapng interface.
type ngIface struct {
	linktype uint16
	res      tsResolution
	offset   int64 // if_tsoffset, seconds added to every timestamp
}

// tsResolution is a pcapng if_tsresol: a timestamp unit of 10^-exp or
// 2^-exp seconds.
type tsResolution struct {
	base2 bool
	exp   uint8
}

// microseconds is the pcapng default resolution.
var microseconds = tsResolution{exp: 6}

var _ TimedReader = (*pcapReader)(nil)

func newPcapReader(r io.Reader) *pcapReader {
	return &pcapReader{s: newStream(r)}
}

func (pr *pcapReader) Timestamp() time.Time { return pr.ts }

func (pr *pcapReader) ReadFrame() ([]byte, error) {
	if pr.err != nil {
		return nil, pr.err
	}
	b, err := pr.next()
	if err != nil {
		if me, ok := err.(*MalformedError); err != io.EOF && (!ok || me.Fatal) {
			pr.err = err
		}
	}
	return b, err
}

func (pr *pcapReader) next() ([]byte, error) {
	if !pr.started {
		if err := pr.start(); err != nil {
			return nil, err
		}
		pr.started = true
	}
	if pr.ng {
		return pr.nextBlock()
	}
	return pr.nextRecord()
}

// start reads the file header of a classic pcap stream, or just notes that
// the stream is pcapng and leaves its Section Header Block to nextBlock.
func (pr *pcapReader) start() error {
	// Peek, so that a pcapng Section Header Block is left whole for
	// nextBlock, and so that the magic is judged before the rest of the
	// header is waited for.
	magic, err := pr.s.br.Peek(4)
	if len(magic) < 4 {
		if len(magic) == 0 && err == io.EOF {
			// An empty stream is an empty capture, not a broken one.
			return io.EOF
		}
		return pr.truncated(err, "pcap header", 0, "file header", pcapHeaderLen, len(magic))
	}
	switch m := binary.LittleEndian.Uint32(magic); {
	case m == ngSHB:
		pr.ng = true
		return nil
	case m == pcapMagicMicro:
		pr.bo = binary.LittleEndian
	case m == pcapMagicNano:
		pr.bo, pr.nano = binary.LittleEndian, true
	case m == bits.ReverseBytes32(pcapMagicMicro):
		pr.bo = binary.BigEndian
	case m == bits.ReverseBytes32(pcapMagicNano):
		pr.bo, pr.nano = binary.BigEndian, true
	default:
		return pr.fatal("pcap header", 0, fmt.Sprintf(
			"bad magic 0x%08x: want pcap (a1b2c3d4 or a1b23c4d, either byte order) or pcapng (0a0d0d0a)",
			binary.BigEndian.Uint32(magic)))
	}
	h := pr.hdr[:pcapHeaderLen]
	if n, err := pr.s.readFull(h); err != nil {
		return pr.truncated(err, "pcap header", 0, "file header", pcapHeaderLen, n)
	}
	if major, minor := pr.bo.Uint16(h[4:]), pr.bo.Uint16(h[6:]); major != 2 {
		return pr.fatal("pcap header", 0, fmt.Sprintf("unsupported pcap version %d.%d (want 2.x)", major, minor))
	}
	if lt := pr.bo.Uint32(h[20:]) & linktypeMask; lt != linktypeEthernet {
		return pr.fatal("pcap header", 0, fmt.Sprintf("linktype %d is not ethernet (%d)", lt, linktypeEthernet))
	}
	return nil
}

// nextRecord reads one record of a classic pcap stream.
func (pr *pcapReader) nextRecord() ([]byte, error) {
	start := pr.s.off
	h := pr.hdr[:pcapRecordLen]
	if n, err := pr.s.readFull(h); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, pr.truncated(err, "", start, "record header", pcapRecordLen, n)
	}
	sec, frac := pr.bo.Uint32(h[0:]), pr.bo.Uint32(h[4:])
	caplen, origlen := pr.bo.Uint32(h[8:]), pr.bo.Uint32(h[12:])
	if caplen > pcapSnaplen {
		return nil, pr.fatal("", start, fmt.Sprintf("captured length %d exceeds %d", caplen, pcapSnaplen))
	}
	want := pcapRecordLen + int(caplen)
	if reason := packetProblem(caplen, origlen); reason != "" {
		if _, err := pr.s.discard(int(caplen)); err != nil {
			return nil, pr.truncated(err, "", start, "record", want, int(pr.s.off-start))
		}
		return nil, &MalformedError{Format: PCAP, Offset: start, Reason: reason}
	}
	b := pr.frameBuf(int(caplen))
	if _, err := pr.s.readFull(b); err != nil {
		return nil, pr.truncated(err, "", start, "record", want, int(pr.s.off-start))
	}
	nsec := int64(frac)
	if !pr.nano {
		nsec *= 1000
	}
	pr.ts = time.Unix(int64(sec), nsec)
	return b, nil
}

// packetProblem says why a captured packet cannot be returned as a frame,
// or returns "" if it can.
func packetProblem(caplen, origlen uint32) string {
	switch {
	case caplen < origlen:
		// Returning a cut-off frame would hand the stack a packet
		// whose lengths and checksums disagree with its bytes.
		return fmt.Sprintf("frame truncated by capture snaplen (%d of %d bytes captured)", caplen, origlen)
	case caplen > origlen:
		return fmt.Sprintf("captured length %d exceeds original length %d", caplen, origlen)
	case caplen < MinFrame:
		return fmt.Sprintf("frame length %d shorter than an Ethernet header (%d)", caplen, MinFrame)
	case caplen > MaxFrame:
		return fmt.Sprintf("frame length %d exceeds %d", caplen, MaxFrame)
	}
	return ""
}

// nextBlock reads pcapng blocks until one carries a frame.
func (pr *pcapReader) nextBlock() ([]byte, error) {
	for {
		b, err := pr.block()
		if b != nil || err != nil {
			return b, err
		}
	}
}

// block reads one pcapng block. It returns a nil frame and a nil error for
// a block that carries no frame.
func (pr *pcapReader) block() ([]byte, error) {
	start := pr.s.off
	h := pr.hdr[:8]
	if n, err := pr.s.readFull(h); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, pr.truncated(err, "pcapng block", start, "block header", 8, n)
	}
	typ := binary.BigEndian.Uint32(h)
	if typ == ngSHB {
		// A new section may switch byte order, which only the
		// byte-order magic after the length tells.
		if n, err := pr.s.readFull(pr.hdr[8:12]); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "section header", 12, 8+n)
		}
		switch binary.LittleEndian.Uint32(pr.hdr[8:]) {
		case ngByteOrderMagic:
			pr.bo = binary.LittleEndian
		case bits.ReverseBytes32(ngByteOrderMagic):
			pr.bo = binary.BigEndian
		default:
			return nil, pr.fatal("pcapng block", start, fmt.Sprintf(
				"bad byte-order magic 0x%08x in section header: want 1a2b3c4d in either byte order",
				binary.BigEndian.Uint32(pr.hdr[8:])))
		}
	} else {
		typ = pr.bo.Uint32(h)
	}
	blen := pr.bo.Uint32(h[4:])
	if err := pr.checkBlockLen(start, typ, blen); err != nil {
		return nil, err
	}
	// got reports how much of the block had arrived when it was cut.
	got := func() int { return int(pr.s.off - start) }

	var (
		frame  []byte
		reason string
	)
	switch typ {
	case ngSHB:
		f := pr.hdr[12:24]
		if _, err := pr.s.readFull(f); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		if major, minor := pr.bo.Uint16(f), pr.bo.Uint16(f[2:]); major != 1 {
			return nil, pr.fatal("pcapng block", start, fmt.Sprintf("unsupported pcapng version %d.%d (want 1.x)", major, minor))
		}
		// Interface numbers start again in every section.
		pr.ifaces = pr.ifaces[:0]
		if _, err := pr.s.discard(int(blen) - 28); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}

	case ngIDB:
		f := pr.hdr[:8]
		if _, err := pr.s.readFull(f); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		iface := ngIface{linktype: pr.bo.Uint16(f), res: microseconds}
		if err := pr.interfaceOptions(&iface, int(blen)-20); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		pr.ifaces = append(pr.ifaces, iface)

	case ngEPB:
		f := pr.hdr[:20]
		if _, err := pr.s.readFull(f); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		ifid := pr.bo.Uint32(f)
		ts := uint64(pr.bo.Uint32(f[4:]))<<32 | uint64(pr.bo.Uint32(f[8:]))
		caplen, origlen := pr.bo.Uint32(f[12:]), pr.bo.Uint32(f[16:])
		if caplen > pcapSnaplen {
			return nil, pr.fatal("pcapng block", start, fmt.Sprintf("captured length %d exceeds %d", caplen, pcapSnaplen))
		}
		if 32+pad4(caplen) > blen {
			return nil, pr.fatal("pcapng block", start, fmt.Sprintf("captured length %d overruns block length %d", caplen, blen))
		}
		reason = pr.ifaceProblem(ifid)
		if reason == "" {
			reason = packetProblem(caplen, origlen)
		}
		if reason == "" {
			frame = pr.frameBuf(int(caplen))
			if _, err := pr.s.readFull(frame); err != nil {
				return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
			}
			iface := pr.ifaces[ifid]
			pr.ts = iface.res.time(ts, iface.offset)
		} else if _, err := pr.s.discard(int(caplen)); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		if _, err := pr.s.discard(int(blen) - 32 - int(caplen)); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}

	case ngSPB:
		f := pr.hdr[:4]
		if _, err := pr.s.readFull(f); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		origlen := pr.bo.Uint32(f)
		// A Simple Packet Block has no captured length: the data is
		// the packet cut to the block, padding included.
		caplen := min(origlen, blen-16)
		reason = pr.ifaceProblem(0)
		if reason == "" {
			reason = packetProblem(caplen, origlen)
		}
		if reason == "" {
			frame = pr.frameBuf(int(caplen))
			if _, err := pr.s.readFull(frame); err != nil {
				return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
			}
			pr.ts = time.Time{}
		} else if _, err := pr.s.discard(int(caplen)); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
		if _, err := pr.s.discard(int(blen) - 16 - int(caplen)); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}

	default:
		// Statistics, name resolution, decryption secrets, custom
		// blocks: nothing a frame reader needs.
		if _, err := pr.s.discard(int(blen) - 12); err != nil {
			return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
		}
	}

	t := pr.hdr[:4]
	if _, err := pr.s.readFull(t); err != nil {
		return nil, pr.truncated(err, "pcapng block", start, "block", int(blen), got())
	}
	if tl := pr.bo.Uint32(t); tl != blen {
		// The two lengths are there so that a reader can tell it has
		// lost its place; believing either one now would be a guess.
		return nil, pr.fatal("pcapng block", start, fmt.Sprintf("trailing block length %d does not match leading %d", tl, blen))
	}
	if reason != "" {
		return nil, &MalformedError{Format: PCAP, Offset: start, Reason: reason, what: "pcapng block"}
	}
	return frame, nil
}

// checkBlockLen rejects block lengths that cannot be right: once one is
// wrong, the next block cannot be found.
func (pr *pcapReader) checkBlockLen(start int64, typ, blen uint32) error {
	minLen := uint32(12)
	switch typ {
	case ngSHB:
		minLen = 28
	case ngIDB:
		minLen = 20
	case ngEPB:
		minLen = 32
	case ngSPB:
		minLen = 16
	}
	var reason string
	switch {
	case blen > ngMaxBlock:
		reason = fmt.Sprintf("block length %d exceeds %d", blen, ngMaxBlock)
	case blen%4 != 0:
		reason = fmt.Sprintf("block length %d is not a multiple of 4", blen)
	case blen < minLen:
		reason = fmt.Sprintf("block length %d shorter than %d for block type 0x%x", blen, minLen, typ)
	default:
		return nil
	}
	return pr.fatal("pcapng block", start, reason)
}

// interfaceOptions reads the options of an Interface Description Block,
// n bytes, keeping the ones that affect timestamps. Options are streamed,
// not buffered, so that a large comment costs no memory. Malformed options
// are ignored, since the block length still tells where the next block
// starts.
func (pr *pcapReader) interfaceOptions(iface *ngIface, n int) error {
	var o [8]byte
	for n >= 4 {
		if _, err := pr.s.readFull(o[:4]); err != nil {
			return err
		}
		n -= 4
		code, olen := pr.bo.Uint16(o[:]), pr.bo.Uint16(o[2:])
		plen := int(pad4(uint32(olen)))
		if code == ngOptEnd || plen > n {
			break
		}
		switch {
		case code == ngOptTSResol && olen == 1:
			if _, err := pr.s.readFull(o[:4]); err != nil {
				return err
			}
			iface.res = tsResolution{base2: o[0]&0x80 != 0, exp: o[0] & 0x7f}
		case code == ngOptTSOffset && olen == 8:
			if _, err := pr.s.readFull(o[:8]); err != nil {
				return err
			}
			iface.offset = int64(pr.bo.Uint64(o[:]))
		default:
			if _, err := pr.s.discard(plen); err != nil {
				return err
			}
		}
		n -= plen
	}
	_, err := pr.s.discard(n)
	return err
}

// ifaceProblem says why packets on interface id cannot be returned, or
// returns "" if they can.
func (pr *pcapReader) ifaceProblem(id uint32) string {
	if uint64(id) >= uint64(len(pr.ifaces)) {
		return fmt.Sprintf("packet on undeclared interface %d", id)
	}
	if lt := pr.ifaces[id].linktype; lt != linktypeEthernet {
		return fmt.Sprintf("interface %d has linktype %d, not ethernet (%d)", id, lt, linktypeEthernet)
	}
	return ""
}

// frameBuf returns the reusable frame buffer cut to n bytes.
func (pr *pcapReader) frameBuf(n int) []byte {
	if pr.buf == nil {
		pr.buf = make([]byte, MaxFrame)
	}
	return pr.buf[:n]
}

// fatal returns a Fatal MalformedError about the unit what ("" for a
// classic pcap record) that began at start.
func (pr *pcapReader) fatal(what string, start int64, reason string) error {
	return &MalformedError{Format: PCAP, Offset: start, Reason: reason, Fatal: true, what: what}
}

// truncated turns a failed read into the error to return: a Fatal
// truncation if the stream ended, the wrapped read error otherwise.
func (pr *pcapReader) truncated(err error, what string, start int64, part string, want, got int) error {
	if isEOF(err) {
		return pr.fatal(what, start, fmt.Sprintf("truncated %s: want %d bytes, got %d", part, want, got))
	}
	return fmt.Errorf("pcap: read at byte %d: %w", pr.s.off, err)
}

// time converts a pcapng timestamp in units of r to a time, adding offset
// seconds. It works for every resolution the format can express (down to
// 2^-127 s) without overflowing.
func (r tsResolution) time(ts uint64, offset int64) time.Time {
	var sec, nsec uint64
	e := uint(r.exp)
	if r.base2 {
		var frac uint64
		if e < 64 {
			sec, frac = ts>>e, ts&(1<<e-1)
		} else {
			frac = ts
		}
		// nsec = frac * 1e9 / 2^e, in 128 bits.
		hi, lo := bits.Mul64(frac, 1e9)
		if e < 64 {
			nsec = hi<<(64-e) | lo>>e
		} else {
			nsec = hi >> (e - 64)
		}
	} else {
		switch {
		case e <= 9:
			unit := pow10[e]
			sec, nsec = ts/unit, ts%unit*pow10[9-e]
		case e < uint(len(pow10)):
			unit := pow10[e]
			sec, nsec = ts/unit, ts%unit/pow10[e-9]
		case e-9 < uint(len(pow10)):
			nsec = ts / pow10[e-9]
		}
	}
	return time.Unix(int64(sec)+offset, int64(nsec))
}

// pow10 holds every power of ten that fits in a uint64.
var pow10 = [...]uint64{
	1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// pad4 rounds n up to a multiple of 4, as pcapng pads all data.
func pad4(n uint32) uint32 { return (n + 3) &^ 3 }

// pcapWriter writes a classic pcap stream.
type pcapWriter struct {
	bw  *bufio.Writer
	now func() time.Time
	hdr [pcapRecordLen]byte
}

var _ Writer = (*pcapWriter)(nil)

// NewPcapWriter is NewWriter(PCAP, w) with the clock that timestamps each
// frame supplied by the caller, for reproducible output.
//
// The stream is a little-endian libpcap 2.4 savefile with microsecond
// timestamps, snaplen 262144 and LINKTYPE_ETHERNET: the oldest dialect,
// so that every tool reads it.
func NewPcapWriter(w io.Writer, now func() time.Time) Writer {
	pw := &pcapWriter{bw: bufio.NewWriterSize(w, bufSize), now: now}
	var h [pcapHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagicMicro)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs are zero, as every modern writer leaves them.
	binary.LittleEndian.PutUint32(h[16:], pcapSnaplen)
	binary.LittleEndian.PutUint32(h[20:], linktypeEthernet)
	// The buffer is far larger than the header, so this cannot fail
	// or reach w.
	pw.bw.Write(h[:])
	return pw
}

func (pw *pcapWriter) WriteFrame(b []byte) error {
	if err := checkSize(PCAP, b); err != nil {
		return err
	}
	t := pw.now()
	binary.LittleEndian.PutUint32(pw.hdr[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(pw.hdr[4:], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(pw.hdr[8:], uint32(len(b)))
	binary.LittleEndian.PutUint32(pw.hdr[12:], uint32(len(b)))
	if _, err := pw.bw.Write(pw.hdr[:]); err != nil {
		return fmt.Errorf("pcap: write: %w", err)
	}
	if _, err := pw.bw.Write(b); err != nil {
		return fmt.Errorf("pcap: write: %w", err)
	}
	return nil
}

func (pw *pcapWriter) Flush() error {
	if err := pw.bw.Flush(); err != nil {
		return fmt.Errorf("pcap: flush: %w", err)
	}
	return nil
}
