// Package exetrim unmaps the pages of a process's own executable that only
// its start-up used, so that the process's resident set shows the code it
// runs rather than all the code it started with.
//
// Why: an nfpipe function is one process among many running the same
// binary. Starting one touches code and read-only data in nearly every
// 64 KiB block of the executable (every linked package's init, gVisor's
// set-up, the command-line and configuration code), and the kernel's
// fault-around maps each such block whole: an idle router counted ~10 MB
// of the binary's 11 MB of text and read-only data in its RSS, whatever it
// went on to run. Those pages are shared page cache; they are not the
// function's own memory.
//
// Drop tells the kernel (madvise MADV_DONTNEED) that the process no longer
// needs its mappings of the executable's read-only segments. The pages stay
// in the page cache, shared with every other process that maps them; a page
// the function touches again is mapped back by a minor fault (with its
// 64 KiB fault-around block), without any disk access while it is cached.
// Only read-only, file-backed mappings of the executable are dropped, and
// only if none of their pages is a private copy (a relocated page of a
// position-independent executable, say): for such mappings MADV_DONTNEED
// would be no hint but a loss of data, so they are left alone.
package exetrim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one mapping of the executable that Drop considered.
type Mapping struct {
	Start, End uintptr
	Perms      string // as in /proc/self/maps: "r-xp", "r--p"
	RssKB      int    // resident before Drop
	AnonKB     int    // private copies; a mapping with any is not dropped
	Dropped    bool
}

// Drop unmaps the resident pages of the executable's read-only mappings and
// returns what it considered. An error means nothing was dropped from the
// mapping named in it onwards; the process is unaffected either way.
func Drop() ([]Mapping, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("exetrim: find the executable: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, fmt.Errorf("exetrim: %w", err)
	}
	defer f.Close()
	maps, err := readSmaps(f, exe)
	if err != nil {
		return nil, fmt.Errorf("exetrim: /proc/self/smaps: %w", err)
	}
	for i := range maps {
		m := &maps[i]
		if !droppable(*m) {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.Start, m.End-m.Start, unix.MADV_DONTNEED); e != 0 {
			return maps, fmt.Errorf("exetrim: madvise %#x-%#x (%s): %w", m.Start, m.End, m.Perms, e)
		}
		m.Dropped = true
	}
	return maps, nil
}

// DroppedKB is how much of maps was resident before Drop unmapped it.
func DroppedKB(maps []Mapping) int {
	kb := 0
	for _, m := range maps {
		if m.Dropped {
			kb += m.RssKB
		}
	}
	return kb
}

// droppable says whether MADV_DONTNEED on m only unmaps pages the page
// cache holds: m is read-only (private copies of a writable mapping's pages
// are data) and has no private copies (relocated pages).
func droppable(m Mapping) bool {
	return len(m.Perms) == 4 && m.Perms[0] == 'r' && m.Perms[1] != 'w' && m.AnonKB == 0
}

// readSmaps returns the mappings of the file exe in an smaps listing, with
// their Rss and Anonymous sizes.
func readSmaps(r io.Reader, exe string) ([]Mapping, error) {
	var out []Mapping
	var cur *Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: "start-end perms offset dev inode [path]".
			cur = nil
			if len(fields) < 6 || strings.Join(fields[5:], " ") != exe {
				continue
			}
			start, end, ok := strings.Cut(fields[0], "-")
			if !ok {
				return nil, fmt.Errorf("malformed mapping %q", line)
			}
			s, err1 := strconv.ParseUint(start, 16, 64)
			e, err2 := strconv.ParseUint(end, 16, 64)
			if err1 != nil || err2 != nil || e <= s || len(fields[1]) != 4 {
				return nil, fmt.Errorf("malformed mapping %q", line)
			}
			out = append(out, Mapping{Start: uintptr(s), End: uintptr(e), Perms: fields[1]})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Rss:":
			cur.RssKB, _ = strconv.Atoi(fields[1])
		case "Anonymous:":
			cur.AnonKB, _ = strconv.Atoi(fields[1])
		}
	}
	return out, sc.Err()
}
