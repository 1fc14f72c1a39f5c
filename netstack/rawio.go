package netstack

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls on the frame path and Go's system monitor.
//
// Every descriptor a link moves frames through (packet sockets, pipes,
// FIFOs, TAP devices) is non-blocking and waited on by Go's poller, so a
// read or write of frames never sleeps in the kernel. Those calls are made
// with RawSyscall, not Syscall: Syscall's entersyscall wakes the runtime's
// system monitor thread whenever the process was idle, and the monitor then
// polls every 20 µs for a millisecond. A function woken by a lone packet
// paid that extra thread on every packet: on this 2-vCPU machine a Go
// ping-pong between two processes over a socketpair took 150 µs p50 with
// Syscall and 50 µs with RawSyscall (C: 25), and one router hop added
// ~140 µs to a ping. A raw call must not block, which the descriptors'
// O_NONBLOCK (or MSG_DONTWAIT) guarantees.

// rawSyscall6 makes a system call that cannot block, retrying EINTR.
func rawSyscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, unix.Errno) {
	for {
		r, _, e := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		if e != unix.EINTR {
			return r, e
		}
	}
}

// nbIO reads and writes a non-blocking descriptor with raw system calls,
// waiting in Go's poller (through rc) when it has nothing to read or no room
// to write. Read returns io.EOF at end of file, and both net.ErrClosed
// once the file is closed (the only way rc itself fails).
type nbIO struct {
	rc syscall.RawConn
}

func (n nbIO) Read(b []byte) (int, error) {
	r, _, err := n.readWaited(b)
	return r, err
}

// readWaited is Read, and says whether the read had to wait for data
// (found none at first).
func (n nbIO) readWaited(b []byte) (int, bool, error) {
	if len(b) == 0 {
		return 0, false, nil
	}
	var r uintptr
	var e unix.Errno
	waited := false
	if err := n.rc.Read(func(fd uintptr) bool {
		r, e = rawSyscall6(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if e == unix.EAGAIN {
			waited = true
			return false
		}
		return true
	}); err != nil {
		return 0, waited, net.ErrClosed
	}
	if e != 0 {
		return 0, waited, os.NewSyscallError("read", e)
	}
	if r == 0 {
		return 0, waited, io.EOF
	}
	return int(r), waited, nil
}

func (n nbIO) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		var r uintptr
		var e unix.Errno
		if err := n.rc.Write(func(fd uintptr) bool {
			r, e = rawSyscall6(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done), 0, 0, 0)
			return e != unix.EAGAIN
		}); err != nil {
			return done, net.ErrClosed
		}
		if e != 0 {
			return done, os.NewSyscallError("write", e)
		}
		done += int(r)
	}
	return done, nil
}

// tryOnce makes one non-blocking write on rc and reports whether it went
// out: EAGAIN is "not now", not an error.
func tryOnce(rc syscall.RawConn, op string, write func(fd uintptr) unix.Errno) (bool, error) {
	var e unix.Errno
	if err := rc.Write(func(fd uintptr) bool {
		e = write(fd)
		return true // never wait here
	}); err != nil {
		return false, net.ErrClosed
	}
	switch e {
	case 0:
		return true, nil
	case unix.EAGAIN:
		return false, nil
	}
	return false, os.NewSyscallError(op, e)
}

// rawReader returns r reading with raw calls when r is a non-blocking
// descriptor in Go's poller (a pipe, FIFO or socket: see pollable), and r
// itself otherwise (a terminal or regular file, whose reads may block).
func rawReader(r io.Reader) io.Reader {
	if n, ok := nbFor(r); ok {
		return n
	}
	return r
}

// rawWriter is rawReader for a writer.
func rawWriter(w io.Writer) io.Writer {
	if n, ok := nbFor(w); ok {
		return n
	}
	return w
}

func nbFor(x any) (nbIO, bool) {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return nbIO{}, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nbIO{}, false
	}
	nonblock := false
	rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		nonblock = err == nil && fl&unix.O_NONBLOCK != 0
	})
	return nbIO{rc}, nonblock
}
