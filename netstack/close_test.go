package netstack

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// TestCloseUnderTraffic closes a stack while a peer floods it with
// datagrams to a closed port, each of which it answers (ICMP port
// unreachable, sent on a route it looks up). gVisor's Stack.Wait holds the
// stack's lock while it waits for a link's receive loop, and a frame being
// answered needs that lock: Close must stop the receive loops first, or it
// can wait forever.
func TestCloseUnderTraffic(t *testing.T) {
	mac := DefaultMAC("h", "eth0", netip.MustParsePrefix("192.0.2.1/24"))
	peerMAC := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	src, dst := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.1")
	for i := range 20 {
		sock := filepath.Join(t.TempDir(), "s")
		c := cfg(t, "h", false, nil, "eth0=unix-listen:"+sock+",ip=192.0.2.1/24")
		c.Neighbors = []Neighbor{{Addr: src, MAC: peerMAC}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := New(ctx, c, slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		peer, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, peer) // take the answers
		stop := make(chan struct{})
		sent := make(chan int)
		go func() {
			w := frame.NewWriter(frame.QEMU, peer)
			f := ethFrame(mac, peerMAC, src, dst, 1000, 9, []byte("to a closed port"))
			n := 0
			for {
				select {
				case <-stop:
					sent <- n
					return
				default:
				}
				if w.WriteFrame(f) != nil || w.Flush() != nil {
					sent <- n
					return
				}
				n++
			}
		}()
		// Let the flood start, then close in the middle of it.
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Interfaces[0].Counters["rx_frames"] < 50 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not return within 10s while frames kept arriving", i)
		}
		close(stop)
		peer.Close()
		if n := <-sent; n < 50 {
			t.Fatalf("round %d: the peer sent only %d frames before the close", i, n)
		}
	}
}
