package cpuset

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Packer keeps the process on one CPU, its home, while it has little to
// do, and lets it run on every CPU it may use while it is busy or the home
// CPU is. Every function packs on the same home (the lowest
// CPU it may use), so a packet crossing a lightly loaded chain wakes each
// process on the CPU the previous one runs on: a few µs, where a wake-up
// on another CPU, halted for want of work, costs tens of µs on a virtual
// machine. Under load the kernel spreads the processes as it would
// without a Packer, and they share out the CPUs.
//
// The zero value is not ready: use NewPacker.
type Packer struct {
	home int
	all  Set
	// busy is the share of a CPU (the process's CPU time over a window)
	// and homeBusy the share of the home CPU's time, over loadSpan, spent
	// running anything, at or above which a packed process spreads; idle
	// is the process's share under which a spread process packs again,
	// once quiet for hold.
	busy, homeBusy, idle float64
	// window is the sampling period while anything happens; an idle packed
	// process samples every slowWindow, so that idle functions cost almost
	// nothing.
	window, slowWindow time.Duration
	// minHold and maxHold bound the quiet time before packing again.
	minHold, maxHold time.Duration

	// poke wakes Run at once when the process shows it is busy (Burst)
	// while packed; armed says whether it is packed, for Burst to read
	// without a lock.
	poke  chan struct{}
	armed atomic.Bool

	mu      sync.Mutex
	packed  bool
	spreads int
	why     string // why it last spread
}

// Burst tells the Packer that work is queueing up (frames arrive faster
// than they are handled): a packed process spreads at once rather than at
// its next sample. It is cheap enough to call for every frame.
func (p *Packer) Burst() {
	if p.armed.Load() {
		select {
		case p.poke <- struct{}{}:
		default:
		}
	}
}

// Default thresholds, chosen on a 2-vCPU VM: a bulk TCP transfer drives
// every function in its path past busy within a window (and its batches
// spread the receivers at once, see Burst); a ping every millisecond
// stays far under idle; a home CPU busy three quarters of the time makes
// whoever waits for it wait long.
const (
	DefaultBusy     = 0.40
	DefaultHomeBusy = 0.75
	DefaultIdle     = 0.10
)

// DefaultMinHold and DefaultMaxHold bound how long a spread process stays
// quiet before it packs again. The hold doubles each time a process has to
// spread again soon after packing (its load would not fit on the home
// CPU), so that a load just at the edge does not make it flap.
const (
	DefaultMinHold = time.Second
	DefaultMaxHold = 30 * time.Second
)

// NewPacker returns a Packer for this process, homed on the lowest CPU it
// may use, or nil when it may use only one CPU (nothing to decide).
func NewPacker() (*Packer, error) {
	all, err := Allowed()
	if err != nil {
		return nil, err
	}
	cpus := List(all)
	if len(cpus) < 2 {
		return nil, nil
	}
	return &Packer{home: cpus[0], all: all, busy: DefaultBusy, homeBusy: DefaultHomeBusy, idle: DefaultIdle,
		window: 50 * time.Millisecond, slowWindow: 250 * time.Millisecond,
		minHold: DefaultMinHold, maxHold: DefaultMaxHold, poke: make(chan struct{}, 1),
		why: "not quiet since it started"}, nil
}

// State says whether the process is packed on its home CPU, which that
// is, and how many times it has spread since it started.
func (p *Packer) State() (packed bool, home, spreads int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.packed, p.home, p.spreads
}

// String describes the state for reports: "packed on CPU 0, spread 2
// times" or "spread over CPUs 0-1 (busy), 1 time".
func (p *Packer) String() string {
	packed, home, spreads := p.State()
	times := "times"
	if spreads == 1 {
		times = "time"
	}
	if packed {
		return fmt.Sprintf("packed on CPU %d while idle; spread %d %s under load", home, spreads, times)
	}
	p.mu.Lock()
	why := p.why
	p.mu.Unlock()
	return fmt.Sprintf("spread over CPUs %s (%s); spread %d %s under load", Format(p.all), why, spreads, times)
}

// Run packs the process and then adjusts it every window until ctx ends;
// it leaves the process spread. It returns the first error pinning meets
// (then the process is left wherever it was).
//
// It packs once the process has been quiet for a window, not at once: a
// function that starts under load (a transfer waiting for it) never packs,
// and the tail of a chain's start-up is not squeezed onto one CPU.
func (p *Packer) Run(ctx context.Context) error {
	var home Set
	home.Set(p.home)
	defer func() {
		if packed, _, _ := p.State(); packed {
			pinThreads(p.all) //nolint:errcheck // best effort on the way out
		}
	}()
	s := newSampler(p.home)
	defer s.close()
	s.sample()
	hold := p.window // the first packing waits one quiet window
	lastHome := 0.0  // the home CPU's latest busy share (see sample)
	var packedAt time.Time
	var quiet time.Duration
	next := p.window
	for {
		t := time.NewTimer(next)
		poked := false
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-p.poke:
			t.Stop()
			poked = true
		}
		cpu, elapsed, homeBusy := s.sample()
		if elapsed <= 0 {
			continue
		}
		cpuShare := cpu.Seconds() / elapsed.Seconds()
		if elapsed < p.window/4 { // too short a sample (a Burst just after one) to judge by
			cpuShare = 0
		}
		if homeBusy >= 0 {
			lastHome = homeBusy
		}
		packed, _, _ := p.State()
		next = p.window
		switch {
		case packed && (poked || cpuShare >= p.busy || homeBusy >= p.homeBusy):
			if err := pinThreads(p.all); err != nil {
				return err
			}
			why := "frames queueing up"
			switch {
			case poked:
			case cpuShare >= p.busy:
				why = fmt.Sprintf("busy: %.0f%% of a CPU", 100*cpuShare)
			case homeBusy >= p.homeBusy:
				why = fmt.Sprintf("CPU %d busy %.0f%% of the time", p.home, 100*homeBusy)
			}
			p.setPacked(false, why)
			if time.Since(packedAt) < 2*p.minHold {
				hold = min(max(2*hold, p.minHold), p.maxHold)
			} else {
				hold = p.minHold
			}
			quiet = 0
		case packed:
			if cpuShare < 0.01 {
				next = p.slowWindow
			}
		case cpuShare < p.idle && lastHome < p.homeBusy/2:
			// Quiet, and the home CPU has room: a light function in a
			// busy chain (a router passing 64 KiB segments uses little
			// CPU) stays out while the others keep the home CPU busy.
			quiet += elapsed
			if quiet >= hold {
				if err := pinThreads(home); err != nil {
					pinThreads(p.all) //nolint:errcheck // undo what the first threads took
					return err
				}
				p.setPacked(true, "")
				packedAt = time.Now()
			}
		default:
			quiet = 0
		}
	}
}

// setPacked records a move: packed on the home CPU, or spread for why.
func (p *Packer) setPacked(packed bool, why string) {
	p.armed.Store(packed)
	p.mu.Lock()
	p.packed = packed
	if !packed {
		p.spreads++
		p.why = why
	}
	p.mu.Unlock()
}

// sampler reads the process's CPU time, and the home CPU's idle and total
// time from /proc/stat (in USER_HZ ticks: only their ratio is used).
type sampler struct {
	home   string // "cpuN "
	at     time.Time
	cpu    time.Duration
	buf    []byte
	f      *os.File
	loadAt time.Time // start of the current home-load span
	idle0  uint64    // the home CPU's idle and total ticks at loadAt
	total0 uint64
}

// loadSpan is how long a span of /proc/stat's 10 ms ticks the home CPU's
// load is judged over: long enough for the ticks to mean something.
const loadSpan = 200 * time.Millisecond

func newSampler(home int) *sampler {
	s := &sampler{home: "cpu" + strconv.Itoa(home) + " ", buf: make([]byte, 64<<10)}
	s.f, _ = os.Open("/proc/stat")
	return s
}

// sample returns the process's CPU time since the last call, the wall
// time between them, and, once a span of loadSpan has passed, the home
// CPU's busy share over it (else -1).
func (s *sampler) sample() (cpu, elapsed time.Duration, homeBusy float64) {
	now := time.Now()
	var ts unix.Timespec
	var c time.Duration
	if unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts) == nil {
		c = time.Duration(ts.Nano())
	}
	if !s.at.IsZero() {
		cpu, elapsed = c-s.cpu, now.Sub(s.at)
	}
	s.at, s.cpu = now, c
	homeBusy = -1
	idle, total, ok := s.homeTicks()
	switch {
	case !ok:
	case s.loadAt.IsZero():
		s.loadAt, s.idle0, s.total0 = now, idle, total
	case now.Sub(s.loadAt) >= loadSpan && total > s.total0:
		homeBusy = 1 - float64(idle-s.idle0)/float64(total-s.total0)
		s.loadAt, s.idle0, s.total0 = now, idle, total
	}
	return cpu, elapsed, homeBusy
}

// homeTicks reads the home CPU's line of /proc/stat: idle (idle + iowait)
// and total ticks.
func (s *sampler) homeTicks() (idle, total uint64, ok bool) {
	if s.f == nil {
		return 0, 0, false
	}
	n, _ := s.f.ReadAt(s.buf, 0)
	text := string(s.buf[:n])
	i := strings.Index(text, "\n"+s.home)
	if i < 0 {
		return 0, 0, false
	}
	line := text[i+1:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	for k, f := range strings.Fields(line)[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if k >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		total += v
		if k == 3 || k == 4 {
			idle += v
		}
	}
	return idle, total, true
}

func (s *sampler) close() {
	if s.f != nil {
		s.f.Close()
	}
}
