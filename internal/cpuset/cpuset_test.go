package cpuset

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "0", want: "0"},
		{in: "0-3", want: "0-3"},
		{in: "3,1,0-1", want: "0-1,3"},
		{in: " 2 , 4-5 ", want: "2,4-5"},
		{in: "", err: "empty CPU list: want numbers or ranges such as 0 or 0-3,6"},
		{in: "x", err: `CPU list "x": "x": not a CPU number`},
		{in: "1,", err: `CPU list "1,": "": not a CPU number`},
		{in: "3-1", err: `CPU list "3-1": range "3-1" runs backwards`},
		{in: "-1", err: `CPU list "-1": "-1": not a CPU number`},
		{in: "5000", err: `CPU list "5000": "5000": CPU 5000 is beyond the 1024 this program can address`},
	} {
		set, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Parse(%q): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := Format(set); got != tc.want {
			t.Errorf("Format(Parse(%q)) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// threadCPUs returns each thread's allowed CPU list, from /proc.
func threadCPUs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				out[e.Name()] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// needCPUs skips on a machine (or under an affinity mask) with fewer than
// two CPUs: there is nowhere to pin to or spread over.
func needCPUs(t *testing.T) Set {
	t.Helper()
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skipf("this process may use only CPUs %s: pinning needs two or more", Format(all))
	}
	return all
}

func TestPinEveryThread(t *testing.T) {
	all := needCPUs(t)
	defer pinThreads(all)
	last := List(all)[len(List(all))-1]
	var one Set
	one.Set(last)
	if err := Pin(one); err != nil {
		t.Fatal(err)
	}
	for tid, cpus := range threadCPUs(t) {
		if cpus != Format(one) {
			t.Errorf("thread %s may run on %s, want %s", tid, cpus, Format(one))
		}
	}
	if err := Pin(all); err == nil {
		t.Errorf("Pin(%s) from within CPU %d succeeded: Pin may only narrow the mask", Format(all), last)
	}
	if err := pinThreads(all); err != nil {
		t.Fatal(err)
	}
	for tid, cpus := range threadCPUs(t) {
		if cpus != Format(all) {
			t.Errorf("after spreading, thread %s may run on %s, want %s", tid, cpus, Format(all))
		}
	}
}

func TestPinRefusesCPUsOutsideTheMask(t *testing.T) {
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	var beyond Set
	beyond.Set(maxCPU)
	err = Pin(beyond)
	want := "CPU 1023 is not available to this process, which may use " + Format(all)
	if err == nil || err.Error() != want {
		t.Fatalf("Pin(CPU 1023): %v, want %q", err, want)
	}
	for tid, cpus := range threadCPUs(t) {
		if cpus != Format(all) {
			t.Errorf("a refused Pin changed thread %s to %s", tid, cpus)
		}
	}
}

// runPacker runs a Packer for this process, sampling every 20 ms, with
// the given minimum hold; stop ends it and reports its error.
func runPacker(t *testing.T, hold time.Duration, ignoreHome bool) (p *Packer, stop func()) {
	t.Helper()
	p, err := NewPacker()
	if err != nil || p == nil {
		t.Fatalf("NewPacker: %v, %v", p, err)
	}
	p.window, p.slowWindow, p.minHold = 20*time.Millisecond, 20*time.Millisecond, hold
	if ignoreHome {
		// Other test binaries run at the same time and load the home
		// CPU, which would keep the Packer from packing again.
		p.homeBusy = 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return p, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestPackerPacksAndSpreads runs the Packer in this process: packed while
// idle, spread while a goroutine burns a CPU, packed again once quiet. It
// ignores how busy the home CPU is (TestPackerLeavesABusyHome tests that).
func TestPackerPacksAndSpreads(t *testing.T) {
	all := needCPUs(t)
	p, stop := runPacker(t, 200*time.Millisecond, true)
	defer func() {
		stop()
		// Run leaves the process spread.
		for tid, cpus := range threadCPUs(t) {
			if cpus != Format(all) {
				t.Errorf("after Run, thread %s may run on %s, want %s", tid, cpus, Format(all))
			}
		}
	}()
	home := Format(func() Set { var s Set; s.Set(List(all)[0]); return s }())
	waitState := func(what string, packed bool, spreads int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			gotPacked, _, gotSpreads := p.State()
			if gotPacked == packed && gotSpreads == spreads {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: packed=%v spreads=%d, want packed=%v spreads=%d (%s)", what, gotPacked, gotSpreads, packed, spreads, p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitState("idle at start", true, 0)
	for tid, cpus := range threadCPUs(t) {
		if cpus != home {
			t.Errorf("packed, thread %s may run on %s, want %s", tid, cpus, home)
		}
	}
	var quit atomic.Bool
	burnt := make(chan struct{})
	go func() {
		defer close(burnt)
		for !quit.Load() {
		}
	}()
	waitState("burning a CPU", false, 1)
	if s := p.String(); !strings.HasPrefix(s, "spread over CPUs "+Format(all)+" (busy: ") {
		t.Errorf("String() = %q", s)
	}
	quit.Store(true)
	<-burnt
	waitState("quiet again", true, 1)
	if s := p.String(); s != "packed on CPU "+home+" while idle; spread 1 time under load" {
		t.Errorf("String() = %q", s)
	}
	// Frames queueing up spread it at once, whatever the CPU time says.
	p.Burst()
	waitState("told of a burst", false, 2)
	if s, want := p.String(), "spread over CPUs "+Format(all)+" (frames queueing up); spread 2 times under load"; s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
}

// TestPackerLeavesABusyHome runs a busy loop in another process on the
// home CPU: the idle Packer must see that CPU busy and spread.
func TestPackerLeavesABusyHome(t *testing.T) {
	all := needCPUs(t)
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset (util-linux) not installed: no way to load the home CPU from outside")
	}
	home := List(all)[0]
	hog := exec.Command(taskset, "-c", strconv.Itoa(home), "sh", "-c", "while :; do :; done")
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hog.Process.Kill(); hog.Wait() }()

	p, stop := runPacker(t, DefaultMinHold, false)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if packed, _, spreads := p.State(); !packed && spreads > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with CPU %d busy in another process: %s", home, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := "spread over CPUs " + Format(all) + " (CPU " + strconv.Itoa(home) + " busy "
	if s := p.String(); !strings.HasPrefix(s, want) {
		t.Errorf("String() = %q, want it to start %q", s, want)
	}
}
