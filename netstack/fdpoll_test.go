package netstack

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// seqpacketPair returns an fdPoll on one end of a SOCK_SEQPACKET
// socketpair and the other end's descriptor.
func seqpacketPair(t *testing.T) (*fdPoll, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newFDPoll(fds[0], "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); unix.Close(fds[1]) })
	return p, fds[1]
}

// pollSend sends b through p, waiting for room.
func pollSend(p *fdPoll, b []byte) error {
	var e unix.Errno
	err := p.Write(func(fd uintptr) bool {
		_, e = rawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		return e != unix.EAGAIN
	})
	if err == nil && e != 0 {
		err = e
	}
	return err
}

// pollRecv receives one message through p, waiting for it.
func pollRecv(p *fdPoll, b []byte) (int, error) {
	var n uintptr
	var e unix.Errno
	err := p.Read(func(fd uintptr) bool {
		n, e = rawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		return e != unix.EAGAIN
	})
	if err == nil && e != 0 {
		err = e
	}
	return int(n), err
}

// fill shrinks the socket buffers of p and its peer and sends msg until
// the socket is full, returning how many went.
func fill(t *testing.T, p *fdPoll, peer int, msg []byte) int {
	t.Helper()
	unix.SetsockoptInt(peer, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	p.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) })
	for sent := 0; ; sent++ {
		var e unix.Errno
		p.Write(func(fd uintptr) bool {
			_, e = rawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)), unix.MSG_DONTWAIT, 0, 0)
			return true
		})
		if e == unix.EAGAIN {
			return sent
		}
		if e != 0 {
			t.Fatal(e)
		}
	}
}

// readable reports whether Go's poller would see fd (an epoll instance)
// readable now.
func readable(t *testing.T, f interface {
	Control(func(uintptr)) error
}) bool {
	t.Helper()
	var n int
	f.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ = unix.Poll(fds, 0)
	})
	return n > 0
}

// TestFDPollNoWriteSpaceWakeups: once the peer has read what we sent,
// nothing Go's poller watches for this descriptor has an event, so the
// process is not woken for it; input is still seen.
func TestFDPollNoWriteSpaceWakeups(t *testing.T) {
	p, peer := seqpacketPair(t)
	for i := 0; i < 3; i++ {
		if err := pollSend(p, []byte("frame")); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	for i := 0; i < 3; i++ {
		if n, err := unix.Read(peer, buf); err != nil || string(buf[:n]) != "frame" {
			t.Fatalf("peer read %q, %v", buf[:n], err)
		}
	}
	if readable(t, p.in.rc) {
		t.Error("the input epoll instance has an event after the peer consumed our frames")
	}
	if readable(t, p.out.rc) {
		t.Error("the output epoll instance has an event while no writer waits")
	}

	// Input wakes a waiting reader.
	got := make(chan string, 1)
	go func() {
		n, err := pollRecv(p, buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := unix.Write(peer, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "reply" {
			t.Fatalf("read %q, want reply", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waiting for input was not woken")
	}
}

// TestFDPollBackpressure: a writer finding the socket full waits until the
// peer reads, and the output watch is gone afterwards.
func TestFDPollBackpressure(t *testing.T) {
	p, peer := seqpacketPair(t)
	msg := make([]byte, 1000)
	sent := fill(t, p, peer, msg)
	done := make(chan error, 1)
	go func() { done <- pollSend(p, msg) }()
	select {
	case err := <-done:
		t.Fatalf("send into a full socket returned at once (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	buf := make([]byte, 2000)
	for i := 0; i < sent; i++ {
		if _, err := unix.Read(peer, buf); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a writer waiting for room was not woken when the peer read")
	}
	if n, err := unix.Read(peer, buf); err != nil || n != len(msg) {
		t.Fatalf("the waiting writer's message: %d bytes, %v", n, err)
	}
	if readable(t, p.out.rc) {
		t.Error("the output epoll instance still has an event after the writer was served")
	}
}

// TestFDPollClose: Close ends a waiting reader and a waiting writer with
// net.ErrClosed, and calls after it fail the same way.
func TestFDPollClose(t *testing.T) {
	p, peer := seqpacketPair(t)
	msg := make([]byte, 1000)
	fill(t, p, peer, msg)
	rerr, werr := make(chan error, 1), make(chan error, 1)
	go func() { _, err := pollRecv(p, make([]byte, 64)); rerr <- err }()
	go func() { werr <- pollSend(p, msg) }()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	for name, ch := range map[string]chan error{"reader": rerr, "writer": werr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("waiting %s ended with %v, want net.ErrClosed", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Close did not end the waiting %s", name)
		}
	}
	if err := pollSend(p, msg); !errors.Is(err, net.ErrClosed) {
		t.Errorf("send after Close: %v, want net.ErrClosed", err)
	}
}

// packetPair returns two packetConns on the ends of a socketpair.
func packetPair(t *testing.T, pack bool) (a, b *packetConn, sa, sb *LinkStats) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa, sb = &LinkStats{}, &LinkStats{}
	for i, s := range []*LinkStats{sa, sb} {
		unix.SetsockoptInt(fds[i], unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
		unix.SetsockoptInt(fds[i], unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
		p, err := newFDPoll(fds[i], "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		if i == 0 {
			a = newPacketConn(p, s, pack)
		} else {
			b = newPacketConn(p, s, pack)
		}
	}
	return a, b, sa, sb
}

// testFrame is frame i of a test batch: sizes from the smallest frame to
// the largest, each filled with its index.
func testFrame(i int) []byte {
	sizes := []int{frame.MinFrame, 60, 1514, 9000, frame.MaxFrame, 64, 200}
	b := make([]byte, sizes[i%len(sizes)])
	for j := range b {
		b[j] = byte(i)
	}
	return b
}

// TestPacketConnPack: packed, a batch of frames of every size arrives
// whole and in order, in fewer messages than frames; lone frames sent
// directly and unpacked links work the same.
func TestPacketConnPack(t *testing.T) {
	for _, pack := range []bool{false, true} {
		a, b, _, sb := packetPair(t, pack)
		const n = 75
		for i := 0; i < n; i++ {
			fb := framePool.Get().(*[]byte)
			*fb = append((*fb)[:0], testFrame(i)...)
			if err := a.WriteOwned(fb); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := n; i < n+3; i++ {
			if ok, err := a.TryWriteFrame(testFrame(i)); !ok || err != nil {
				t.Fatalf("pack=%v: direct write %d: %v %v", pack, i, ok, err)
			}
		}
		msgs := 0
		for i := 0; i < n+3; i++ {
			refill := !b.More()
			got, err := b.ReadFrame()
			if refill {
				msgs += b.rn // the messages the new batch read
			}
			if err != nil {
				t.Fatalf("pack=%v: frame %d: %v", pack, i, err)
			}
			if want := testFrame(i); string(got) != string(want) {
				t.Fatalf("pack=%v: frame %d: %d bytes of %d, want %d of %d", pack, i, len(got), got[0], len(want), want[0])
			}
		}
		if sb.RxMalformed.Load() != 0 {
			t.Errorf("pack=%v: %d malformed", pack, sb.RxMalformed.Load())
		}
		// Packed, consecutive frames of a send batch (packetBatch frames)
		// share messages of up to packedMax bytes; a direct write is a
		// message of its own.
		want := n + 3
		if pack {
			want = 3
			for i := 0; i < n; i += packetBatch {
				size := 0
				for j := i; j < min(i+packetBatch, n); j++ {
					l := 2 + len(testFrame(j))
					if size == 0 || size+l > packedMax {
						want++
						size = 0
					}
					size += l
				}
			}
		}
		if msgs != want {
			t.Errorf("pack=%v: %d frames in %d messages, want %d", pack, n+3, msgs, want)
		}
	}
}

// TestPacketConnPackMalformed: a packed message whose lengths do not add up
// is counted once and the messages after it are read.
func TestPacketConnPackMalformed(t *testing.T) {
	sb := &LinkStats{}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	p, err := newFDPoll(fds[1], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := newPacketConn(p, sb, true)
	good := testFrame(1)
	rec := append([]byte{0, byte(len(good))}, good...)
	for _, m := range [][]byte{
		append(append([]byte{}, rec...), 0xff, 0xff, 1, 2, 3), // second length runs past the end
		{0},                   // too short for a length
		{0, 5, 1, 2, 3, 4, 5}, // a 5-byte frame
		rec,
	} {
		if _, err := unix.Write(fds[0], m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		got, err := b.ReadFrame()
		if err != nil || string(got) != string(good) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
		}
	}
	if m := sb.RxMalformed.Load(); m != 3 {
		t.Errorf("malformed: %d, want 3", m)
	}
}

// TestPacketConnPackMismatch: ends that disagree about packing are told so
// once, whichever end packs; ends that agree never are.
func TestPacketConnPackMismatch(t *testing.T) {
	// Broadcast frames, as the first frames on a link are (ARP): read as
	// packed, their first length (0xffff) runs past any message.
	bcast := func(size int) []byte {
		f := make([]byte, size)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		return f
	}
	frames := [][]byte{bcast(60), bcast(1514), bcast(60)}
	for _, c := range []struct {
		name       string
		sendPacked bool
		recvPacked bool
		want       string // in the one message told; "" for none
	}{
		{"packed sender, unpacked receiver", true, false, "looks packed"},
		{"unpacked sender, packed receiver", false, true, "is not packed"},
		{"both packed", true, true, ""},
		{"both unpacked", false, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			var ends [2]*packetConn
			rs := &LinkStats{}
			for i, pack := range []bool{c.sendPacked, c.recvPacked} {
				p, err := newFDPoll(fds[i], "test")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				ends[i] = newPacketConn(p, rs, pack)
			}
			w, r := ends[0], ends[1]
			var told []string
			r.onMismatch = func(what string) { told = append(told, what) }
			for _, f := range frames {
				if ok, err := w.TryWriteFrame(f); !ok || err != nil {
					t.Fatalf("write: %v %v", ok, err)
				}
			}
			if c.sendPacked && !c.recvPacked {
				// Each message is read as one frame: its length prefix
				// and the frame.
				for i, f := range frames {
					got, err := r.ReadFrame()
					if err != nil || len(got) != 2+len(f) {
						t.Fatalf("message %d: %d bytes, %v; want %d", i, len(got), err, 2+len(f))
					}
				}
			} else if !c.sendPacked && c.recvPacked {
				// Every message is skipped, counted; a packed one after
				// them is read.
				last := newPacketConn(w.rc, &LinkStats{}, true)
				if ok, err := last.TryWriteFrame(frames[0]); !ok || err != nil {
					t.Fatalf("write: %v %v", ok, err)
				}
				if got, err := r.ReadFrame(); err != nil || len(got) != len(frames[0]) {
					t.Fatalf("the packed message after three unpacked ones: %d bytes, %v", len(got), err)
				}
				if m := rs.RxMalformed.Load(); m != 3 {
					t.Errorf("rx_malformed %d, want 3", m)
				}
			} else {
				for i, f := range frames {
					if got, err := r.ReadFrame(); err != nil || string(got) != string(f) {
						t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
					}
				}
			}
			switch {
			case c.want == "" && len(told) != 0:
				t.Fatalf("agreeing ends were told of a mismatch: %q", told)
			case c.want != "" && (len(told) != 1 || !strings.Contains(told[0], c.want)):
				t.Fatalf("told %q; want one message saying %q", told, c.want)
			}
		})
	}
}

func TestLooksPacked(t *testing.T) {
	f := testFrame(1) // 60 bytes of 1s
	packed := append([]byte{0, byte(len(f))}, f...)
	two := append(append([]byte{}, packed...), packed...)
	for _, c := range []struct {
		name string
		m    []byte
		want bool
	}{
		{"one packed frame", packed, true},
		{"two packed frames", two, true},
		{"a bare frame", f, false}, // its "length" 0x0101 runs past the end
		{"a byte left over", append(append([]byte{}, packed...), 0), false},
		{"a frame shorter than an Ethernet header", []byte{0, 2, 1, 2}, false},
	} {
		if got := looksPacked(c.m); got != c.want {
			t.Errorf("%s: looksPacked = %v, want %v", c.name, got, c.want)
		}
	}
}
