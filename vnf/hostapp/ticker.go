package hostapp

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// preciseTicker ticks every period, on time to a few microseconds: a
// timerfd that Go's poller waits on. A time.Ticker keeps the period on
// average but not each tick: Go's poller sleeps in whole milliseconds, so
// a tick due in under a millisecond comes up to a millisecond late, and
// while it is overdue the runtime's monitor thread wakes every 20 µs or so
// to look at it. At a ping every 2 ms that was half of the pinging
// function's CPU time, spent on the CPU an idle chain shares (see
// cpuset.Packer), in the middle of each round trip.
type preciseTicker struct {
	// C receives a value for each period that passed (several passing
	// before the reader looks count as one, as with time.Ticker).
	C    <-chan struct{}
	f    *os.File
	done chan struct{}
}

// newPreciseTicker starts a ticker; the first tick comes one period from
// now. With a period of 0 or less it ticks at once, always.
func newPreciseTicker(period time.Duration) (*preciseTicker, error) {
	if period <= 0 {
		c := make(chan struct{})
		close(c)
		return &preciseTicker{C: c, done: c}, nil
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	ts := unix.NsecToTimespec(period.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("timerfd_settime %v: %w", period, err)
	}
	// Non-blocking, so os.NewFile puts it in Go's poller: a Read parks the
	// goroutine instead of holding a thread.
	f := os.NewFile(uintptr(fd), "timerfd")
	c := make(chan struct{}, 1)
	t := &preciseTicker{C: c, f: f, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		var buf [8]byte // the number of expirations since the last read
		for {
			if _, err := f.Read(buf[:]); err != nil {
				return // closed by Stop
			}
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	return t, nil
}

// Stop stops the ticker and waits for its goroutine to end. It may be
// called more than once.
func (t *preciseTicker) Stop() {
	if t.f != nil {
		t.f.Close()
	}
	<-t.done
}
