package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// socketBuffer is the SO_SNDBUF/SO_RCVBUF we ask for on packet sockets: big
// enough for bursts of 64 KiB frames.
const socketBuffer = 4 << 20

// openedSide is one opened direction of a link.
type openedSide struct {
	r        io.Reader
	w        io.Writer
	closer   io.Closer
	regular  bool    // a regular file: batch writes
	terminal bool    // a terminal: reads cannot be interrupted
	packet   *fdPoll // a SOCK_SEQPACKET socket
	listener *net.UnixListener
}

// openLink opens the files of a NIC's link and returns its link endpoint.
func openLink(ctx context.Context, nc *NICConfig, mac tcpip.LinkAddress, mtu uint32, log *slog.Logger, stats *LinkStats, connectTimeout time.Duration) (*linkEndpoint, error) {
	l := nc.Link
	if l.Rx.Kind == TAP {
		return openTAP(nc, mac, mtu, log, stats)
	}
	e := newLinkEndpoint(nc.Name, mac, mtu, log, stats)
	e.gso = l.UsesGSO()
	if l.OneWay() {
		e.waitLimit = oneWayWaitLimit
	}
	var rx, tx openedSide
	var err error
	if l.Rx == l.Tx {
		rx, err = openTwoWay(ctx, l.Rx, connectTimeout)
		tx = rx
	} else {
		rx, tx, err = openPair(ctx, l.Rx, l.Tx)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case rx.listener != nil:
		e.rxClosers = append(e.rxClosers, rx.listener)
		e.setSink(nil, flushWhenIdle)
		e.serveSessions(rx.listener, l.Format)
	case rx.packet != nil:
		pc := newPacketConn(rx.packet, stats, l.Pack == On)
		pc.onMismatch = func(what string) {
			on := "off"
			if l.Pack == On {
				on = "on"
			}
			log.Warn(fmt.Sprintf("%s; this end has pack=%s: set pack the same at both ends (chains do); until then its frames are lost, counted (rx_malformed, rx_other_host)", what, on), "if", nc.Name)
		}
		e.txClosers = append(e.txClosers, rx.packet)
		e.setSink(pc, flushWhenIdle)
		e.startReader(pc, false)
	default:
		if tx.w != nil {
			policy := flushWhenIdle
			if tx.regular {
				policy = flushLazily
			}
			e.setSink(frame.NewWriter(l.Format, rawWriter(tx.w)), policy)
			if tx.closer != nil {
				e.txClosers = append(e.txClosers, tx.closer)
			}
		}
		if rx.r != nil {
			if rx.closer != nil && rx.closer != tx.closer {
				e.rxClosers = append(e.rxClosers, rx.closer)
			}
			e.detachReader = rx.terminal
			e.startReader(frame.NewReader(l.Format, rawReader(rx.r)), l.ReplayOriginalTiming)
		}
	}
	if ref := e.sink.Load(); ref != nil {
		// A pcap stream starts with its file header: write it now so that
		// `tcpdump -r -` starts decoding before the first frame.
		ref.w.Flush()
	}
	return e, nil
}

// openTwoWay opens an endpoint that carries both directions.
func openTwoWay(ctx context.Context, ep Endpoint, connectTimeout time.Duration) (openedSide, error) {
	switch ep.Kind {
	case FD:
		f, err := inheritedFD(ep.FD)
		if err != nil {
			return openedSide{}, err
		}
		return openedSide{r: f, w: f, closer: f, regular: isRegular(f)}, nil
	case Unix:
		c, err := dialUnix(ctx, ep.Path, connectTimeout)
		if err != nil {
			return openedSide{}, err
		}
		return openedSide{r: c, w: c, closer: c}, nil
	case UnixListen:
		l, err := listenUnix(ep.Path)
		if err != nil {
			return openedSide{}, err
		}
		return openedSide{listener: l}, nil
	case Seqpacket:
		c, err := seqpacketFD(ep.FD)
		if err != nil {
			return openedSide{}, err
		}
		return openedSide{packet: c}, nil
	}
	return openedSide{}, fmt.Errorf("%s cannot carry both directions", ep)
}

// openPair opens a receive and a transmit side concurrently: a FIFO's open
// blocks until the other end opens, and two functions joined by a FIFO pair
// each open their receive side first.
func openPair(ctx context.Context, rxEP, txEP Endpoint) (rx, tx openedSide, err error) {
	type result struct {
		s   openedSide
		err error
	}
	rxc, txc := make(chan result, 1), make(chan result, 1)
	go func() { s, err := openSide(rxEP, false); rxc <- result{s, err} }()
	go func() { s, err := openSide(txEP, true); txc <- result{s, err} }()
	for i := 0; i < 2; i++ {
		select {
		case r := <-rxc:
			rx, err = r.s, errors.Join(err, r.err)
			rxc = nil
		case r := <-txc:
			tx, err = r.s, errors.Join(err, r.err)
			txc = nil
		case <-ctx.Done():
			return rx, tx, fmt.Errorf("waiting for %s|%s to open: %w", rxEP, txEP, ctx.Err())
		}
	}
	if err != nil {
		for _, s := range []openedSide{rx, tx} {
			if s.closer != nil {
				s.closer.Close()
			}
		}
	}
	return rx, tx, err
}

func openSide(ep Endpoint, write bool) (openedSide, error) {
	switch ep.Kind {
	case None:
		return openedSide{}, nil
	case Stdin:
		f := pollable(0, "stdin")
		return openedSide{r: f, closer: f, terminal: isTerminal(0)}, nil
	case Stdout:
		f := pollable(1, "stdout")
		return openedSide{w: f, closer: f, regular: isRegular(f)}, nil
	case FD:
		f, err := inheritedFD(ep.FD)
		if err != nil {
			return openedSide{}, err
		}
		if write {
			return openedSide{w: f, closer: f, regular: isRegular(f)}, nil
		}
		return openedSide{r: f, closer: f}, nil
	case FIFO:
		if err := ensureFIFO(ep.Path); err != nil {
			return openedSide{}, err
		}
		flag := os.O_RDONLY
		if write {
			flag = os.O_WRONLY
		}
		f, err := os.OpenFile(ep.Path, flag, 0)
		if err != nil {
			return openedSide{}, fmt.Errorf("open %s: %w", ep, err)
		}
		if write {
			return openedSide{w: f, closer: f}, nil
		}
		return openedSide{r: f, closer: f}, nil
	case File:
		if write {
			f, err := os.Create(ep.Path)
			if err != nil {
				return openedSide{}, fmt.Errorf("create %s: %w", ep, err)
			}
			return openedSide{w: f, closer: f, regular: isRegular(f)}, nil
		}
		f, err := os.Open(ep.Path)
		if err != nil {
			return openedSide{}, fmt.Errorf("open %s: %w", ep, err)
		}
		return openedSide{r: f, closer: f}, nil
	}
	return openedSide{}, fmt.Errorf("%s cannot be one side of RX|TX", ep)
}

func inheritedFD(fd int) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fd:%d: not an open file descriptor of this process: %w", fd, err)
	}
	return pollable(fd, fmt.Sprintf("fd:%d", fd)), nil
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// pollable returns a file for fd that Close can interrupt: a pipe, FIFO or
// socket is switched to non-blocking mode, so that Go's poller waits on it
// instead of a thread blocked in read(2) that only the peer could wake (a
// function stopped by a signal or a timeout would otherwise hang until its
// input pipe closed). Terminals and regular files are left as they are.
func pollable(fd int, name string) *os.File {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO, unix.S_IFSOCK:
			unix.SetNonblock(fd, true)
		}
	}
	return os.NewFile(uintptr(fd), name)
}

func ensureFIFO(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create fifo %s: %w", path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("fifo %s: %w", path, err)
	}
	if st.Mode()&fs.ModeNamedPipe == 0 {
		return fmt.Errorf("fifo %s: exists and is not a FIFO", path)
	}
	return nil
}

// dialUnix connects to a unix stream socket, retrying while the listener
// is not there yet, so that both ends of a link may be started at once.
func dialUnix(ctx context.Context, path string, timeout time.Duration) (*net.UnixConn, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("unix:%s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("unix:%s: nobody listening after %s (start the unix-listen side, or raise --connect-timeout): %w", path, timeout, err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("unix:%s: %w", path, ctx.Err())
		}
	}
}

// listenUnix listens on path, removing a stale socket file left by a
// process that died, but never a socket somebody still listens on.
func listenUnix(path string) (*net.UnixListener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("unix-listen:%s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("unix-listen:%s: another process is listening there", path)
		}
		os.Remove(path)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("unix-listen:%s: %w", path, err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

// serveSessions accepts peers one after another. A new peer replaces the
// current one; frames sent while no peer is connected are dropped and
// counted. A peer hanging up does not end the interface.
func (e *linkEndpoint) serveSessions(l *net.UnixListener, format frame.Format) {
	e.onStart = append(e.onStart, func() { e.acceptLoop(l, format) })
}

func (e *linkEndpoint) acceptLoop(l *net.UnixListener, format frame.Format) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			e.log.Info("peer connected", "if", e.name)
			w := frame.NewWriter(format, rawWriter(c))
			w.Flush()
			ref := &sinkRef{w: w, closer: c}
			if old := e.sink.Swap(ref); old != nil && old.closer != nil {
				old.closer.Close()
			}
			select {
			case <-e.closing:
				// Close may have looked at the sink before this peer took
				// it: nobody else would close this session.
				c.Close()
			default:
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				// A session closed on our side (a new peer replaced it, a
				// write failed, the link closes) ends without a warning.
				if err := e.readLoop(frame.NewReader(format, rawReader(c)), false); err != nil && !errors.Is(err, net.ErrClosed) {
					e.log.Warn("peer session ended", "if", e.name, "err", err)
				}
				if e.sink.CompareAndSwap(ref, nil) {
					e.log.Info("peer disconnected; waiting for the next", "if", e.name)
				}
				c.Close()
			}()
		}
	}()
}

func seqpacketFD(fd int) (*fdPoll, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("seqpacket:%d: not a socket: %w", fd, err)
	}
	if typ != unix.SOCK_SEQPACKET {
		return nil, fmt.Errorf("seqpacket:%d: socket type %d is not SOCK_SEQPACKET", fd, typ)
	}
	// Larger buffers absorb bursts; the writer blocks when they are full.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	return newFDPoll(fd, fmt.Sprintf("seqpacket:%d", fd))
}

// packetConn carries frames on a SOCK_SEQPACKET socket: one frame per
// message, or, packed (pack=on, between two nfpipe functions), several
// frames per message, each preceded by its length (2 bytes, big-endian). It
// reads and writes in batches, one recvmmsg/sendmmsg for up to packetBatch
// messages, so that under load the cost of a system call is shared by many
// frames; packing also shares the kernel's cost of a message (a socket
// buffer, a wake-up check), which is most of what a small frame costs. A
// lone frame still goes out at once, in a message of its own.
type packetConn struct {
	rc    *fdPoll
	stats *LinkStats
	pack  bool

	// Receive batch: rbufs hold what the last recvmmsg read (lengths and
	// flags in rhdrs); rnext is the next message to hand out. Packed, the
	// frames of message rcur are handed out from roff to rend.
	rbufs [][]byte
	rhdrs []unix.Mmsghdr
	riov  []unix.Iovec
	rn    int
	rnext int
	rcur  int
	roff  int
	rend  int

	// Send batch: frame buffers handed over by WriteOwned (or copied in
	// by WriteFrame), sent by Flush; wlens are their length prefixes when
	// packed.
	wframes []*[]byte
	wlens   [][2]byte
	whdrs   []unix.Mmsghdr
	wiov    []unix.Iovec
	wn      int

	// onMismatch, if set, is told (once) that messages look packed on an
	// unpacked link or unpacked on a packed one.
	onMismatch   func(what string)
	mismatchOnce sync.Once
	probes       int // unpacked: how many more messages looksPacked checks
}

// packetBatch is how many messages one system call moves at most, and how
// many frames a send batch holds.
const packetBatch = 32

// packedMax is the largest packed message: one frame of the largest size
// with its length prefix. Smaller frames share messages up to this size.
const packedMax = frame.MaxFrame + 2

// looksPacked reports whether a message read as one frame is made of
// length-prefixed frames that fill it exactly: what a packing peer sends.
// A real frame passes only if its destination address happens to start
// with the right length, so this is a hint, never a reason to drop.
func looksPacked(m []byte) bool {
	for len(m) >= 2 {
		n := int(m[0])<<8 | int(m[1])
		if n < frame.MinFrame || 2+n > len(m) {
			return false
		}
		m = m[2+n:]
	}
	return len(m) == 0
}

// mismatchProbes is how many messages an unpacked link checks for packing.
const mismatchProbes = 64

// mismatch says once, through onMismatch, that the messages on the link do
// not match its packing: the two ends were set up differently.
func (p *packetConn) mismatch(what string) {
	if p.onMismatch == nil {
		return
	}
	p.mismatchOnce.Do(func() { p.onMismatch(what) })
}

func newPacketConn(rc *fdPoll, stats *LinkStats, pack bool) *packetConn {
	p := &packetConn{rc: rc, stats: stats, pack: pack, probes: mismatchProbes}
	p.rbufs = make([][]byte, packetBatch)
	p.rhdrs = make([]unix.Mmsghdr, packetBatch)
	p.riov = make([]unix.Iovec, packetBatch)
	p.wframes = make([]*[]byte, packetBatch)
	p.wlens = make([][2]byte, packetBatch)
	p.whdrs = make([]unix.Mmsghdr, packetBatch)
	p.wiov = make([]unix.Iovec, 2*packetBatch)
	for i := range packetBatch {
		// Pages of these buffers are touched only as far as frames
		// reach, so the resident cost is what the traffic needs. One
		// byte more than the largest message shows a truncation.
		p.rbufs[i] = make([]byte, packedMax+1)
		p.riov[i].Base = &p.rbufs[i][0]
		p.riov[i].SetLen(len(p.rbufs[i]))
		p.rhdrs[i].Hdr.Iov = &p.riov[i]
		p.rhdrs[i].Hdr.SetIovlen(1)
	}
	return p
}

// ReadFrame implements frame.Reader. Messages that are not frames (too
// short, too long, or truncated) are counted and skipped; in a packed
// message, a length that runs past the message's end loses the rest of the
// message, counted once.
func (p *packetConn) ReadFrame() ([]byte, error) {
	for {
		if p.roff < p.rend {
			b := p.rbufs[p.rcur][p.roff:p.rend]
			n := 0
			if len(b) >= 2 {
				n = int(b[0])<<8 | int(b[1])
			}
			if len(b) < 2 || 2+n > len(b) || n < frame.MinFrame {
				p.stats.RxMalformed.Add(1)
				if p.roff == 0 && len(b) >= frame.MinFrame && len(b) <= frame.MaxFrame {
					p.mismatch(fmt.Sprintf("a %d-byte message is not packed (its first two bytes, read as a length, say %d): "+
						"the other end seems to send one frame per message", len(b), n))
				}
				p.roff = p.rend
				continue
			}
			p.roff += 2 + n
			return b[2 : 2+n], nil
		}
		for p.rnext < p.rn {
			i := p.rnext
			p.rnext++
			n := int(p.rhdrs[i].Len)
			if n == 0 {
				return nil, io.EOF // the peer closed: a zero-length message ends the batch
			}
			if p.rhdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || n > packedMax || !p.pack && (n > frame.MaxFrame || n < frame.MinFrame) {
				p.stats.RxMalformed.Add(1)
				continue
			}
			if p.pack {
				p.rcur, p.roff, p.rend = i, 0, n
				break
			}
			if p.probes > 0 && p.onMismatch != nil {
				// A mismatch shows in the first messages (ARP): only
				// those are looked at.
				p.probes--
				if looksPacked(p.rbufs[i][:n]) {
					p.mismatch(fmt.Sprintf("a %d-byte message looks packed (two-byte lengths that add up to the message): "+
						"the other end seems to send packed messages", n))
				}
			}
			return p.rbufs[i][:n], nil
		}
		if p.roff < p.rend {
			continue
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads the next batch, waiting for at least one message.
func (p *packetConn) fill() error {
	var n int
	var serr error
	err := p.rc.Read(func(fd uintptr) bool {
		for i := range p.rhdrs {
			p.rhdrs[i].Len = 0
			p.rhdrs[i].Hdr.Flags = 0
		}
		r, e := rawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&p.rhdrs[0])), uintptr(len(p.rhdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		if e != 0 {
			serr = os.NewSyscallError("recvmmsg", e)
		}
		n = int(r)
		return true
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	if n == 0 {
		return io.EOF
	}
	p.rn, p.rnext = n, 0
	return nil
}

// More implements batchReader.
func (p *packetConn) More() bool { return p.roff < p.rend || p.rnext < p.rn }

// TryWriteFrame implements directSink: one send that does not wait. The
// caller makes sure no batch is pending.
func (p *packetConn) TryWriteFrame(b []byte) (bool, error) {
	if !p.pack {
		return tryOnce(p.rc, "sendto", func(fd uintptr) unix.Errno {
			_, e := rawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
			return e
		})
	}
	// Locals: two senders may try at once (they share no batch).
	l := [2]byte{byte(len(b) >> 8), byte(len(b))}
	var iov [2]unix.Iovec
	iov[0].Base, iov[1].Base = &l[0], &b[0]
	iov[0].SetLen(2)
	iov[1].SetLen(len(b))
	var m unix.Msghdr
	m.Iov = &iov[0]
	m.SetIovlen(2)
	return tryOnce(p.rc, "sendmsg", func(fd uintptr) unix.Errno {
		_, e := rawSyscall6(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&m)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0, 0)
		return e
	})
}

// WriteFrame implements frameSink: the frame joins the batch, which goes
// out when it is full or at Flush.
func (p *packetConn) WriteFrame(b []byte) error {
	fb := framePool.Get().(*[]byte)
	*fb = append((*fb)[:0], b...)
	return p.WriteOwned(fb)
}

// WriteOwned implements ownedSink: the frame buffer itself joins the
// batch (no copy), and goes back to framePool once sent.
func (p *packetConn) WriteOwned(fb *[]byte) error {
	if p.wn == len(p.wframes) {
		if err := p.Flush(); err != nil {
			framePool.Put(fb)
			return err
		}
	}
	p.wframes[p.wn] = fb
	p.wn++
	return nil
}

// Flush implements frameSink: it sends the batch, waiting for room in the
// socket (backpressure) as a blocking write would.
func (p *packetConn) Flush() error {
	defer p.release()
	msgs := p.messages()
	for sent := 0; sent < msgs; {
		var n int
		var serr error
		err := p.rc.Write(func(fd uintptr) bool {
			r, e := rawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&p.whdrs[sent])), uintptr(msgs-sent), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			if e != 0 {
				serr = os.NewSyscallError("sendmmsg", e)
			}
			n = int(r)
			return true
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		sent += n
	}
	return nil
}

// messages lays out the batch's messages in whdrs and wiov: one per frame,
// or, packed, as many frames per message as fit in packedMax. It returns
// how many messages there are.
func (p *packetConn) messages() int {
	msgs, size := 0, 0
	for i := range p.wn {
		b := *p.wframes[i]
		if !p.pack {
			p.wiov[i].Base = &b[0]
			p.wiov[i].SetLen(len(b))
			p.whdrs[i].Hdr.Iov = &p.wiov[i]
			p.whdrs[i].Hdr.SetIovlen(1)
			msgs++
			continue
		}
		if size == 0 || size+2+len(b) > packedMax {
			p.whdrs[msgs].Hdr.Iov = &p.wiov[2*i]
			p.whdrs[msgs].Hdr.SetIovlen(0)
			msgs++
			size = 0
		}
		p.wlens[i] = [2]byte{byte(len(b) >> 8), byte(len(b))}
		p.wiov[2*i].Base = &p.wlens[i][0]
		p.wiov[2*i].SetLen(2)
		p.wiov[2*i+1].Base = &b[0]
		p.wiov[2*i+1].SetLen(len(b))
		h := &p.whdrs[msgs-1].Hdr
		h.SetIovlen(int(h.Iovlen) + 2)
		size += 2 + len(b)
	}
	return msgs
}

// release returns the batch's frame buffers to framePool.
func (p *packetConn) release() {
	for i := range p.wn {
		framePool.Put(p.wframes[i])
		p.wframes[i] = nil
	}
	p.wn = 0
}
