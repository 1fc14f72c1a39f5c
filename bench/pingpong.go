package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// pingPongRowName is the latency section's floor: what two crossings
// between processes cost on this machine at the ping's pace.
const pingPongRowName = "two Go processes, ping-pong over a socketpair (wake-up floor of two crossings)"

// pingPong measures the round trip of a 100-byte message between this
// process and a child echoing it back over a SOCK_SEQPACKET socketpair,
// both waiting in Go's network poller as nfpipe's links do, COUNT times
// INTERVAL apart. A hop through an nfpipe router adds two such crossings
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
	buf := make([]byte, 100)
	for i := 0; i < count; i++ {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			return err
		}
		if _, err := c.Read(buf); err != nil {
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
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return nil
		}
	}
}
