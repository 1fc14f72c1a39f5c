package netstack

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// nicEndpoint sits between a NIC and its link endpoint and does what a real
// NIC and driver would that gVisor leaves out:
//   - drops unicast frames addressed to another MAC (gVisor marks them
//     PacketOtherHost and still routes them);
//   - on links that cannot resolve neighbours (one-way links, or a fixed
//     peer MAC), addresses every frame to the peer or to broadcast and tells
//     the stack not to resolve;
//   - answers IPv4 packets that arrive with TTL 1 and must be forwarded with
//     ICMP time-exceeded (gVisor forwards them with TTL 0; google/gvisor#13521);
//   - mirrors frames in both directions to a pcap capture;
//   - refuses new flows when the conntrack table is full (see ConntrackConfig).
type nicEndpoint struct {
	nested.Endpoint
	name    string
	mac     tcpip.LinkAddress
	resolve bool
	peer    tcpip.LinkAddress
	stats   *LinkStats
	// forwarding reports whether IPv4 forwarding is on; isLocal whether an
	// address belongs to this stack.
	forwarding bool
	isLocal    func(tcpip.Address) bool
	// captures are the pcap writers frames are mirrored to: the --capture
	// file and live captures (Stack.Capture). Copy on write.
	captures  atomic.Pointer[[]*captureWriter]
	captureMu sync.Mutex
	// ct admits or refuses new flows once rules are installed.
	ct *conntrackGuard
	// delivering is the stack's count of frames being delivered (see
	// linkEndpoint.delivering).
	delivering *atomic.Int64
}

var _ stack.LinkEndpoint = (*nicEndpoint)(nil)

func newNICEndpoint(child stack.LinkEndpoint, name string, mac tcpip.LinkAddress, link LinkSpec, stats *LinkStats) *nicEndpoint {
	e := &nicEndpoint{name: name, mac: mac, resolve: link.resolves(), stats: stats}
	if !e.resolve {
		e.peer = tcpip.LinkAddress(link.peerMAC())
	}
	e.Endpoint.Init(child, e)
	return e
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (e *nicEndpoint) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	lh := pkt.LinkHeader().Slice()
	if len(lh) < header.EthernetMinimumSize {
		e.stats.RxMalformed.Add(1)
		return
	}
	dst := header.Ethernet(lh).DestinationAddress()
	switch {
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	case dst == e.mac:
		pkt.PktType = tcpip.PacketHost
	default:
		e.stats.RxOtherHost.Add(1)
		return
	}
	e.mirror(pkt)
	e.delivering.Add(1)
	defer e.delivering.Add(-1)
	if !e.ct.admit(proto, pkt) {
		return // counted as conntrack dropped_full
	}
	if proto == header.IPv4ProtocolNumber && e.forwarding {
		e.expireTTL1(pkt)
	}
	e.Endpoint.DeliverNetworkPacket(proto, pkt)
}

// forwardMu serialises the receive paths of a forwarding stack, as a guard
// against a use-after-free in gVisor's IPv4 forwarding (pinned version):
// forwardPacketWithRoute (ipv4.go) reads the TTL through a header slice
// taken before DeepCopyForForwarding, by which time the chunk under it can
// have gone back to gVisor's buffer pool; another receive path that takes
// that chunk for a new frame overwrites what the TTL is read from (the race
// detector shows it). A forwarding stack's link endpoints hold this lock
// from the allocation of a received frame to the end of its delivery (see
// linkEndpoint.deliver), so no receive path of the process allocates while
// a packet is forwarded. IPv6 reads the hop limit before the copy.
//
// Stacks that do not forward (hosts) do not take it: a process running one
// router and other stacks with traffic of their own (only tests do) is not
// covered, which is why forwarding is tested across processes.
var forwardMu sync.Mutex

// expireTTL1 rewrites TTL 1 to TTL 0 on an IPv4 packet that is not for this
// stack, so that gVisor's forwarding path, which checks only for 0, drops it
// and sends time-exceeded as RFC 1812 5.3.1 requires.
func (e *nicEndpoint) expireTTL1(pkt *stack.PacketBuffer) {
	b, ok := pkt.Data().PullUp(header.IPv4MinimumSize)
	if !ok || header.IPv4(b).TTL() != 1 {
		return
	}
	hlen := int(header.IPv4(b).HeaderLength())
	if b, ok = pkt.Data().PullUp(hlen); !ok || hlen < header.IPv4MinimumSize {
		return
	}
	h := header.IPv4(b)
	dst := h.DestinationAddress()
	if header.IsV4MulticastAddress(dst) || dst == header.IPv4Broadcast || e.isLocal(dst) {
		return
	}
	h.SetTTL(0)
	h.SetChecksum(0)
	h.SetChecksum(^h.CalculateChecksum())
	e.stats.RxTTLExpired.Add(1)
}

// WritePackets implements stack.LinkWriter.
func (e *nicEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	if e.captures.Load() != nil {
		for _, pkt := range pkts.AsSlice() {
			e.mirror(pkt)
		}
	}
	return e.Endpoint.WritePackets(pkts)
}

// AddHeader implements stack.LinkEndpoint.
func (e *nicEndpoint) AddHeader(pkt *stack.PacketBuffer) {
	if !e.resolve {
		pkt.EgressRoute.RemoteLinkAddress = e.peer
	}
	e.Endpoint.AddHeader(pkt)
}

// Capabilities implements stack.LinkEndpoint.
func (e *nicEndpoint) Capabilities() stack.LinkEndpointCapabilities {
	c := e.Endpoint.Capabilities()
	if e.resolve {
		return c | stack.CapabilityResolutionRequired
	}
	return c &^ stack.CapabilityResolutionRequired
}

// LinkAddress implements stack.LinkEndpoint.
func (e *nicEndpoint) LinkAddress() tcpip.LinkAddress { return e.mac }

// Close implements stack.LinkEndpoint.
func (e *nicEndpoint) Close() {
	e.Endpoint.Close()
	e.closeCaptures()
}

// mirror writes pkt to every capture; a capture whose writer failed (its
// reader went away) is removed.
func (e *nicEndpoint) mirror(pkt *stack.PacketBuffer) {
	cs := e.captures.Load()
	if cs == nil {
		return
	}
	for _, c := range *cs {
		if !c.write(pkt) {
			e.removeCapture(c)
		}
	}
}

func (e *nicEndpoint) addCapture(c *captureWriter) {
	e.captureMu.Lock()
	defer e.captureMu.Unlock()
	var cs []*captureWriter
	if old := e.captures.Load(); old != nil {
		cs = append(cs, *old...)
	}
	cs = append(cs, c)
	e.captures.Store(&cs)
}

// removeCapture detaches c and closes it; removing twice is harmless.
func (e *nicEndpoint) removeCapture(c *captureWriter) {
	e.captureMu.Lock()
	old := e.captures.Load()
	var cs []*captureWriter
	found := false
	if old != nil {
		for _, x := range *old {
			if x == c {
				found = true
				continue
			}
			cs = append(cs, x)
		}
	}
	if len(cs) == 0 {
		e.captures.Store(nil)
	} else {
		e.captures.Store(&cs)
	}
	e.captureMu.Unlock()
	if found {
		c.close()
	}
}

func (e *nicEndpoint) closeCaptures() {
	e.captureMu.Lock()
	old := e.captures.Swap(nil)
	e.captureMu.Unlock()
	if old != nil {
		for _, c := range *old {
			c.close()
		}
	}
}

// captureWriter writes a pcap of an interface's frames to a file, a FIFO or
// a live reader.
type captureWriter struct {
	mu     sync.Mutex
	name   string
	out    io.WriteCloser
	w      frame.Writer
	eager  bool // flush every frame: a FIFO, pipe or socket someone reads live
	buf    []byte
	failed bool
	log    *slog.Logger
	stop   chan struct{}
	closed chan struct{}
}

func newCaptureWriter(f *os.File, log *slog.Logger) *captureWriter {
	return newCaptureTo(f.Name(), f, !isRegular(f), log)
}

func newCaptureTo(name string, out io.WriteCloser, eager bool, log *slog.Logger) *captureWriter {
	c := &captureWriter{name: name, out: out, w: frame.NewWriter(frame.PCAP, out), eager: eager, log: log, stop: make(chan struct{}), closed: make(chan struct{})}
	c.w.Flush()
	if !c.eager {
		go c.flushEvery(lazyFlushDelay)
	}
	return c
}

// write mirrors one frame; it reports false once the capture has failed.
func (c *captureWriter) write(pkt *stack.PacketBuffer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return false
	}
	c.buf = c.buf[:0]
	for _, s := range pkt.AsSlices() {
		c.buf = append(c.buf, s...)
	}
	err := c.w.WriteFrame(c.buf)
	if err == nil && c.eager {
		err = c.w.Flush()
	}
	if err != nil {
		c.failed = true
		c.log.Info("capture stopped", "to", c.name, "err", err)
		return false
	}
	return true
}

func (c *captureWriter) flushEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			if !c.failed {
				c.w.Flush()
			}
			c.mu.Unlock()
		case <-c.stop:
			return
		}
	}
}

func (c *captureWriter) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return
	default:
	}
	if !c.failed {
		c.w.Flush()
	}
	c.failed = true
	close(c.stop)
	c.out.Close()
	close(c.closed)
}

func isRegular(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}
