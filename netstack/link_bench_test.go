package netstack

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// countingWriter counts the write calls that reach the file.
type countingWriter struct {
	w      io.Writer
	writes atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.w.Write(b)
}

// BenchmarkLinkWrite measures the transmit path (queue, writer goroutine,
// framing, flush) of 1514-byte frames into a pipe and into a regular file,
// under both flush policies, and reports write syscalls per frame. It is
// the measurement behind the policy: flush-when-idle on pipes, lazy on files.
func BenchmarkLinkWrite(b *testing.B) {
	for _, target := range []string{"pipe", "file"} {
		for _, policy := range []flushPolicy{flushWhenIdle, flushLazily} {
			name := target + "/idle-flush"
			if policy == flushLazily {
				name = target + "/lazy-flush"
			}
			b.Run(name, func(b *testing.B) {
				var f *os.File
				if target == "pipe" {
					r, w, err := os.Pipe()
					if err != nil {
						b.Fatal(err)
					}
					go io.Copy(io.Discard, r)
					defer r.Close()
					f = w
				} else {
					var err error
					f, err = os.Create(filepath.Join(b.TempDir(), "out"))
					if err != nil {
						b.Fatal(err)
					}
				}
				cw := &countingWriter{w: f}
				e := newLinkEndpoint("bench", "\x02\x00\x00\x00\x00\x01", 1500, slog.New(slog.DiscardHandler), &LinkStats{})
				e.setSink(frame.NewWriter(frame.QEMU, cw), policy)
				e.txClosers = append(e.txClosers, f)
				e.start()
				payload := make([]byte, 1514)
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(payload)})
					var l stack.PacketBufferList
					l.PushBack(pkt)
					e.WritePackets(l)
					pkt.DecRef()
				}
				e.drain(time.Now().Add(10 * time.Second))
				b.StopTimer()
				b.ReportMetric(float64(cw.writes.Load())/float64(b.N), "writes/frame")
				e.Close()
			})
		}
	}
}

// BenchmarkLinkLatency measures how long one frame takes from WritePackets
// to a reader on the other end of a pipe, with nothing else queued: the
// case a lazy flush would delay by up to lazyFlushDelay.
func BenchmarkLinkLatency(b *testing.B) {
	for _, policy := range []flushPolicy{flushWhenIdle, flushLazily} {
		name := "pipe/idle-flush"
		if policy == flushLazily {
			name = "pipe/lazy-flush"
		}
		b.Run(name, func(b *testing.B) {
			if policy == flushLazily && b.N > 5 {
				b.N = 5 // each frame waits for the lazy timer
			}
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			got := make(chan struct{})
			go func() {
				fr := frame.NewReader(frame.QEMU, r)
				for {
					if _, err := fr.ReadFrame(); err != nil {
						return
					}
					got <- struct{}{}
				}
			}()
			e := newLinkEndpoint("bench", "\x02\x00\x00\x00\x00\x01", 1500, slog.New(slog.DiscardHandler), &LinkStats{})
			e.setSink(frame.NewWriter(frame.QEMU, w), policy)
			e.txClosers = append(e.txClosers, w)
			e.start()
			payload := make([]byte, 100)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(payload)})
				var l stack.PacketBufferList
				l.PushBack(pkt)
				e.WritePackets(l)
				pkt.DecRef()
				<-got
			}
			b.StopTimer()
			e.Close()
		})
	}
}
