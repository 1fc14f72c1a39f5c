package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGarbageOnStdin: random bytes where qemu frames are expected stop the
// function with a clear error and exit status 1, quickly, without a crash.
func TestGarbageOnStdin(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 20*time.Second)
	began := time.Now()
	res, st := shell(t, ctx, 10*time.Second, t.TempDir(),
		`head -c 100000 /dev/urandom | nfpipe vnf router --if eth0=stdin,ip=192.0.2.1/24 --if eth1=stdout,ip=198.51.100.1/24`)
	took := time.Since(began)
	if len(st) != 2 {
		t.Fatalf("PIPESTATUS %v, want two statuses", st)
	}
	// head may die of SIGPIPE (141) once the router has stopped reading.
	if st[0] != 0 && st[0] != 141 {
		t.Errorf("head: exit status %d", st[0])
	}
	if st[1] != 1 {
		t.Errorf("router: exit status %d, want 1\nstderr:\n%s", st[1], res.Stderr)
	}
	wantNoPanic(t, "router", res.Stderr)
	wantContains(t, "router", res.Stderr, "qemu", "length", `interface \"eth0\"`)
	if res.Stdout != "" {
		t.Errorf("router wrote %d bytes to stdout from garbage input", len(res.Stdout))
	}
	if took > 3*time.Second {
		t.Errorf("router took %v to reject garbage, want well under 3s", took)
	}
}

// TestHexBadLines: bad lines among good hex frames are counted
// (rx_malformed) and skipped; every good frame is delivered; exit 0.
func TestHexBadLines(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	gen := nfpipe(t, ctx, 10*time.Second, "vnf", "host", "--if", "eth0=stdout,format=hex", "--ip", "192.0.2.10/24",
		"--run", "gen udp 192.0.2.7:9000 count=10", "--timeout", "10s")
	wantCode(t, "gen", gen, 0)
	good := lines(gen.Stdout)
	if len(good) != 10 {
		t.Fatalf("gen wrote %d hex lines, want 10:\n%s", len(good), gen.Stdout)
	}
	var in []string
	in = append(in, good[:3]...)
	in = append(in, "zz not hex at all", "FF FF") // line 4: bad character; line 5: too short for a frame
	in = append(in, good[3:7]...)
	// line 10: a frame with a bad byte in the middle
	in = append(in, strings.Replace(good[7], " 45 00 ", " 45 0G ", 1))
	in = append(in, good[7:]...)
	in = append(in, "# a comment is fine", "", "  ")
	file := filepath.Join(t.TempDir(), "in.hex")
	if err := os.WriteFile(file, []byte(strings.Join(in, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res := run(t, ctx, 15*time.Second, procSpec{Stdin: f, Args: []string{"vnf", "host", "--if", "eth0=stdin,format=hex",
		"--ip", "192.0.2.7/24", "--serve", "sink udp:9000", "--expect", "10", "--stats=json", "--timeout", "10s"}})
	wantCode(t, "sink", res, 0)
	wantNoPanic(t, "sink", res.Stderr)
	rep := parseStats(t, "sink", res.Stdout)
	wantCounter(t, rep, "eth0", "rx_frames", 10)
	wantCounter(t, rep, "eth0", "rx_malformed", 3)
	var st sinkStats
	rep.app(t, "sink udp:9000", &st)
	if st.Packets != 10 || st.Lost != 0 {
		t.Errorf("sink: %+v, want 10 packets, none lost", st)
	}
	// The first bad frame is reported with its position.
	wantContains(t, "sink", res.Stderr, "hex line 4")
}

// TestTruncatedPcap: a pcap file cut in the middle of a record delivers
// the records before the cut, then reports the truncation: exit 1.
func TestTruncatedPcap(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	dir := t.TempDir()
	gen := nfpipe(t, ctx, 10*time.Second, "vnf", "host", "--if", "eth0=stdout,format=pcap", "--ip", "192.0.2.10/24",
		"--run", "gen udp 192.0.2.7:9000 count=10", "--timeout", "10s")
	wantCode(t, "gen", gen, 0)
	offsets, frames := pcapRecords(t, []byte(gen.Stdout))
	if len(frames) != 10 {
		t.Fatalf("gen wrote %d pcap records, want 10", len(frames))
	}
	// Keep 5 whole records and the header and half the data of the 6th.
	cut := offsets[5] + 16 + len(frames[5])/2
	file := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(file, []byte(gen.Stdout[:cut]), 0o644); err != nil {
		t.Fatal(err)
	}
	res := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=pcap:"+file+"|none", "--ip", "192.0.2.7/24",
		"--serve", "sink udp:9000", "--stats=json", "--timeout", "10s")
	wantCode(t, "sink", res, 1)
	wantNoPanic(t, "sink", res.Stderr)
	wantContains(t, "sink", res.Stderr, "truncated", "eth0")
	rep := parseStats(t, "sink", res.Stdout)
	wantCounter(t, rep, "eth0", "rx_frames", 5)
	wantCounter(t, rep, "eth0", "rx_malformed", 1)
	var st sinkStats
	rep.app(t, "sink udp:9000", &st)
	if st.Packets != 5 {
		t.Errorf("sink got %d packets, want the 5 whole records", st.Packets)
	}
}

// TestBadPcapMagic: a file that is not a capture at all stops the function
// with an error naming the problem.
func TestBadPcapMagic(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 20*time.Second)
	file := filepath.Join(t.TempDir(), "not.pcap")
	if err := os.WriteFile(file, []byte(strings.Repeat("this is not a capture file\n", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := nfpipe(t, ctx, 10*time.Second, "vnf", "host", "--if", "eth0=pcap:"+file+"|none", "--ip", "192.0.2.7/24",
		"--serve", "sink udp:9000", "--timeout", "10s")
	wantCode(t, "sink", res, 1)
	wantNoPanic(t, "sink", res.Stderr)
	wantContains(t, "sink", res.Stderr, "magic")
}
