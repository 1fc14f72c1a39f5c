package netstack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// TAP offloads (linux/if_tun.h), not in x/sys.
const (
	tunFCsum = 0x01 // the kernel may hand over packets with partial checksums
	tunFTSO4 = 0x02 // ... and TCPv4 segments larger than the MTU
	tunFTSO6 = 0x04 // ... and TCPv6 ones
)

// The virtio-net header (linux/virtio_net.h) that precedes every frame on a
// TAP opened with IFF_VNET_HDR, in host byte order (legacy virtio).
const (
	vnetHdrLen         = 10
	vnetFNeedsCsum     = 1 // the transport checksum is partial (CHECKSUM_PARTIAL)
	vnetGSONone        = 0
	vnetGSOTCPv4       = 1
	vnetGSOTCPv6       = 4
	tapMaxFrame        = frame.MaxFrame
	tapReadBufferBytes = vnetHdrLen + tapMaxFrame
)

// vnetHdr is a decoded virtio_net_hdr.
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func (h *vnetHdr) decode(b []byte) {
	h.flags, h.gsoType = b[0], b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *vnetHdr) encode(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// tapConn reads and writes the frames of a TAP device. With offloads
// (IFF_VNET_HDR and TUNSETOFFLOAD) each frame is preceded by a virtio-net
// header: the kernel hands over TCP segments of up to 64 KiB and packets
// whose checksum it left for the "device" to finish, and takes the same
// from us, segmenting and checksumming on its side. One read or write
// moves one frame (a TAP is not a socket: no recvmmsg).
type tapConn struct {
	rc    *fdPoll
	vnet  bool
	stats *LinkStats
	rbuf  []byte
	// partialAt is, for the frame ReadFrame returned last, where its TCP
	// header starts if the kernel left its checksum partial, else 0.
	partialAt int
	// ready counts the reads in a row that found a frame without waiting
	// (see Busy).
	ready int
}

// Busy implements busyReader: the last burstHint reads found a frame
// waiting, each without having to wait for it.
func (t *tapConn) Busy() bool { return t.ready >= burstHint }

// read reads one frame, waiting for it if none is there, and counts in
// t.ready the reads in a row that did not wait.
func (t *tapConn) read() (int, error) {
	n, waited, err := nbIO{t.rc}.readWaited(t.rbuf)
	if waited {
		t.ready = 0
	} else {
		t.ready++
	}
	return n, err
}

// ReadFrame implements frame.Reader. A frame whose checksum the kernel left
// partial is completed here, so that the stack (and NAT's incremental
// checksum updates) see an ordinary packet — except a TCP segment, which
// is returned as it is and reported by PartialChecksum: the link endpoint
// completes it only if it does not go out on a TAP, whose kernel side
// would do it (or, delivered locally, skip it) anyway.
func (t *tapConn) ReadFrame() ([]byte, error) {
	for {
		n, err := t.read()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil, io.EOF
			}
			return nil, err
		}
		b := t.rbuf[:n]
		if !t.vnet {
			return b, nil
		}
		if n < vnetHdrLen+frame.MinFrame {
			t.stats.RxMalformed.Add(1)
			continue
		}
		var h vnetHdr
		h.decode(b)
		b = b[vnetHdrLen:]
		t.partialAt = 0
		if h.flags&vnetFNeedsCsum != 0 {
			if h.csumOffset == tcpChecksumOffset {
				if f, ok := parseTCPFrame(b); ok && f.l4 == int(h.csumStart) && f.end == len(b) {
					t.partialAt = f.l4
					return b, nil
				}
			}
			if err := finishChecksum(b, int(h.csumStart), int(h.csumOffset), len(b)); err != nil {
				t.stats.RxMalformed.Add(1)
				continue
			}
		}
		return b, nil
	}
}

// PartialChecksum implements partialReader.
func (t *tapConn) PartialChecksum() int { return t.partialAt }

// WriteFrame implements frameSink. With offloads b starts with the
// virtio-net header the link endpoint filled in (see tapHeader).
func (t *tapConn) WriteFrame(b []byte) error {
	_, err := nbIO{t.rc}.Write(b)
	return err
}

// TryWriteFrame implements directSink: one write that does not wait.
func (t *tapConn) TryWriteFrame(b []byte) (bool, error) {
	return tryOnce(t.rc, "write", func(fd uintptr) unix.Errno {
		_, e := rawSyscall6(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		return e
	})
}

// Flush implements frameSink: every write reaches the device at once.
func (*tapConn) Flush() error { return nil }

func (t *tapConn) Close() error { return t.rc.Close() }

// tapHeader fills in the virtio-net header h for the frame b (which follows
// it) on a link of the given MTU: a TCP segment longer than the MTU goes to
// the kernel whole, to be segmented there (gso_size mss, or what the MTU
// leaves when mss is 0); a packet with a partial checksum (needsCsum) is
// marked so that the kernel finishes it.
func tapHeader(h []byte, b []byte, mtu uint32, mss uint16, needsCsum bool) error {
	var vh vnetHdr
	if len(b) > int(mtu)+header.EthernetMinimumSize {
		f, ok := parseTCPFrame(b)
		if !ok {
			return fmt.Errorf("%d-byte frame exceeds the MTU (%d) and is not a TCP segment", len(b), mtu)
		}
		if max := int(mtu) - (f.payload - f.l3); max < 1 {
			return fmt.Errorf("a %d-byte MTU leaves no room for the payload of a TCP segment with %d bytes of headers", mtu, f.payload-f.l3)
		} else if mss == 0 || int(mss) > max {
			mss = uint16(max)
		}
		vh.gsoType = vnetGSOTCPv4
		if f.v6 {
			vh.gsoType = vnetGSOTCPv6
		}
		vh.gsoSize = mss
		vh.hdrLen = uint16(f.payload)
		vh.flags = vnetFNeedsCsum
		vh.csumStart = uint16(f.l4)
		vh.csumOffset = tcpChecksumOffset
		setPartialChecksum(b, f)
	} else if needsCsum {
		f, ok := parseTCPFrame(b)
		if !ok {
			return fmt.Errorf("frame with a partial checksum is not a TCP segment")
		}
		vh.flags = vnetFNeedsCsum
		vh.csumStart = uint16(f.l4)
		vh.csumOffset = tcpChecksumOffset
	}
	vh.encode(h)
	return nil
}

// tcpChecksumOffset is where the checksum sits in a TCP header.
const tcpChecksumOffset = 16

// openTAP opens the TAP device name (in netns, if set) for a NIC. With
// offload the kernel and the stack exchange TCP segments of up to 64 KiB and
// leave checksums to each other (see tapConn).
func openTAP(nc *NICConfig, mac tcpip.LinkAddress, mtu uint32, log *slog.Logger, stats *LinkStats) (*linkEndpoint, error) {
	name, offload := nc.Link.Rx.Path, nc.Link.UsesGSO()
	f, err := openTAPDevice(name, nc.Link.Netns, offload)
	if err != nil {
		var nse *netnsError
		if !errors.As(err, &nse) && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) {
			return nil, fmt.Errorf("tap:%s: creating a TAP device needs CAP_NET_ADMIN (run as root, or `setcap cap_net_admin+ep` on the nfpipe binary): %w", name, err)
		}
		return nil, fmt.Errorf("tap:%s: %w", name, err)
	}
	rc, err := pollFile(f)
	if err != nil {
		return nil, fmt.Errorf("tap:%s: %w", name, err)
	}
	conn := &tapConn{rc: rc, vnet: offload, stats: stats, rbuf: make([]byte, tapReadBufferBytes)}
	e := newLinkEndpoint(nc.Name, mac, mtu, log, stats)
	e.waitLimit = oneWayWaitLimit // the kernel never waits on our reads (see oneWayWaitLimit)
	e.vnet = offload
	e.gso = offload
	e.setSink(conn, flushWhenIdle)
	e.startReader(conn, false)
	e.rxEnds = false // a TAP's input does not end while the device lives
	e.txClosers = append(e.txClosers, conn)
	return e, nil
}

// openTAPDevice opens the TAP device name, creating it if it is missing,
// in the network namespace ns (empty: the process's own), with the
// virtio-net header and TCP/checksum offloads when offload is set. A device
// that exists already keeps its persistence, so that a TAP made to outlive
// its users (by `ip tuntap add`, or by the chain runner, which configures it
// before the function starts and must find it again when the function
// restarts) does not vanish when this process exits.
//
// The device is opened with ioctls rather than songgao/water, which cannot
// ask for IFF_VNET_HDR or set offloads.
func openTAPDevice(name, ns string, offload bool) (*os.File, error) {
	open := func() (*os.File, error) { return openTUN(name, offload) }
	if ns == "" {
		return open()
	}
	path := ns
	if !strings.Contains(ns, "/") {
		path = "/run/netns/" + ns
	}
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &netnsError{fmt.Errorf("netns %s: %w", ns, &os.PathError{Op: "open", Path: path, Err: err})}
	}
	defer unix.Close(target)
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		// A TAP device lives in the namespace of the thread that opens
		// /dev/net/tun: this thread alone enters ns for the open. If it
		// cannot come back it stays locked, and the runtime ends it when
		// this goroutine returns, so no other goroutine runs in ns.
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: &netnsError{fmt.Errorf("netns: %w", err)}}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: &netnsError{fmt.Errorf("entering netns %s needs CAP_SYS_ADMIN: setns: %w", ns, err)}}
			return
		}
		f, err := open()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{f, err}
	}()
	r := <-done
	return r.f, r.err
}

// openTUN attaches to (or creates) the TAP device name in this thread's
// namespace. The file is non-blocking, so reads wait in Go's poller and
// Close interrupts them.
func openTUN(name string, offload bool) (*os.File, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("device name %q is longer than %d characters", name, unix.IFNAMSIZ-1)
	}
	// Blocking for os.NewFile, so that the file stays out of Go's poller
	// (pollFile switches it to non-blocking mode and waits for it).
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/net/tun", Err: err}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("ioctl TUNSETIFF", err)
	}
	if offload {
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError("ioctl TUNSETVNETHDRSZ", err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError("ioctl TUNSETOFFLOAD", err)
		}
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

// netnsError is a failure to reach a TAP's namespace, as opposed to one
// to open the device.
type netnsError struct{ err error }

func (e *netnsError) Error() string { return e.err.Error() }
func (e *netnsError) Unwrap() error { return e.err }
