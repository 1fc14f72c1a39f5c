// Package cpuset parses CPU lists ("0-3,6", as taskset -c and cgroups'
// cpuset.cpus write them) and pins the calling process, every thread of
// it, to a set of CPUs.
//
// Pinning is how the chain runner keeps a packet's path through several
// functions on one CPU: on a machine whose idle CPUs halt (most virtual
// machines), a process woken on another, halted CPU costs tens of µs per
// wake-up, a process woken on the waker's own CPU a few.
package cpuset

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Set is a set of CPUs, by number.
type Set = unix.CPUSet

// Parse reads a CPU list: numbers and ranges separated by commas, such as
// "0", "0-3" or "0,2,4-5".
func Parse(s string) (Set, error) {
	var set Set
	if strings.TrimSpace(s) == "" {
		return set, fmt.Errorf("empty CPU list: want numbers or ranges such as 0 or 0-3,6")
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpuNum(lo)
		if err != nil {
			return set, fmt.Errorf("CPU list %q: %q: %v", s, part, err)
		}
		b := a
		if isRange {
			if b, err = cpuNum(hi); err != nil {
				return set, fmt.Errorf("CPU list %q: %q: %v", s, part, err)
			}
			if b < a {
				return set, fmt.Errorf("CPU list %q: range %q runs backwards", s, part)
			}
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// maxCPU bounds a CPU number to what unix.CPUSet holds.
const maxCPU = len(Set{})*64 - 1

func cpuNum(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a CPU number")
	}
	if n > maxCPU {
		return 0, fmt.Errorf("CPU %d is beyond the %d this program can address", n, maxCPU+1)
	}
	return n, nil
}

// Format writes set as a CPU list, ranges collapsed: "0-2,5".
func Format(set Set) string {
	var parts []string
	for c := 0; c <= maxCPU; c++ {
		if !set.IsSet(c) {
			continue
		}
		end := c
		for end+1 <= maxCPU && set.IsSet(end+1) {
			end++
		}
		if end == c {
			parts = append(parts, strconv.Itoa(c))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", c, end))
		}
		c = end
	}
	return strings.Join(parts, ",")
}

// List returns the CPUs of set in increasing order.
func List(set Set) []int {
	var out []int
	for c := 0; c <= maxCPU; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

// Allowed returns the CPUs this process may run on (its affinity mask,
// which a container's cpuset or taskset narrows).
func Allowed() (Set, error) {
	var set Set
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return set, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return set, nil
}

// Pin restricts every thread of this process to set. It fails, changing
// nothing, if set holds a CPU outside the process's current mask (the one
// taskset, a container's cpuset or an earlier Pin left it): it narrows
// where the process runs, never widens it.
//
// Affinity is per thread in Linux, and a Go program has several threads
// by the time it reads its flags: Pin sets each one listed in
// /proc/self/task, and goes over the list again until no thread is new,
// since a thread created meanwhile inherits its creator's old mask.
// Threads created afterwards inherit the new mask from their creators.
func Pin(set Set) error {
	allowed, err := Allowed()
	if err != nil {
		return err
	}
	var outside []int
	for _, c := range List(set) {
		if !allowed.IsSet(c) {
			outside = append(outside, c)
		}
	}
	if len(outside) > 0 {
		var o Set
		for _, c := range outside {
			o.Set(c)
		}
		what := "CPUs " + Format(o) + " are"
		if len(outside) == 1 {
			what = "CPU " + Format(o) + " is"
		}
		return fmt.Errorf("%s not available to this process, which may use %s", what, Format(allowed))
	}
	return pinThreads(set)
}

// pinThreads sets every thread's affinity to set, without checking set
// against the current mask (which a Packer has narrowed itself).
func pinThreads(set Set) error {
	if set.Count() == 0 {
		return fmt.Errorf("empty CPU set")
	}
	done := map[int]bool{}
	for round := 0; round < 10; round++ {
		tids, err := threads()
		if err != nil {
			return err
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh++
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				if err == unix.ESRCH { // the thread has exited
					continue
				}
				return fmt.Errorf("sched_setaffinity(thread %d, CPUs %s): %w", tid, Format(set), err)
			}
			done[tid] = true
		}
		if fresh == 0 {
			return nil
		}
	}
	return fmt.Errorf("pinning to CPUs %s: threads kept appearing", Format(set))
}

func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing this process's threads: %w", err)
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}
