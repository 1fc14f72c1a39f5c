package netstack

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// frameSink is where a link writes frames: a frame.Writer on a byte stream,
// or one message per frame on a packet socket.
type frameSink interface {
	WriteFrame(b []byte) error
	Flush() error
}

// directSink is a frameSink that can also try to send one frame at once,
// from the sender's goroutine, without waiting: packet sockets and TAPs.
type directSink interface {
	// TryWriteFrame sends b now if the file takes it without waiting,
	// and reports whether it did.
	TryWriteFrame(b []byte) (bool, error)
}

// ownedSink is a frameSink that takes frame buffers from framePool as they
// are, and puts them back once written: no copy.
type ownedSink interface {
	WriteOwned(fb *[]byte) error
}

// batchReader is a frame.Reader that reads several frames at a time.
type batchReader interface {
	// More reports whether frames read with the last one are still to
	// be returned.
	More() bool
}

// flushPolicy says when buffered frames reach the file.
type flushPolicy int

const (
	// flushWhenIdle flushes as soon as no further frame is queued: one
	// frame costs one write, a burst is batched. For pipes, sockets and
	// terminals, where someone is waiting for the bytes.
	flushWhenIdle flushPolicy = iota
	// flushLazily lets the buffer fill and flushes an idle buffer after
	// lazyFlushDelay. For regular files, where nobody waits on each frame.
	flushLazily
)

// lazyFlushDelay bounds how stale a regular file may be while a function runs.
const lazyFlushDelay = 200 * time.Millisecond

// txQueueLen is the number of frames a link queues before a sender waits.
const txQueueLen = 1024

// How long a sender waits for room in a full transmit queue before the frame
// is dropped and counted. On a one-way link (a shell pipe) waiting is the
// backpressure that keeps a pipeline lossless, and nothing can wait on us in
// return. On a two-way link the peer may be waiting on us to read: if a
// goroutine that delivers received frames (and so sends inline: forwarding,
// echo replies) blocked on a full queue while the peer's did the same, both
// would stop. So a two-way link waits long (backpressure for the stack's
// own senders, such as an application's UDP stream) only while no frame is
// being delivered into the stack; otherwise it drops after a short wait,
// like a NIC's queue, and TCP recovers. A TAP is one-way in this respect:
// the kernel takes every frame written to it without waiting for anything
// the function reads, so nothing can be waiting on the writer in return, and
// its senders always wait (the router's reading slows down, and the
// kernel's queue in front of the other TAP pushes back on the sending
// sockets) rather than drop.
const (
	oneWayWaitLimit = 2 * time.Second
	twoWayWaitLimit = 5 * time.Millisecond
)

// linkEndpoint is nfpipe's stack.LinkEndpoint for Ethernet frames on files,
// pipes and sockets. A reader goroutine per receive side hands frames to the
// stack; WritePackets queues frames for a writer goroutine, waiting when the
// queue is full (backpressure), so a slow reader slows the sender down
// instead of losing frames.
type linkEndpoint struct {
	name   string
	mac    tcpip.LinkAddress
	mtu    atomic.Uint32
	log    *slog.Logger
	stats  *LinkStats
	policy flushPolicy
	// waitLimit bounds how long WritePackets waits for room in txq.
	waitLimit time.Duration
	// delivering counts the frames being delivered into the stack right
	// now, on any of its NICs (shared by the stack's links); nil for
	// one-way links, which always wait long.
	delivering *atomic.Int64
	// bursting counts the receive loops of the stack that deliver a frame
	// with more of the same batch behind it (shared by the stack's links).
	// While none does, a frame sent finds the writer idle and nothing
	// else coming: it is written at once from the sender's goroutine (see
	// tryDirect); during a burst, frames are queued and the writer sends
	// them in batches.
	bursting *atomic.Int64
	// onBurst is Config.OnBurst.
	onBurst func()

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher

	// sink is the current transmit side; nil drops (and counts) every
	// frame: a one-way link, or a listening socket with no peer yet.
	sink    atomic.Pointer[sinkRef]
	hasTx   bool
	txq     chan *[]byte
	pending atomic.Int64 // frames queued or being written
	// lastSend is when WritePackets last took a frame (Unix nanoseconds).
	lastSend atomic.Int64

	// rxDone is closed when the receive side ends (EOF or fatal error);
	// rxErr holds the error, nil for a clean EOF.
	rxDone    chan struct{}
	rxErr     error
	rxEnds    bool // the receive side can end (false for none, listen, tap)
	closeOnce sync.Once
	closing   chan struct{}
	// closed is set as closing is closed: a receive loop checks it for
	// each frame (cheaper than a select) and stops delivering.
	closed atomic.Bool
	// rxClosers unblock readers at Close; txClosers are closed after the
	// writer has flushed (two-way files belong here).
	rxClosers []io.Closer
	txClosers []io.Closer
	wg        sync.WaitGroup
	writerWG  sync.WaitGroup

	// gso: the link carries TCP segments larger than the MTU (see
	// LinkSpec.UsesGSO); the stack's TCP hands them over whole. vnet: each
	// frame on the file starts with a virtio-net header (a TAP with
	// offloads).
	gso  bool
	vnet bool
	// forwarding: the stack forwards, and deliveries hold forwardMu.
	forwarding bool
	// fast, when set, forwards a received frame without gVisor if it can
	// (see fastPath) and reports whether it did.
	fast func(b []byte, partial bool) bool
	// captured, when set, reports whether the interface's received
	// frames are being captured (they are then completed before gVisor
	// sees them: a capture shows complete checksums).
	captured func() bool
	// rxTrusted is set while a frame whose checksum the kernel left
	// partial is delivered: Capabilities then says so (gVisor reads it
	// for each received packet, to skip checking its checksums).
	rxTrusted atomic.Bool
	// onLarge, when set, is called before a frame larger than the MTU is
	// delivered (see Stack.activateGSO).
	onLarge func()

	malformedOnce sync.Once
	oversizeOnce  sync.Once
	// onStart holds the receive loops, started by start.
	onStart []func()
	// detachReader keeps the reader out of Wait: a read from a terminal
	// cannot be interrupted, and the process exits without it.
	detachReader bool
}

type sinkRef struct {
	w      frameSink
	closer io.Closer // closed on a write error (session sinks only)
}

// sinkOrNil is the sink of a possibly nil reference.
func (r *sinkRef) sinkOrNil() frameSink {
	if r == nil {
		return nil
	}
	return r.w
}

var _ stack.LinkEndpoint = (*linkEndpoint)(nil)

func newLinkEndpoint(name string, mac tcpip.LinkAddress, mtu uint32, log *slog.Logger, stats *LinkStats) *linkEndpoint {
	e := &linkEndpoint{
		name:    name,
		mac:     mac,
		log:     log,
		stats:   stats,
		txq:     make(chan *[]byte, txQueueLen),
		rxDone:  make(chan struct{}),
		closing: make(chan struct{}),
	}
	e.mtu.Store(mtu)
	e.waitLimit = twoWayWaitLimit
	return e
}

// setSink installs the transmit side. Call before start.
func (e *linkEndpoint) setSink(w frameSink, policy flushPolicy) {
	e.hasTx = true
	e.policy = policy
	if w != nil {
		e.sink.Store(&sinkRef{w: w})
	}
}

// start starts the writer goroutine and the receive loops.
func (e *linkEndpoint) start() {
	if e.hasTx {
		e.wg.Add(1)
		e.writerWG.Add(1)
		go e.writeLoop()
	}
	for _, f := range e.onStart {
		f()
	}
}

// startReader arranges for start to read frames from r until EOF or a
// fatal error, and to mark the receive side done then.
func (e *linkEndpoint) startReader(r frame.Reader, pace bool) {
	e.rxEnds = true
	e.onStart = append(e.onStart, func() { e.runReader(r, pace) })
}

func (e *linkEndpoint) runReader(r frame.Reader, pace bool) {
	wg := &e.wg
	if e.detachReader {
		wg = new(sync.WaitGroup)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := e.readLoop(r, pace)
		e.rxErr = err
		close(e.rxDone)
	}()
}

// readLoop delivers frames from r until it ends. It returns nil at EOF or
// when the endpoint closes.
func (e *linkEndpoint) readLoop(r frame.Reader, pace bool) error {
	var t0, w0 time.Time
	queued := 0 // frames in a row delivered with more behind them
	bz, _ := r.(busyReader)
	tr, _ := r.(frame.TimedReader)
	pr, _ := r.(partialReader)
	for {
		b, err := r.ReadFrame()
		if err != nil {
			select {
			case <-e.closing:
				return nil
			default:
			}
			var me *frame.MalformedError
			if errors.As(err, &me) {
				e.stats.RxMalformed.Add(1)
				if me.Fatal {
					return fmt.Errorf("interface %q: %w", e.name, err)
				}
				e.malformedOnce.Do(func() {
					e.log.Warn("malformed frame skipped; further ones are only counted", "if", e.name, "err", me.Error())
				})
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, syscall.ECONNRESET) {
				// The peer went away with frames of ours unread (it
				// stopped first): the end of this input, not bad input.
				e.log.Info("peer reset the connection: input ended", "if", e.name)
				return nil
			}
			return fmt.Errorf("interface %q: read: %w", e.name, err)
		}
		if e.closed.Load() {
			// Frames a reader still holds when the link closes (a batch,
			// a stream's buffer) are not delivered: the stack is going.
			e.stats.RxDropped.Add(1)
			return nil
		}
		if pace && tr != nil {
			ts := tr.Timestamp()
			if t0.IsZero() {
				t0, w0 = ts, time.Now()
			} else if d := time.Until(w0.Add(ts.Sub(t0))); d > 0 {
				select {
				case <-time.After(d):
				case <-e.closing:
					return nil
				}
			}
		}
		partial := 0
		if pr != nil {
			partial = pr.PartialChecksum()
		}
		if bz != nil && e.onBurst != nil && bz.Busy() {
			e.onBurst()
		}
		if br, ok := r.(batchReader); ok && e.bursting != nil && br.More() {
			// A few frames waiting behind this one, not just two
			// crossing, tell that the function is busy.
			if queued++; queued == burstHint && e.onBurst != nil {
				e.onBurst()
			}
			e.bursting.Add(1)
			e.deliver(b, partial)
			e.bursting.Add(-1)
		} else {
			queued = 0
			e.deliver(b, partial)
		}
	}
}

// burstHint is how many frames in a row must arrive with more behind them
// before a receive loop calls Config.OnBurst.
const burstHint = 4

// busyReader is a frame.Reader that cannot see the frames behind the one
// it read (one frame per read: a TAP) but knows whether it had to wait:
// Busy says the last burstHint reads each found a frame already there.
type busyReader interface {
	Busy() bool
}

// partialReader is a frame.Reader that may return TCP segments whose
// checksum is still partial (a TAP with offloads: the kernel's
// CHECKSUM_PARTIAL): the pseudo-header sum in the checksum field, the rest
// to be added over the segment.
type partialReader interface {
	// PartialChecksum returns, for the frame ReadFrame returned last,
	// the offset of its TCP header if its checksum is partial, else 0.
	// Such a frame is a TCP segment parseTCPFrame accepts, ending with
	// the frame.
	PartialChecksum() int
}

// deliver hands one received frame to the stack. b is copied. partial is
// the offset of its TCP header if its checksum is partial (see
// partialReader), else 0.
func (e *linkEndpoint) deliver(b []byte, partial int) {
	if len(b) < header.EthernetMinimumSize {
		e.stats.RxMalformed.Add(1)
		return
	}
	e.stats.RxFrames.Add(1)
	e.stats.RxBytes.Add(uint64(len(b)))
	if e.onLarge != nil && len(b) > int(e.mtu.Load())+header.EthernetMinimumSize {
		e.onLarge()
	}
	e.mu.RLock()
	d := e.dispatcher
	e.mu.RUnlock()
	if d == nil {
		e.stats.RxDropped.Add(1)
		return
	}
	if e.fast != nil && e.fast(b, partial != 0) {
		return
	}
	if partial != 0 {
		if e.captured != nil && e.captured() {
			// partialReader vouches for the range.
			_ = finishChecksum(b, partial, tcpChecksumOffset, len(b))
		} else {
			// The kernel vouches for the data (CHECKSUM_PARTIAL): gVisor
			// need not check the checksum (connection tracking,
			// local TCP), and its forwarding computes a new one for
			// every packet it sends on (no link of ours offloads it), so
			// the partial one is never seen.
			e.rxTrusted.Store(true)
			defer e.rxTrusted.Store(false)
		}
	}
	if e.forwarding {
		// See forwardMu.
		forwardMu.Lock()
		defer forwardMu.Unlock()
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: frameBuffer(b)})
	hdr, _ := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	d.DeliverNetworkPacket(header.Ethernet(hdr).Type(), pkt)
	pkt.DecRef()
}

// headRoom is how much of a received frame goes into a chunk of its own:
// every header the stack parses (Ethernet, IPv4 with options or IPv6, TCP
// with options) fits. gVisor's forwarding path clones the packet and then
// reads its network header, which copies the chunk under it (copy on
// write); with the headers alone in that chunk, a 64 KiB segment costs a
// copy of a few hundred bytes there instead of one of 64 KiB.
const headRoom = 256

// frameBuffer copies a received frame into a gVisor buffer: headers and
// payload in two chunks when the frame is larger than headRoom.
func frameBuffer(b []byte) buffer.Buffer {
	if len(b) <= headRoom {
		return buffer.MakeWithData(b)
	}
	buf := buffer.MakeWithView(buffer.NewViewWithData(b[:headRoom]))
	buf.Append(buffer.NewViewWithData(b[headRoom:]))
	return buf
}

// framePool recycles frame buffers between WritePackets and the writer.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// WritePackets implements stack.LinkWriter. It copies each packet into a
// frame buffer, so that no packet outlives the call, finishes what the stack
// left to the hardware (see finish), and queues the frame for the writer
// goroutine, waiting up to waitLimit for room.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	for _, pkt := range pkts.AsSlice() {
		if !e.hasTx {
			e.stats.TxNoPath.Add(1)
			continue
		}
		fb := framePool.Get().(*[]byte)
		b := (*fb)[:0]
		off := 0
		if e.vnet {
			b = append(b, zeroVnetHdr[:]...)
			off = vnetHdrLen
		}
		for _, s := range pkt.AsSlices() {
			b = append(b, s...)
		}
		*fb = b
		if !e.finish(fb, off, &pkt.GSOOptions) {
			framePool.Put(fb)
			continue
		}
		e.sendFrame(fb)
	}
	return pkts.Len(), nil
}

// sendFrame sends a finished frame: at once if the link has been idle
// (tryDirect), through the writer's queue otherwise. fb goes back to
// framePool once written.
func (e *linkEndpoint) sendFrame(fb *[]byte) {
	now := time.Now().UnixNano()
	idle := now-e.lastSend.Swap(now) > int64(directIdle)
	if idle && e.tryDirect(*fb) {
		framePool.Put(fb)
		return
	}
	e.enqueue(fb)
}

var zeroVnetHdr [vnetHdrLen]byte

// finish does for the frame at (*fb)[off:] what the stack left to the
// hardware: the transport checksum of a packet that carries only its
// pseudo-header sum (gso.NeedsCsum), and the segmentation of a TCP segment
// larger than the MTU. A TAP with offloads leaves both to the kernel (the
// virtio-net header says what to do); a GSO link sends large segments
// whole; any other link splits them here. It reports whether the frame is
// to be queued; a frame it splits or drops is not.
func (e *linkEndpoint) finish(fb *[]byte, off int, gso *stack.GSO) bool {
	b := (*fb)[off:]
	mtu := e.mtu.Load()
	var mss uint16
	if gso.Type != stack.GSONone {
		mss = gso.MSS
	}
	if e.vnet {
		if err := tapHeader((*fb)[:off], b, mtu, mss, gso.NeedsCsum); err != nil {
			e.oversize(err)
			return false
		}
		if len(b) > int(mtu)+header.EthernetMinimumSize {
			e.stats.TxLarge.Add(1)
		}
		return true
	}
	if len(b) > int(mtu)+header.EthernetMinimumSize {
		f, ok := parseTCPFrame(b)
		if !ok {
			e.oversize(fmt.Errorf("%d-byte frame exceeds the MTU (%d) and is not a TCP segment", len(b), mtu))
			return false
		}
		if e.gso {
			e.stats.TxLarge.Add(1)
		} else {
			max := int(mtu) - (f.payload - f.l3)
			if max < 1 {
				e.oversize(fmt.Errorf("a %d-byte MTU leaves no room for the payload of a TCP segment with %d bytes of headers", mtu, f.payload-f.l3))
				return false
			}
			if mss == 0 || int(mss) > max {
				mss = uint16(max)
			}
			_, err := segmentTCP(b, int(mss), func(seg []byte) {
				sb := framePool.Get().(*[]byte)
				*sb = append((*sb)[:0], seg...)
				e.enqueue(sb)
			})
			if err != nil {
				e.oversize(err)
				return false
			}
			e.stats.TxSplit.Add(1)
			return false
		}
	}
	if gso.NeedsCsum {
		f, ok := parseTCPFrame(b)
		if !ok || finishChecksum(b, f.l4, tcpChecksumOffset, f.end) != nil {
			e.oversize(fmt.Errorf("frame with a partial checksum is not a TCP segment"))
			return false
		}
	}
	return true
}

// directIdle is how long a link must have sent nothing for a frame to be
// written directly (tryDirect): a lone frame (a ping, a request) saves the
// hand-off to the writer, while a stream of frames keeps going through the
// writer, which sends them in batches (one system call for many frames).
const directIdle = 50 * time.Microsecond

// tryDirect writes a frame from the sender's goroutine when nothing is
// queued or being written and no burst is being delivered, saving the
// hand-off to the writer goroutine (a wake-up per frame, which is most of a
// lone frame's latency through a function). It reports whether the frame
// was dealt with (sent, or counted as a write error).
func (e *linkEndpoint) tryDirect(b []byte) bool {
	if e.bursting == nil || e.bursting.Load() != 0 || e.pending.Load() != 0 {
		return false
	}
	ref := e.sink.Load()
	if ref == nil {
		return false
	}
	d, ok := ref.w.(directSink)
	if !ok {
		return false
	}
	select {
	case <-e.closing:
		return false // enqueue counts it: no path any more
	default:
	}
	sent, err := d.TryWriteFrame(b)
	if errors.Is(err, net.ErrClosed) {
		e.stats.TxNoPath.Add(1) // closed under us while stopping
		return true
	}
	if err != nil {
		e.writeFailed(ref, err)
		return true
	}
	if sent {
		e.stats.TxFrames.Add(1)
		e.stats.TxBytes.Add(uint64(len(b)))
	}
	return sent
}

// oversize drops a frame the link cannot carry, counted and logged once.
func (e *linkEndpoint) oversize(err error) {
	e.stats.TxOversize.Add(1)
	e.oversizeOnce.Do(func() {
		e.log.Warn("frame dropped: the link cannot carry it; further ones are only counted (tx_oversize)", "if", e.name, "err", err)
	})
}

// enqueue queues a frame for the writer, waiting up to waitLimit for room.
func (e *linkEndpoint) enqueue(fb *[]byte) {
	e.pending.Add(1)
	select {
	case e.txq <- fb:
		return
	default:
	}
	e.stats.TxWaits.Add(1)
	limit := e.waitLimit
	if limit == twoWayWaitLimit && e.delivering != nil && e.delivering.Load() == 0 {
		limit = oneWayWaitLimit // no receive path can be the one waiting
	}
	t := time.NewTimer(limit)
	select {
	case e.txq <- fb:
	case <-t.C:
		e.stats.TxQueueDrops.Add(1)
		e.pending.Add(-1)
		framePool.Put(fb)
	case <-e.closing:
		e.stats.TxNoPath.Add(1)
		e.pending.Add(-1)
		framePool.Put(fb)
	}
	t.Stop()
}

func (e *linkEndpoint) writeLoop() {
	defer e.wg.Done()
	defer e.writerWG.Done()
	var lazy *time.Timer
	var lazyC <-chan time.Time
	dirty := false
	flush := func() {
		if ref := e.sink.Load(); ref != nil && dirty {
			if err := ref.w.Flush(); err != nil {
				e.writeFailed(ref, err)
			}
		}
		dirty = false
	}
	for {
		var fb *[]byte
		select {
		case fb = <-e.txq:
		case <-lazyC:
			lazyC = nil
			flush()
			continue
		case <-e.closing:
			// Close drains first; whatever is left here was sent after
			// the drain and is dropped, counted.
			for {
				select {
				case fb := <-e.txq:
					e.stats.TxNoPath.Add(1)
					e.pending.Add(-1)
					framePool.Put(fb)
				default:
					flush()
					return
				}
			}
		}
		n := len(*fb)
		var err error
		ref := e.sink.Load()
		switch w := ref.sinkOrNil().(type) {
		case nil:
			e.stats.TxNoPath.Add(1)
		case ownedSink:
			err = w.WriteOwned(fb)
			fb = nil
		default:
			err = w.WriteFrame(*fb)
		}
		if err != nil {
			e.writeFailed(ref, err)
		} else if ref != nil {
			e.stats.TxFrames.Add(1)
			e.stats.TxBytes.Add(uint64(n))
			dirty = true
		}
		if fb != nil {
			framePool.Put(fb)
		}
		if len(e.txq) == 0 {
			if e.policy == flushWhenIdle {
				flush()
			} else if dirty && lazyC == nil {
				if lazy == nil {
					lazy = time.NewTimer(lazyFlushDelay)
				} else {
					lazy.Reset(lazyFlushDelay)
				}
				lazyC = lazy.C
			}
		}
		e.pending.Add(-1)
	}
}

// writeFailed retires a transmit side after a write error: later frames are
// dropped and counted, and the error is logged once.
func (e *linkEndpoint) writeFailed(ref *sinkRef, err error) {
	if ref != nil && ref.closer != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		// The peer of a session went away: this frame had no path, like
		// those sent until the next peer comes, not an I/O error.
		e.stats.TxNoPath.Add(1)
	} else {
		e.stats.TxErrors.Add(1)
	}
	if e.sink.CompareAndSwap(ref, nil) {
		if ref.closer != nil {
			ref.closer.Close()
			e.log.Info("peer went away; waiting for the next", "if", e.name, "err", err)
			return
		}
		e.log.Warn("transmit side failed; frames sent on this interface are now dropped and counted", "if", e.name, "err", err)
	}
}

// drain waits until every queued frame has been written and flushed, or
// until the deadline.
func (e *linkEndpoint) drain(deadline time.Time) bool {
	for e.pending.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// MTU implements stack.LinkEndpoint.
func (e *linkEndpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *linkEndpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (*linkEndpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress { return e.mac }

// SetLinkAddress implements stack.LinkEndpoint.
func (e *linkEndpoint) SetLinkAddress(addr tcpip.LinkAddress) { e.mac = addr }

// Capabilities implements stack.LinkEndpoint. Resolution is decided by the
// nicEndpoint above. RX checksum offload is claimed only while a frame the
// kernel vouches for is delivered (see rxTrusted): gVisor asks for each
// received packet, from the goroutine delivering it.
func (e *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	if e.rxTrusted.Load() {
		return stack.CapabilityResolutionRequired | stack.CapabilityRXChecksumOffload
	}
	return stack.CapabilityResolutionRequired
}

// Attach implements stack.LinkEndpoint.
func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *linkEndpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint.
func (e *linkEndpoint) Wait() { e.wg.Wait() }

// GSOMaxSize implements stack.GSOEndpoint: the largest IP packet the
// stack's TCP may hand over on a GSO link, such that the frame still fits
// every frame format.
func (e *linkEndpoint) GSOMaxSize() uint32 {
	if e.gso {
		return gsoMaxSize
	}
	return 0
}

// gsoMaxSize is the largest IP packet on a GSO link: a frame of at most
// frame.MaxFrame bytes.
const gsoMaxSize = frame.MaxFrame - header.EthernetMinimumSize

// SupportedGSO implements stack.GSOEndpoint. "Host" GSO is gVisor's name for
// handing large segments to the link, with checksums left partial.
func (e *linkEndpoint) SupportedGSO() stack.SupportedGSO {
	if e.gso {
		return stack.HostGSOSupported
	}
	return stack.GSONotSupported
}

// ARPHardwareType implements stack.LinkEndpoint.
func (*linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (*linkEndpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*linkEndpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Close implements stack.LinkEndpoint. It stops the goroutines and closes
// the files; it is idempotent.
func (e *linkEndpoint) Close() {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.closing)
		for _, c := range e.rxClosers {
			c.Close()
		}
		// Let the writer flush what it holds, unless the file is stuck.
		flushed := make(chan struct{})
		go func() { e.writerWG.Wait(); close(flushed) }()
		select {
		case <-flushed:
		case <-time.After(time.Second):
			e.log.Warn("transmit side did not flush within 1s; closing it anyway", "if", e.name)
		}
		for _, c := range e.txClosers {
			c.Close()
		}
		if ref := e.sink.Load(); ref != nil && ref.closer != nil {
			ref.closer.Close()
		}
	})
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (*linkEndpoint) SetOnCloseAction(func()) {}
