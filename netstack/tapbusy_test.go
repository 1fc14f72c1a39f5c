package netstack

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTapConnBusy reads frames through a tapConn over a datagram socket
// (one frame per read, as a TAP): Busy turns true after burstHint reads
// that found a frame waiting, and false after a read that had to wait.
func TestTapConnBusy(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	rc, err := newFDPoll(fds[0], "tap-test")
	if err != nil {
		t.Fatal(err)
	}
	conn := &tapConn{rc: rc, stats: &LinkStats{}, rbuf: make([]byte, 2048)}
	defer conn.Close()
	frame := make([]byte, 60)
	for i := 0; i < burstHint+1; i++ {
		if _, err := unix.Write(fds[1], frame); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= burstHint+1; i++ {
		if _, err := conn.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if got, want := conn.Busy(), i >= burstHint; got != want {
			t.Errorf("after %d reads of frames already queued: Busy() = %v, want %v", i, got, want)
		}
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		unix.Write(fds[1], frame)
	}()
	if _, err := conn.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if conn.Busy() {
		t.Error("after a read that waited for its frame: Busy() = true, want false")
	}
}
