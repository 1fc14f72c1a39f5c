package netstack

import (
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// drainClock is the stack's clock: gVisor's standard clock that also
// counts the callbacks it was asked to run at once (delay 0) and that have
// not returned yet. gVisor hands the packets that waited for a neighbour's
// link address to the link in such a callback, after marking the neighbour
// resolved; Drain waits for them, or a client that sends and ends at once
// could end between the two and lose what it sent.
type drainClock struct {
	tcpip.Clock
	running atomic.Int64
}

func newDrainClock() *drainClock { return &drainClock{Clock: tcpip.NewStdClock()} }

// AfterFunc implements tcpip.Clock.
func (c *drainClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	if d > 0 {
		return c.Clock.AfterFunc(d, f)
	}
	t := &countedTimer{c: c}
	c.running.Add(1)
	t.Timer = c.Clock.AfterFunc(0, func() {
		defer t.done()
		f()
	})
	return t
}

// busy reports whether a callback asked to run at once has not returned.
func (c *drainClock) busy() bool { return c.running.Load() > 0 }

// countedTimer is a timer of drainClock's count: it leaves the count once,
// when its callback returns or when Stop prevents the callback.
type countedTimer struct {
	tcpip.Timer
	c    *drainClock
	left atomic.Bool
}

func (t *countedTimer) done() {
	if t.left.CompareAndSwap(false, true) {
		t.c.running.Add(-1)
	}
}

// Stop implements tcpip.Timer.
func (t *countedTimer) Stop() bool {
	stopped := t.Timer.Stop()
	if stopped {
		t.done()
	}
	return stopped
}
