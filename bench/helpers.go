package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// runHelper runs one of the helper roles (this binary re-executed with a
// hidden first argument) and returns its exit status.
func runHelper(role string, args []string) int {
	var err error
	switch role {
	case "__copysrc":
		err = copySource(args)
	case "__copysink":
		err = copySink(args)
	case "__tapcopy":
		err = tapCopy(args)
	case "__natserver":
		err = natServer(args)
	case "__natclient":
		err = natClient(args)
	case "__rawsrc":
		err = rawSource(args)
	case "__rawsink":
		err = rawSink(args)
	case "__pingpong":
		err = pingPong(args)
	case "__relay":
		err = relayHelper(args)
	case "__pingecho":
		err = pingEcho()
	case "__idle":
		// The smallest Go process: what any function costs before it
		// does anything (RSS, exec-to-first-line).
		fmt.Println("ready")
		time.Sleep(time.Hour)
	default:
		err = fmt.Errorf("unknown helper %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		return 1
	}
	return 0
}

// copySource writes frames of SIZE bytes to fd 3 for SECONDS, one write
// per frame, then closes it: the sending half of the bare two-process
// copy, the most a link of that kind can carry between two processes
// that handle frames one at a time. Stream links carry qemu framing (a
// 4-byte length first), as nfpipe's do.
func copySource(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: __copysrc seqpacket|stream|pipe SIZE SECONDS")
	}
	size, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	secs, err := strconv.ParseFloat(args[2], 64)
	if err != nil {
		return err
	}
	fd := 3
	buf := make([]byte, size)
	if args[0] != "seqpacket" {
		buf = make([]byte, 4+size)
		buf[0], buf[1], buf[2], buf[3] = byte(size>>24), byte(size>>16), byte(size>>8), byte(size)
	}
	end := time.Now().Add(time.Duration(secs * float64(time.Second)))
	for i := 0; ; i++ {
		// Checking the clock every 64 frames keeps it out of the cost.
		if i%64 == 0 && time.Now().After(end) {
			break
		}
		for off := 0; off < len(buf); {
			n, err := unix.Write(fd, buf[off:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			off += n
		}
	}
	return unix.Close(fd)
}

// copySink reads fd 3 until the end and prints the bytes and the seconds
// from the first read to the end: the receiving half of the bare copy.
func copySink(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: __copysink seqpacket|stream|pipe")
	}
	fd := 3
	buf := make([]byte, 1<<20)
	var total int64
	var first time.Time
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break
		}
		if total == 0 {
			first = time.Now()
		}
		total += int64(n)
	}
	fmt.Printf("%d %.6f\n", total, time.Since(first).Seconds())
	return nil
}
