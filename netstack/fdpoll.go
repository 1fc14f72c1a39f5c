package netstack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdPoll is a syscall.RawConn for a descriptor a link moves frames
// through, that waits for it without putting it in Go's poller.
//
// Go's poller watches every descriptor for reading and writing at once
// (EPOLLIN|EPOLLOUT, edge-triggered). On a unix socket or a TAP device the
// kernel signals "writable" each time the peer consumes one of our frames
// (the write-space callback of the frame's socket buffer), so a function
// that sends a frame had its poller thread woken again as soon as the next
// function read it: one spurious thread wake-up per frame sent, a quarter of
// all wake-ups in a chain carrying pings. fdPoll keeps the descriptor out
// of Go's poller and waits through two epoll instances of its own that are
// in it: one watching the descriptor for input, always; one for output,
// armed only while a writer waits for room.
//
// The descriptor is held by an *os.File that Go does not poll (it is
// blocking when wrapped; see newFDPoll), whose RawConn keeps it from being
// closed during a call. Calls made through Read and Write must not block:
// the descriptor is switched to non-blocking mode after wrapping, and
// socket calls also pass MSG_DONTWAIT.
type fdPoll struct {
	f   *os.File
	src syscall.RawConn
	in  *epollSet
	out *epollSet
}

// newFDPoll takes over fd (which must not be in Go's poller: not made by
// the os or net packages in non-blocking mode).
func newFDPoll(fd int, name string) (*fdPoll, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, fmt.Errorf("%s: %w", name, os.NewSyscallError("fcntl", err))
	}
	return pollFile(os.NewFile(uintptr(fd), name)) // blocking: Go leaves it alone
}

// pollFile takes over f, a file Go does not poll (made by os.NewFile from
// a blocking descriptor), and switches its descriptor to non-blocking mode.
func pollFile(f *os.File) (*fdPoll, error) {
	src, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var fd int
	src.Control(func(d uintptr) { fd = int(d) })
	if err := unix.SetNonblock(fd, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), os.NewSyscallError("fcntl", err))
	}
	in, err := newEpollSet(fd, unix.EPOLLIN|unix.EPOLLRDHUP)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	out, err := newEpollSet(fd, 0)
	if err != nil {
		in.f.Close()
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return &fdPoll{f: f, src: src, in: in, out: out}, nil
}

// Control implements syscall.RawConn.
func (p *fdPoll) Control(f func(fd uintptr)) error { return p.src.Control(f) }

// Read implements syscall.RawConn: it calls f until f returns true,
// waiting for input between calls. Once the descriptor is closed, Read and
// Write fail with net.ErrClosed.
func (p *fdPoll) Read(f func(fd uintptr) bool) error {
	return p.in.wait(func() (bool, error) { return p.once(p.src.Read, f) })
}

// Write implements syscall.RawConn: it calls f until f returns true,
// waiting for room between calls.
func (p *fdPoll) Write(f func(fd uintptr) bool) error {
	if done, err := p.once(p.src.Write, f); done || err != nil {
		return err
	}
	if err := p.out.watch(true); err != nil {
		return err
	}
	err := p.out.wait(func() (bool, error) { return p.once(p.src.Write, f) })
	if werr := p.out.watch(false); err == nil && !errors.Is(werr, net.ErrClosed) {
		err = werr
	}
	return err
}

// once calls f once on the descriptor (through op, which holds it open).
func (p *fdPoll) once(op func(func(uintptr) bool) error, f func(fd uintptr) bool) (bool, error) {
	var done bool
	if op(func(fd uintptr) bool {
		done = f(fd)
		return true
	}) != nil {
		return false, net.ErrClosed // the only way a call on a file Go does not poll fails
	}
	return done, nil
}

// Close closes the epoll instances, which ends any wait with an error, and
// then the descriptor.
func (p *fdPoll) Close() error {
	p.in.f.Close()
	p.out.f.Close()
	return p.f.Close()
}

// epollSet is an epoll instance watching one descriptor, itself waited on
// by Go's poller (an epoll instance is readable while it has events).
type epollSet struct {
	f      *os.File
	rc     syscall.RawConn
	target int
	events uint32
	ev     unix.EpollEvent
}

// newEpollSet makes an epoll instance watching target for events (level
// triggered); with events 0 it watches nothing until watch(true).
func newEpollSet(target int, events uint32) (*epollSet, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	s := &epollSet{target: target, events: events}
	if events != 0 {
		s.ev = unix.EpollEvent{Events: events, Fd: int32(target)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, target, &s.ev); err != nil {
			unix.Close(ep)
			return nil, os.NewSyscallError("epoll_ctl", err)
		}
	}
	unix.SetNonblock(ep, true)
	s.f = os.NewFile(uintptr(ep), "epoll") // non-blocking: in Go's poller
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

// watch starts (on) or stops watching the target for output.
func (s *epollSet) watch(on bool) error {
	op, ev := uintptr(unix.EPOLL_CTL_DEL), (*unix.EpollEvent)(nil)
	if on {
		s.ev = unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(s.target)}
		op, ev = unix.EPOLL_CTL_ADD, &s.ev
	}
	var e unix.Errno
	if s.rc.Control(func(ep uintptr) {
		_, e = rawSyscall6(unix.SYS_EPOLL_CTL, ep, op, uintptr(s.target), uintptr(unsafe.Pointer(ev)), 0, 0)
	}) != nil {
		return net.ErrClosed
	}
	if e != 0 {
		return os.NewSyscallError("epoll_ctl", e)
	}
	return nil
}

// wait calls try until it reports done or an error, waiting for the
// epoll instance to have an event between calls. try runs after Go's
// poller forgot earlier events, so an event that comes after try found
// nothing to do always ends the wait: nothing is missed. Events are never
// read from the instance (try does the real work), so with level-triggered
// watches it simply stays readable; Go's poller is edge-triggered and is
// told again by every new event of the target.
func (s *epollSet) wait(try func() (bool, error)) error {
	var terr error
	err := s.rc.Read(func(uintptr) bool {
		var done bool
		done, terr = try()
		return done || terr != nil
	})
	if terr != nil {
		return terr
	}
	if err != nil {
		return net.ErrClosed // Close closed the epoll instance
	}
	return nil
}
