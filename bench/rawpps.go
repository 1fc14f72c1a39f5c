package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The router-capacity measurement: a raw frame source and a raw frame
// counter, each a bare process on one end of a SOCK_SEQPACKET socketpair,
// with one nfpipe router between them. Unlike the gen → router → sink
// chains, no stack sends or receives: what is measured is the router's
// own forwarding rate (one hop), next to the bare copy between the same two
// processes with no router.
var (
	rawRouterMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x01} // router eth0
	rawSrcMAC    = []byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x02}
	rawSinkMAC   = "02:00:00:00:02:02"
)

// rawRowName names the router-capacity row.
const rawRowName = "64-byte UDP, 1 hop, raw frame source and sink (the router alone), links packed as the chain runner makes them"

// rawFrame is a 60-byte Ethernet frame carrying IPv4/UDP 192.0.2.2:9000 →
// 198.51.100.2:9000 with an 18-byte payload, addressed to the router.
func rawFrame() []byte {
	b := make([]byte, 14+20+8+udpPayload)
	copy(b[0:6], rawRouterMAC)
	copy(b[6:12], rawSrcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+udpPayload))
	copy(ip[12:16], []byte{192, 0, 2, 2})
	copy(ip[16:20], []byte{198, 51, 100, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], 9000)
	binary.BigEndian.PutUint16(udp[2:], 9000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+udpPayload)) // checksum 0: none (IPv4)
	return b
}

// rawPacked is how many frames a packed message of the raw source holds
// (as many as an nfpipe writer's batch).
const rawPacked = 32

// rawSource sends rawFrame on fd 3 for SECONDS, 32 messages per sendmmsg,
// waiting when the socket is full (the link's backpressure), and prints how
// many frames. With "pack", each message holds rawPacked frames, each
// preceded by its 2-byte length (a link with pack=on).
func rawSource(args []string) error {
	if len(args) < 1 || len(args) > 2 || len(args) == 2 && args[1] != "pack" {
		return fmt.Errorf("usage: __rawsrc SECONDS [pack]")
	}
	secs, err := strconv.ParseFloat(args[0], 64)
	if err != nil {
		return err
	}
	const batch = 32
	f := rawFrame()
	perMsg := 1
	if len(args) == 2 {
		perMsg = rawPacked
		var m []byte
		for range rawPacked {
			m = append(m, byte(len(f)>>8), byte(len(f)))
			m = append(m, f...)
		}
		f = m
	}
	hdrs := make([]unix.Mmsghdr, batch)
	iov := make([]unix.Iovec, batch)
	for i := range hdrs {
		iov[i].Base = &f[0]
		iov[i].SetLen(len(f))
		hdrs[i].Hdr.Iov = &iov[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	var sent int64
	start := time.Now()
	end := start.Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(end) {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, 3, uintptr(unsafe.Pointer(&hdrs[0])), batch, 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("sendmmsg: %w", e)
		}
		sent += int64(r) * int64(perMsg)
	}
	fmt.Printf("%d %.6f\n", sent, time.Since(start).Seconds())
	return nil
}

// rawSink counts the frames on fd 3 until none has come for IDLE after
// the first, and prints how many and over how long. With "pack", messages
// hold frames preceded by their 2-byte lengths.
func rawSink(args []string) error {
	if len(args) < 1 || len(args) > 2 || len(args) == 2 && args[1] != "pack" {
		return fmt.Errorf("usage: __rawsink IDLE [pack]")
	}
	pack := len(args) == 2
	idle, err := time.ParseDuration(args[0])
	if err != nil {
		return err
	}
	const batch = 64
	bufs := make([][]byte, batch)
	hdrs := make([]unix.Mmsghdr, batch)
	iov := make([]unix.Iovec, batch)
	for i := range hdrs {
		bufs[i] = make([]byte, 65538)
		iov[i].Base = &bufs[i][0]
		iov[i].SetLen(len(bufs[i]))
		hdrs[i].Hdr.Iov = &iov[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	tv := unix.NsecToTimeval(idle.Nanoseconds())
	if err := unix.SetsockoptTimeval(3, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	var count int64
	var first, last time.Time
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, 3, uintptr(unsafe.Pointer(&hdrs[0])), batch, unix.MSG_WAITFORONE, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			if count > 0 {
				break
			}
			continue
		}
		if e != 0 {
			return fmt.Errorf("recvmmsg: %w", e)
		}
		if r == 0 {
			break
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		last = now
		eof := false
		for i := 0; i < int(r); i++ {
			b := bufs[i][:hdrs[i].Len]
			if len(b) == 0 {
				eof = true // the source closed its end (no router)
				break
			}
			if !pack {
				count += udpFrames(b)
				continue
			}
			for len(b) >= 2 {
				n := int(b[0])<<8 | int(b[1])
				if 2+n > len(b) {
					return fmt.Errorf("a packed message's length runs past its end")
				}
				count += udpFrames(b[2 : 2+n])
				b = b[2+n:]
			}
		}
		if eof {
			break
		}
	}
	fmt.Printf("%d %.6f\n", count, last.Sub(first).Seconds())
	return nil
}

// udpFrames is 1 for an IPv4 UDP frame (the source's datagrams), 0 for an
// ARP or IPv6 frame.
func udpFrames(b []byte) int64 {
	if len(b) >= 42 && b[12] == 0x08 && b[13] == 0x00 && b[23] == 17 {
		return 1
	}
	return 0
}

// unixPair is a socketpair of type typ (SOCK_SEQPACKET, SOCK_STREAM) with
// the buffer sizes nfpipe asks for.
func unixPair(typ int) (a, b *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	return os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b"), nil
}

// rawResult is one raw run: frames sent, counted at the sink, and rates.
type rawResult struct {
	sent, received, counted int64
	offeredPPS, deliverPPS  float64
}

// rawRun sends raw frames for secs into a router (or, without router,
// straight into the sink) and counts what arrives.
func (h *harness) rawRun(ctx context.Context, router, noFastPath, pack bool, secs float64) (rawResult, error) {
	var res rawResult
	srcEnd, inEnd, err := unixPair(unix.SOCK_SEQPACKET)
	if err != nil {
		return res, err
	}
	sinkEnd := inEnd // no router: the sink reads what the source writes
	var outEnd *os.File
	var rtr *proc
	if router {
		if sinkEnd, outEnd, err = unixPair(unix.SOCK_SEQPACKET); err != nil {
			return res, err
		}
		opt := ""
		if pack {
			opt = ",pack=on"
		}
		argv := []string{h.nfpipe, "vnf", "router", "--name", "raw",
			"--if", "eth0=seqpacket:3,ip=192.0.2.1/24,mac=" + macString(rawRouterMAC) + opt,
			"--if", "eth1=seqpacket:4,ip=198.51.100.1/24" + opt,
			"--neigh", "198.51.100.2 lladdr " + rawSinkMAC + " dev eth1",
			"--neigh", "192.0.2.2 lladdr " + macString(rawSrcMAC) + " dev eth0",
			"--stats=json"}
		po := procOpts{extraFiles: []*os.File{inEnd, outEnd}}
		if noFastPath {
			po.env = []string{"NFPIPE_NO_FAST_PATH=1"}
		}
		if rtr, err = h.start(ctx, "nfpipe router", argv, po); err != nil {
			return res, err
		}
		inEnd.Close()
		outEnd.Close()
		time.Sleep(300 * time.Millisecond) // the stack is up before the first frame
	}
	sinkArgv, srcArgv := []string{h.self, "__rawsink", "500ms"}, []string{h.self, "__rawsrc", fmt.Sprint(secs)}
	if pack {
		sinkArgv, srcArgv = append(sinkArgv, "pack"), append(srcArgv, "pack")
	}
	sink, err := h.start(ctx, "raw sink", sinkArgv, procOpts{extraFiles: []*os.File{sinkEnd}})
	if err != nil {
		return res, err
	}
	src, err := h.start(ctx, "raw source", srcArgv, procOpts{extraFiles: []*os.File{srcEnd}})
	srcEnd.Close()
	sinkEnd.Close()
	if err != nil {
		return res, err
	}
	d := time.Duration(secs*float64(time.Second)) + 15*time.Second
	if code, err := src.wait(d); err != nil || code != 0 {
		return res, fmt.Errorf("raw source: status %d %v: %s", code, err, lastLines(src.stderr.String(), 2))
	}
	if code, err := sink.wait(d); err != nil || code != 0 {
		return res, fmt.Errorf("raw sink: status %d %v: %s", code, err, lastLines(sink.stderr.String(), 2))
	}
	var srcSecs, sinkSecs float64
	if _, err := fmt.Sscan(src.stdout.String(), &res.sent, &srcSecs); err != nil {
		return res, fmt.Errorf("raw source said %q", src.stdout.String())
	}
	if _, err := fmt.Sscan(sink.stdout.String(), &res.received, &sinkSecs); err != nil {
		return res, fmt.Errorf("raw sink said %q", sink.stdout.String())
	}
	res.offeredPPS = float64(res.sent) / srcSecs
	res.deliverPPS = float64(res.received) / max(srcSecs, sinkSecs)
	if rtr != nil {
		rtr.stop(syscall.SIGTERM, 5*time.Second)
		out := rtr.stdout.String()
		var rep statsReport
		if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &rep) != nil {
			return res, fmt.Errorf("router: no --stats=json report: %s", lastLines(rtr.stderr.String(), 2))
		}
		res.counted = int64(rep.countedDrops())
	}
	return res, nil
}

// routerRow is the row of a raw run through the router: delivered against
// offered, and every lost frame matched against the router's drop counters.
func routerRow(name string, r rawResult) row {
	return row{Name: name, Value: r.deliverPPS / 1000, Unit: "kpps", Baseline: "offered (the source's achieved rate)", BaseVal: r.offeredPPS / 1000,
		Note: fmt.Sprintf("%d sent, %d received, %d lost: %d counted as drops by the router, %d silent", r.sent, r.received, r.sent-r.received, r.counted, max(0, r.sent-r.received-r.counted))}
}

func macString(b []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// runRawPPS adds the router-capacity rows: the bare copy of 60-byte
// frames between the source and the sink, then the same with one router.
func runRawPPS(ctx context.Context, h *harness) {
	secs := 3.0
	if h.o.quick {
		secs = 1
	}
	for _, b := range []struct {
		name string
		pack bool
	}{
		{"60-byte frames, raw source → raw sink, no router (bare copy)", false},
		{"60-byte frames, raw source → raw sink, no router (bare copy), packed as the router's links", true},
	} {
		bare, err := h.rawRun(ctx, false, false, b.pack, secs)
		if err != nil {
			h.fail(b.name, "kpps", err)
			continue
		}
		h.add(row{Name: b.name, Value: bare.deliverPPS / 1000, Unit: "kpps", Note: fmt.Sprintf("%d sent, %d received", bare.sent, bare.received)})
	}
	for _, c := range []struct {
		name       string
		noFastPath bool
	}{
		{"64-byte UDP, 1 hop, raw frame source and sink, fast path off (gVisor forwards every packet)", true},
		{"64-byte UDP, 1 hop, raw frame source and sink, one frame per message (pack=off)", false},
	} {
		// Unpacked links: the fast path's own cost, and packing's share.
		if r, err := h.rawRun(ctx, true, c.noFastPath, false, secs); err != nil {
			h.fail(c.name, "kpps", err)
		} else {
			h.add(routerRow(c.name, r))
		}
	}
	r, err := h.rawRun(ctx, true, false, true, secs)
	if err != nil {
		h.fail(rawRowName, "kpps", err)
		return
	}
	h.add(routerRow(rawRowName, r))
	h.mu.Lock()
	h.rawPPS, h.rawSilent = r.deliverPPS, max(0, r.sent-r.received-r.counted)
	h.mu.Unlock()
}
