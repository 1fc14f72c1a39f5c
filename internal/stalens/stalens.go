// Package stalens deletes the network namespaces a killed run left behind:
// those whose name says which process made them (a pid in the name) when
// that process is gone. Tests and the benchmark harness name their
// namespaces after their pid so that they can clean up this way without
// touching anyone else's.
package stalens

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"
)

// Delete deletes every namespace in /run/netns whose name matches re and
// whose submatch pidGroup is the pid of a process that no longer exists
// (never this process's). logf, if not nil, reports each deletion.
func Delete(re *regexp.Regexp, pidGroup int, logf func(format string, args ...any)) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		m := re.FindStringSubmatch(e.Name())
		if m == nil || pidGroup >= len(m) {
			continue
		}
		pid, _ := strconv.Atoi(m[pidGroup])
		if pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput()
		if logf == nil {
			continue
		}
		if err != nil {
			logf("stale namespace %s of a killed run: %v: %s", e.Name(), err, out)
		} else {
			logf("deleted stale namespace %s of a killed run", e.Name())
		}
	}
}
