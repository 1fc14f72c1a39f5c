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
		pc := newPacketConn(rx.packet, stats)
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

// packetConn carries one frame per message on a SOCK_SEQPACKET socket. It
// reads and writes in batches, one recvmmsg/sendmmsg for up to
// packetBatch messages, so that under load the cost of a system call is
// shared by many frames; a lone frame still goes out at the writer's next
// flush (when its queue runs empty).
type packetConn struct {
	rc    *fdPoll
	stats *LinkStats

	// Receive batch: rbufs hold what the last recvmmsg read, rlens their
	// lengths and rflags their flags; rnext is the next one to hand out.
	rbufs [][]byte
	rhdrs []unix.Mmsghdr
	riov  []unix.Iovec
	rn    int
	rnext int

	// Send batch: frame buffers handed over by WriteOwned (or copied in
	// by WriteFrame), sent by Flush.
	wframes []*[]byte
	whdrs   []unix.Mmsghdr
	wiov    []unix.Iovec
	wn      int
}

// packetBatch is how many messages one system call moves at most.
const packetBatch = 32

func newPacketConn(rc *fdPoll, stats *LinkStats) *packetConn {
	p := &packetConn{rc: rc, stats: stats}
	p.rbufs = make([][]byte, packetBatch)
	p.rhdrs = make([]unix.Mmsghdr, packetBatch)
	p.riov = make([]unix.Iovec, packetBatch)
	p.wframes = make([]*[]byte, packetBatch)
	p.whdrs = make([]unix.Mmsghdr, packetBatch)
	p.wiov = make([]unix.Iovec, packetBatch)
	for i := range packetBatch {
		// Pages of these buffers are touched only as far as frames
		// reach, so the resident cost is what the traffic needs.
		p.rbufs[i] = make([]byte, frame.MaxFrame+1)
		p.riov[i].Base = &p.rbufs[i][0]
		p.riov[i].SetLen(len(p.rbufs[i]))
		p.rhdrs[i].Hdr.Iov = &p.riov[i]
		p.rhdrs[i].Hdr.SetIovlen(1)
		p.whdrs[i].Hdr.Iov = &p.wiov[i]
		p.whdrs[i].Hdr.SetIovlen(1)
	}
	return p
}

// ReadFrame implements frame.Reader. Messages that are not frames (too
// short, or truncated because they exceed the largest frame) are counted
// and skipped.
func (p *packetConn) ReadFrame() ([]byte, error) {
	for {
		for p.rnext < p.rn {
			i := p.rnext
			p.rnext++
			n := int(p.rhdrs[i].Len)
			if n == 0 {
				return nil, io.EOF // the peer closed: a zero-length message ends the batch
			}
			if p.rhdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 || n > frame.MaxFrame || n < frame.MinFrame {
				p.stats.RxMalformed.Add(1)
				continue
			}
			return p.rbufs[i][:n], nil
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
func (p *packetConn) More() bool { return p.rnext < p.rn }

// TryWriteFrame implements directSink: one send that does not wait. The
// caller makes sure no batch is pending.
func (p *packetConn) TryWriteFrame(b []byte) (bool, error) {
	return tryOnce(p.rc, "sendto", func(fd uintptr) unix.Errno {
		_, e := rawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
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
	sent := 0
	for sent < p.wn {
		for i := sent; i < p.wn; i++ {
			b := *p.wframes[i]
			p.wiov[i].Base = &b[0]
			p.wiov[i].SetLen(len(b))
		}
		var n int
		var serr error
		err := p.rc.Write(func(fd uintptr) bool {
			r, e := rawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&p.whdrs[sent])), uintptr(p.wn-sent), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
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

// release returns the batch's frame buffers to framePool.
func (p *packetConn) release() {
	for i := range p.wn {
		framePool.Put(p.wframes[i])
		p.wframes[i] = nil
	}
	p.wn = 0
}
