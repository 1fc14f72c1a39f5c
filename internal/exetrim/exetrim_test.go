package exetrim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// initialised is data in a writable mapping, which Drop must leave alone.
var initialised = []string{"kept", "after", "drop"}

func TestDropUnmapsStartupPagesAndTheProcessRunsOn(t *testing.T) {
	before, err := Drop() // the first call reports the pages start-up left
	if err != nil {
		t.Fatal(err)
	}
	exeKB := DroppedKB(before)
	if exeKB == 0 {
		t.Fatalf("nothing of the executable was resident and dropped: %+v", before)
	}
	after, err := Drop()
	if err != nil {
		t.Fatal(err)
	}
	// What is resident again is what ran between the two calls (with its
	// fault-around blocks): less than start-up left.
	againKB := DroppedKB(after)
	t.Logf("executable pages resident: %d kB after start-up, %d kB after Drop", exeKB, againKB)
	if againKB >= exeKB {
		t.Errorf("resident executable pages did not fall: %d kB before Drop, %d kB after", exeKB, againKB)
	}
	// Code and data work as before: code is mapped back on use, data was
	// never touched.
	s := slices.Sorted(slices.Values([]string{"c", "a", "b"}))
	if got := fmt.Sprint(s, initialised); got != "[a b c] [kept after drop]" {
		t.Errorf("after Drop: got %q", got)
	}
}

func TestReadSmapsFindsTheExecutablesMappings(t *testing.T) {
	const smaps = `00400000-009f9000 r-xp 00000000 fe:00 9977907                            /usr/bin/nfpipe
Size:               6116 kB
Rss:                5220 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
009f9000-010dc000 r--p 005f9000 fe:00 9977907                            /usr/bin/nfpipe
Rss:                5512 kB
Anonymous:            12 kB
010dc000-01141000 rw-p 00cdc000 fe:00 9977907                            /usr/bin/nfpipe
Rss:                 324 kB
Anonymous:            96 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 1234                       /usr/lib/libc.so.6
Rss:                1240 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Rss:                 100 kB
`
	got, err := readSmaps(strings.NewReader(smaps), "/usr/bin/nfpipe")
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Start: 0x400000, End: 0x9f9000, Perms: "r-xp", RssKB: 5220},
		{Start: 0x9f9000, End: 0x10dc000, Perms: "r--p", RssKB: 5512, AnonKB: 12},
		{Start: 0x10dc000, End: 0x1141000, Perms: "rw-p", RssKB: 324, AnonKB: 96},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("readSmaps:\n got %+v\nwant %+v", got, want)
	}
	// Only the clean read-only text may go: the relocated read-only
	// mapping and the data mapping hold private copies.
	var drop []bool
	for _, m := range got {
		drop = append(drop, droppable(m))
	}
	if !slices.Equal(drop, []bool{true, false, false}) {
		t.Errorf("droppable: got %v, want [true false false]", drop)
	}
}

func TestReadSmapsRejectsAMalformedHeader(t *testing.T) {
	_, err := readSmaps(strings.NewReader("zz-400000 r-xp 0 fe:00 1 /x\n"), "/x")
	if err == nil || !strings.Contains(err.Error(), "malformed mapping") {
		t.Fatalf("got %v, want a malformed mapping error", err)
	}
}
