package main

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openTAP creates (or attaches to) the TAP device name, without packet
// information headers: one read is one Ethernet frame. blocking leaves
// the descriptor blocking, for raw read/write loops on locked threads;
// otherwise it is non-blocking, for Go's poller (os.File).
func openTAP(name string, blocking bool) (int, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if !blocking {
		flags |= unix.O_NONBLOCK
	}
	fd, err := unix.Open("/dev/net/tun", flags, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var ifr [unix.IFNAMSIZ + 64]byte
	copy(ifr[:unix.IFNAMSIZ-1], name)
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	return fd, nil
}

// tapCopy is the floor of any user-space hop: it creates two TAP devices
// and copies every frame from one to the other, both ways, doing nothing
// else. Mode "go" reads and writes through os.File (Go's poller, the path
// ordinary Go code takes); mode "raw" uses blocking read/write syscalls on
// locked OS threads. It prints "ready" once both devices exist and runs
// until killed.
func tapCopy(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: __tapcopy go|raw TAP1 TAP2")
	}
	raw := args[0] == "raw"
	if !raw && args[0] != "go" {
		return fmt.Errorf("mode %q: want go or raw", args[0])
	}
	a, err := openTAP(args[1], raw)
	if err != nil {
		return err
	}
	b, err := openTAP(args[2], raw)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	if raw {
		pump := func(from, to int) {
			runtime.LockOSThread()
			buf := make([]byte, 65536+64)
			for {
				n, err := unix.Read(from, buf)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					errc <- fmt.Errorf("read: %w", err)
					return
				}
				// A write fails only while the far device is down (EIO),
				// before the harness has configured it: the frame is
				// dropped, as a switch would.
				unix.Write(to, buf[:n])
			}
		}
		go pump(a, b)
		go pump(b, a)
	} else {
		fa, fb := os.NewFile(uintptr(a), args[1]), os.NewFile(uintptr(b), args[2])
		pump := func(from, to *os.File) {
			buf := make([]byte, 65536+64)
			for {
				n, err := from.Read(buf)
				if err != nil {
					errc <- fmt.Errorf("read: %w", err)
					return
				}
				to.Write(buf[:n]) // see the raw pump

			}
		}
		go pump(fa, fb)
		go pump(fb, fa)
		defer runtime.KeepAlive(fa)
		defer runtime.KeepAlive(fb)
	}
	fmt.Println("ready")
	return <-errc
}
