package main

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nfpipe/nfpipe/internal/cpuset"
)

// A relay is the floor of a hop through any user-space process: it copies
// every message between two SOCK_SEQPACKET sockets (fds 3 and 4), both
// ways, and does nothing else. The latency section puts relays where the
// routers of a chain would be, between the same two nfpipe hosts, so that
// a router's added round trip can be read against what merely passing a
// packet through one more process costs on this machine, written three
// ways: in C (epoll), in Go waiting in Go's poller (as nfpipe's links
// do), and in Go blocking in epoll_wait on a thread of its own.

//go:embed crelay/relay.c
var cRelaySource string

// relayKinds are the relays the latency section measures: a name for the
// rows and how to start one (fds 3 and 4 are its two sockets).
type relayKind struct {
	key, name string
	argv      func(h *harness) ([]string, error)
}

var relayKinds = []relayKind{
	{"crelay", "C relay (epoll, recv, send)", (*harness).cRelay},
	{"gorelay-thread", "Go relay, blocking in epoll_wait on its own thread", func(h *harness) ([]string, error) {
		return []string{h.self, "__relay", "thread"}, nil
	}},
	{"gorelay-poll", "Go relay, waiting in Go's poller (as nfpipe's links do)", func(h *harness) ([]string, error) {
		return []string{h.self, "__relay", "poll"}, nil
	}},
}

// relayRowName names the latency rows of a chain of relays.
func relayRowName(k relayKind, hops int) string {
	return fmt.Sprintf("%s × %d between nfpipe hosts", k.name, hops)
}

var cRelayOnce struct {
	sync.Once
	path string
	err  error
}

// cRelay compiles crelay/relay.c once per run with the system's C compiler.
func (h *harness) cRelay() ([]string, error) {
	c := &cRelayOnce
	c.Do(func() {
		cc, err := exec.LookPath("cc")
		if err != nil {
			c.err = fmt.Errorf("no C compiler (cc) to build the C relay: install gcc (bench/install-deps.sh does)")
			return
		}
		src := filepath.Join(h.work, "relay.c")
		c.path = filepath.Join(h.work, "crelay")
		if err := os.WriteFile(src, []byte(cRelaySource), 0o644); err != nil {
			c.err = err
			return
		}
		if out, err := exec.Command(cc, "-O2", "-o", c.path, src).CombinedOutput(); err != nil {
			c.err = fmt.Errorf("cc relay.c: %v: %s", err, lastLines(string(out), 3))
		}
	})
	if c.err != nil {
		return nil, c.err
	}
	return []string{c.path, "3", "4"}, nil
}

// relayChainPing pings from a client host through hops relays to a server
// host, over socketpairs as the chain runner links functions (seqpacket,
// gso=on, pack=on; static neighbours, as the runner writes them), and
// returns the client's round trips in µs.
func (h *harness) relayChainPing(ctx context.Context, k relayKind, hops, count int, interval time.Duration) ([]float64, error) {
	relay, err := k.argv(h)
	if err != nil {
		return nil, err
	}
	var ends [][2]*os.File
	defer func() {
		for _, e := range ends {
			e[0].Close()
			e[1].Close()
		}
	}()
	for i := 0; i <= hops; i++ {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("socketpair", err)
		}
		ends = append(ends, [2]*os.File{os.NewFile(uintptr(fds[0]), "link"), os.NewFile(uintptr(fds[1]), "link")})
	}
	const cMAC, sMAC = "02:00:5e:00:02:02", "02:00:5e:00:02:03"
	iface := func(ip, mac string) string { return "eth0=seqpacket:3,ip=" + ip + ",gso=on,pack=on,mac=" + mac }
	server, err := h.start(ctx, "relay-server", []string{h.nfpipe, "vnf", "host", "--name", "server",
		"--if", iface("192.0.2.3/24", sMAC), "--neigh", "192.0.2.2 lladdr " + cMAC + " dev eth0", "--serve", "echo udp:7"},
		procOpts{extraFiles: []*os.File{ends[hops][1]}})
	if err != nil {
		return nil, err
	}
	defer server.kill()
	// The hosts pack on the lowest CPU they may use while a ping is all
	// they carry (--cpus auto), as the routers of the chains compared
	// with do: the relays run there too.
	if allowed, err := cpuset.Allowed(); err == nil && allowed.Count() > 1 {
		relay = append([]string{"taskset", "-c", strconv.Itoa(cpuset.List(allowed)[0])}, relay...)
	}
	for i := 1; i <= hops; i++ {
		p, err := h.start(ctx, fmt.Sprintf("relay%d", i), relay, procOpts{extraFiles: []*os.File{ends[i-1][1], ends[i][0]}})
		if err != nil {
			return nil, err
		}
		defer p.kill()
	}
	client, err := h.start(ctx, "relay-client", []string{h.nfpipe, "vnf", "host", "--name", "client",
		"--if", iface("192.0.2.2/24", cMAC), "--neigh", "192.0.2.3 lladdr " + sMAC + " dev eth0",
		"--run", fmt.Sprintf("ping 192.0.2.3 count=%d interval=%v timeout=1s", count, interval)},
		procOpts{extraFiles: []*os.File{ends[0][0]}})
	if err != nil {
		return nil, err
	}
	code, err := client.wait(time.Duration(count)*interval + 30*time.Second)
	out := client.stdout.String()
	h.saveRaw(h.name(fmt.Sprintf("latency-%s-%d-", k.key, hops))+".txt", out+client.stderr.String())
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("client: exit status %d: %s", code, lastLines(out+client.stderr.String(), 3))
	}
	return pingSamples(out), nil
}

// relayHelper is the Go relay: "poll" waits in Go's poller with raw
// reads and writes (nfpipe's links' way, GOMAXPROCS=1 as a chain's
// functions run); "thread" blocks in epoll_wait on a locked thread,
// holding the only P, as the C relay blocks (nothing else runs in it).
func relayHelper(args []string) error {
	if len(args) != 1 || args[0] != "poll" && args[0] != "thread" {
		return fmt.Errorf("usage: __relay poll|thread (sockets on fds 3 and 4)")
	}
	runtime.GOMAXPROCS(1)
	if args[0] == "thread" {
		return relayThread(3, 4)
	}
	var rcs [2]syscall.RawConn
	for i, fd := range []uintptr{3, 4} {
		c, err := net.FileConn(os.NewFile(fd, "link"))
		if err != nil {
			return err
		}
		if rcs[i], err = c.(*net.UnixConn).SyscallConn(); err != nil {
			return err
		}
	}
	done := make(chan error, 2)
	pump := func(from, to syscall.RawConn) {
		buf := make([]byte, 1<<17)
		for {
			n, err := rawIO(from, unix.SYS_READ, buf)
			if err != nil || n == 0 {
				done <- err
				return
			}
			if _, err := rawIO(to, unix.SYS_WRITE, buf[:n]); err != nil {
				done <- err
				return
			}
		}
	}
	go pump(rcs[0], rcs[1])
	go pump(rcs[1], rcs[0])
	return <-done
}

// relayThread is the "thread" relay: raw system calls only, so the
// runtime never hears of the wait (a Syscall would wake its system
// monitor on every call after a pause). The monitor's preemption signal
// (every 10ms of one goroutine running) ends epoll_wait with EINTR.
func relayThread(a, b int) error {
	runtime.LockOSThread()
	for _, fd := range []int{a, b} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return err
		}
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	for _, fd := range []int{a, b} {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<17)
	var evs [2]unix.EpollEvent
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), 2, ^uintptr(0), 0, 0)
		if e == unix.EINTR {
			runtime.Gosched()
			continue
		}
		if e != 0 {
			return e
		}
		for _, ev := range evs[:n] {
			from, to := int(ev.Fd), a
			if from == a {
				to = b
			}
			for {
				r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(from), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), unix.MSG_DONTWAIT, 0, 0)
				if e == unix.EAGAIN {
					break // wait again
				}
				if e != 0 {
					return e
				}
				if r == 0 {
					return nil // the peer closed
				}
				// Non-blocking: a full peer would lose the message. The
				// latency rows have one in flight at a time, and the
				// client counts every missing reply.
				unix.RawSyscall6(unix.SYS_SENDTO, uintptr(to), uintptr(unsafe.Pointer(&buf[0])), r, 0, 0, 0)
			}
		}
	}
}
