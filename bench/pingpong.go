package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pingPongRowName is the latency section's floor: what two crossings
// between processes cost on this machine at the ping's pace.
const pingPongRowName = "two Go processes, ping-pong over a socketpair (wake-up floor of two crossings)"

// pingPong measures the round trip of a 100-byte message between this
// process and a child echoing it back over a SOCK_SEQPACKET socketpair,
// both waiting in Go's network poller and reading and writing with raw
// system calls as nfpipe's links do, COUNT times INTERVAL apart. A hop through an nfpipe router adds two such crossings
// (one each way), so this is the floor of a hop's added round trip: the
// cost of waking a process that sleeps between packets. It prints one line
// per sample in ping's format.
func pingPong(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: __pingpong COUNT INTERVAL")
	}
	count, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	interval, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := os.NewFile(uintptr(fds[1]), "echo")
	cmd := exec.Command(self, "__pingecho")
	cmd.ExtraFiles = []*os.File{child}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	child.Close()
	defer cmd.Wait()
	f := os.NewFile(uintptr(fds[0]), "ping")
	c, err := net.FileConn(f) // a duplicate: the child sees EOF only once both are closed
	f.Close()
	if err != nil {
		return err
	}
	defer c.Close()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 100)
	for i := 0; i < count; i++ {
		t0 := time.Now()
		if _, err := rawIO(rc, unix.SYS_WRITE, buf); err != nil {
			return err
		}
		if _, err := rawIO(rc, unix.SYS_READ, buf); err != nil {
			return err
		}
		fmt.Printf("100 bytes: icmp_seq=%d ttl=64 time=%.3f ms\n", i+1, float64(time.Since(t0).Nanoseconds())/1e6)
		time.Sleep(interval)
	}
	return nil
}

// pingEcho is pingPong's child: it sends back every message on fd 3 until
// the socket closes.
func pingEcho() error {
	c, err := net.FileConn(os.NewFile(3, "echo"))
	if err != nil {
		return err
	}
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for {
		n, err := rawIO(rc, unix.SYS_READ, buf)
		if err != nil || n == 0 {
			return nil
		}
		if _, err := rawIO(rc, unix.SYS_WRITE, buf[:n]); err != nil {
			return nil
		}
	}
}

// rawIO makes one read or write (trap) of b on rc's non-blocking
// descriptor, waiting in Go's poller while it would block. Like nfpipe's
// links it uses RawSyscall: Syscall would wake the runtime's system monitor
// on every call made after a pause (see netstack/rawio.go).
func rawIO(rc syscall.RawConn, trap uintptr, b []byte) (int, error) {
	var n uintptr
	var e unix.Errno
	call := func(fd uintptr) bool {
		n, _, e = unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		return e != unix.EAGAIN
	}
	wait := rc.Read
	if trap == unix.SYS_WRITE {
		wait = rc.Write
	}
	if err := wait(call); err != nil {
		return 0, err
	}
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
