package tests

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// family is one addressing plan for a host | router | host chain.
type family struct {
	name                    string
	src, rtrIn, rtrOut, dst string // ADDR/LEN
	target                  string // the sink's ADDR:PORT as gen takes it
}

var families = []family{
	{"ipv4", "192.0.2.10/24", "192.0.2.1/24", "198.51.100.1/24", "198.51.100.7/24", "198.51.100.7:9000"},
	{"ipv6", "2001:db8:1::10/64", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:2::7/64", "[2001:db8:2::7]:9000"},
}

var formats = []string{"qemu", "vde", "hex", "pcap"}

// TestForwardPipeline: gen | router | sink over OS pipes, one-way, in every
// frame format and both IP versions: 1000 of 1000 datagrams arrive, and the
// router's counters account for every frame.
func TestForwardPipeline(t *testing.T) {
	t.Parallel()
	for _, fam := range families {
		for _, format := range formats {
			t.Run(fam.name+"/"+format, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t, 40*time.Second)
				res := pipeline(t, ctx, 30*time.Second,
					[]string{"vnf", "host", "--if", "eth0=stdout,format=" + format, "--ip", fam.src,
						"--run", "gen udp " + fam.target + " count=1000 size=200", "--timeout", "20s"},
					[]string{"vnf", "router", "--if", "eth0=stdin,format=" + format + ",ip=" + fam.rtrIn,
						"--if", "eth1=stdout,format=" + format + ",ip=" + fam.rtrOut, "--stats=json", "--timeout", "20s"},
					[]string{"vnf", "host", "--if", "eth0=stdin,format=" + format, "--ip", fam.dst,
						"--serve", "sink udp:9000", "--expect", "1000", "--stats=json", "--timeout", "20s"},
				)
				wantCode(t, "gen", res[0], 0)
				wantCode(t, "router", res[1], 0)
				wantCode(t, "sink", res[2], 0)
				wantContains(t, "gen", res[0].Stderr, "1000 packets, 200000 bytes")
				wantContains(t, "sink", res[2].Stdout, "sink udp:9000: 1000 packets, 200000 bytes from 1 flow")

				sink := parseStats(t, "sink", res[2].Stdout)
				var st sinkStats
				sink.app(t, "sink udp:9000", &st)
				if st.Packets != 1000 || st.Bytes != 200000 || st.Lost != 0 || st.Duplicates != 0 || st.Reordered != 0 {
					t.Errorf("sink stats %+v, want 1000 packets, 200000 bytes, nothing lost, duplicated or reordered", st)
				}
				wantCounter(t, sink, "eth0", "rx_frames", 1000)

				// The router reports on stderr: its stdout carries frames.
				rtr := parseStats(t, "router", res[1].Stderr)
				wantCounter(t, rtr, "eth0", "rx_frames", 1000)
				wantCounter(t, rtr, "eth1", "tx_frames", 1000)
				for _, ifc := range rtr.Stack.Interfaces {
					if ifc.Drops != 0 {
						t.Errorf("router %s: drops %d, want 0 (counters %v)", ifc.Name, ifc.Drops, ifc.Counters)
					}
				}
				if got := rtr.proto(t, "ip.packets_sent"); got != 1000 {
					t.Errorf("router ip.packets_sent = %d, want 1000", got)
				}
			})
		}
	}
}

// TestPcapToTcpdump: format=pcap on stdout is a savefile stream the real
// tcpdump decodes as it arrives.
func TestPcapToTcpdump(t *testing.T) {
	t.Parallel()
	needTool(t, "tcpdump")
	cases := []struct {
		name, src, target string
		line              *regexp.Regexp
	}{
		{"ipv4", "192.0.2.10/24", "198.51.100.7:9000",
			regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d+ IP 192\.0\.2\.10\.(\d+) > 198\.51\.100\.7\.9000: UDP, length 200$`)},
		{"ipv6", "2001:db8:1::10/64", "[2001:db8:2::7]:9000",
			regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d+ IP6 2001:db8:1::10\.(\d+) > 2001:db8:2::7\.9000: UDP, length 200$`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 30*time.Second)
			const n = 20
			res, st := shell(t, ctx, 20*time.Second, t.TempDir(), fmt.Sprintf(
				"nfpipe vnf host --if eth0=stdout,format=pcap --ip %s --run 'gen udp %s count=%d' --timeout 10s | tcpdump -nr -",
				c.src, c.target, n))
			wantStatus(t, "host | tcpdump", st, 0, 0)
			got := lines(res.Stdout)
			if len(got) != n {
				t.Fatalf("tcpdump decoded %d packets, want %d:\n%s\nstderr:\n%s", len(got), n, res.Stdout, res.Stderr)
			}
			port := ""
			for _, l := range got {
				m := c.line.FindStringSubmatch(l)
				if m == nil {
					t.Errorf("tcpdump line %q does not match %s", l, c.line)
					continue
				}
				if port == "" {
					port = m[1]
				} else if m[1] != port {
					t.Errorf("source port changed from %s to %s within one gen flow", port, m[1])
				}
			}
			wantContains(t, "tcpdump", res.Stderr, "link-type EN10MB (Ethernet)")
		})
	}
}

// TestHexGrepFilter: hex is one frame per line, so grep drops a flow. Of 10
// datagrams to port 8080 (0x1F90) and 10 to 9000, none of the first and all
// of the second arrive.
func TestHexGrepFilter(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	res, st := shell(t, ctx, 20*time.Second, t.TempDir(),
		`nfpipe vnf host --if eth0=stdout,format=hex --ip 192.0.2.10/24 --timeout 10s \
    --run 'gen udp 192.0.2.7:8080 count=10' --run 'gen udp 192.0.2.7:9000 count=10' \
 | grep --line-buffered -v ' 1F 90 ' \
 | nfpipe vnf host --if eth0=stdin,format=hex --ip 192.0.2.7/24 --serve 'sink udp:8080' --serve 'sink udp:9000' --stats=json --timeout 10s`)
	wantStatus(t, "host | grep | host", st, 0, 0, 0)
	wantContains(t, "receiver", res.Stdout,
		"sink udp:8080: 0 packets, 0 bytes from 0 flows",
		"sink udp:9000: 10 packets, 2000 bytes from 1 flow")
	rep := parseStats(t, "receiver", res.Stdout)
	var s8080, s9000 sinkStats
	rep.app(t, "sink udp:8080", &s8080)
	rep.app(t, "sink udp:9000", &s9000)
	if s8080.Packets != 0 {
		t.Errorf("sink udp:8080 got %d packets, want 0 (grep removed them)", s8080.Packets)
	}
	if s9000.Packets != 10 || s9000.Lost != 0 {
		t.Errorf("sink udp:9000: %+v, want 10 packets, none lost", s9000)
	}
	wantCounter(t, rep, "eth0", "rx_frames", 10)
	wantCounter(t, rep, "eth0", "rx_malformed", 0)
}

// TestPcapReplay: a capture made by nfpipe (on stdout, or with --capture)
// replays through a router to a sink; a capture made by the real text2pcap
// from a hand-written hex dump is delivered too.
func TestPcapReplay(t *testing.T) {
	t.Parallel()
	replay := func(t *testing.T, ctx context.Context, file string, n int) {
		t.Helper()
		res := pipeline(t, ctx, 20*time.Second,
			[]string{"vnf", "router", "--if", "eth0=pcap:" + file + "|none,ip=192.0.2.1/24",
				"--if", "eth1=stdout,ip=198.51.100.1/24", "--stats=json", "--timeout", "15s"},
			[]string{"vnf", "host", "--if", "eth0=stdin", "--ip", "198.51.100.7/24",
				"--serve", "sink udp:9000", "--expect", fmt.Sprint(n), "--stats=json", "--timeout", "15s"},
		)
		wantCode(t, "router", res[0], 0)
		wantCode(t, "sink", res[1], 0)
		rtr := parseStats(t, "router", res[0].Stderr)
		wantCounter(t, rtr, "eth0", "rx_frames", uint64(n))
		wantCounter(t, rtr, "eth1", "tx_frames", uint64(n))
		var st sinkStats
		parseStats(t, "sink", res[1].Stdout).app(t, "sink udp:9000", &st)
		if st.Packets != int64(n) || st.Lost != 0 {
			t.Errorf("sink: %+v, want %d packets, none lost", st, n)
		}
	}

	t.Run("stdout-recording", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 40*time.Second)
		file := filepath.Join(t.TempDir(), "rec.pcap")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		r := run(t, ctx, 15*time.Second, procSpec{Stdout: f, Args: []string{"vnf", "host",
			"--if", "eth0=stdout,format=pcap", "--ip", "192.0.2.10/24",
			"--run", "gen udp 198.51.100.7:9000 count=50", "--timeout", "10s"}})
		f.Close()
		wantCode(t, "recorder", r, 0)
		b, _ := os.ReadFile(file)
		if _, frames := pcapRecords(t, b); len(frames) != 50 {
			t.Fatalf("recording has %d records, want 50", len(frames))
		}
		replay(t, ctx, file, 50)
	})

	t.Run("capture-flag", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 40*time.Second)
		file := filepath.Join(t.TempDir(), "cap.pcap")
		// Frames go to stdout (discarded); --capture writes a copy.
		r := run(t, ctx, 15*time.Second, procSpec{Stdout: devNull(t), Args: []string{"vnf", "host",
			"--if", "eth0=stdout", "--capture", "eth0=" + file, "--ip", "192.0.2.10/24",
			"--run", "gen udp 198.51.100.7:9000 count=50", "--timeout", "10s"}})
		wantCode(t, "recorder", r, 0)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, frames := pcapRecords(t, b); len(frames) != 50 {
			t.Fatalf("capture has %d records, want 50", len(frames))
		}
		replay(t, ctx, file, 50)
	})

	t.Run("text2pcap", func(t *testing.T) {
		t.Parallel()
		needTool(t, "text2pcap")
		ctx := testContext(t, 30*time.Second)
		dir := t.TempDir()
		src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.7")
		var dump strings.Builder
		const n = 3
		for seq := 0; seq < n; seq++ {
			payload := make([]byte, 32)
			binary.BigEndian.PutUint64(payload, uint64(seq))
			copy(payload[8:], "hand-made by the e2e test")
			writeHexDump(&dump, udp4Frame(src, dst, 40000, 9000, payload))
		}
		txt, pcap := filepath.Join(dir, "frames.txt"), filepath.Join(dir, "frames.pcap")
		if err := os.WriteFile(txt, []byte(dump.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		r := run(t, ctx, 10*time.Second, procSpec{Path: "text2pcap", Args: []string{"-F", "pcap", txt, pcap}})
		wantCode(t, "text2pcap", r, 0)
		res := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=pcap:"+pcap+"|none", "--ip", "192.0.2.7/24",
			"--serve", "sink udp:9000", "--expect", fmt.Sprint(n), "--stats=json", "--timeout", "10s")
		wantCode(t, "sink", res, 0)
		rep := parseStats(t, "sink", res.Stdout)
		var st sinkStats
		rep.app(t, "sink udp:9000", &st)
		if st.Packets != n || st.Bytes != n*32 || st.Lost != 0 {
			t.Errorf("sink: %+v, want %d packets of 32 bytes, none lost", st, n)
		}
		wantCounter(t, rep, "eth0", "rx_frames", n)
		wantCounter(t, rep, "eth0", "rx_malformed", 0)
		if got := rep.proto(t, "udp.checksum_errors"); got != 0 {
			t.Errorf("udp.checksum_errors = %d, want 0 (the test's checksums are wrong?)", got)
		}
		wantContains(t, "sink", res.Stdout, "192.0.2.10:40000")
	})
}

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// udp4Frame builds an Ethernet frame to the broadcast MAC carrying an IPv4
// UDP datagram with correct IP and UDP checksums.
func udp4Frame(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udpLen := 8 + len(payload)
	ip := make([]byte, 20+udpLen)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[4:], 0x1234) // identification
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
	ip[8] = 64
	ip[9] = 17
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20], 0))

	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[8:], payload)
	pseudo := make([]byte, 0, 12)
	pseudo = append(pseudo, s4[:]...)
	pseudo = append(pseudo, d4[:]...)
	pseudo = append(pseudo, 0, 17, byte(udpLen>>8), byte(udpLen))
	sum := checksum(udp, sum16(pseudo))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], sum)

	eth := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x00}
	return append(eth, ip...)
}

// sum16 is the one's-complement sum of b as big-endian 16-bit words.
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// checksum is the Internet checksum of b, starting from a partial sum.
func checksum(b []byte, initial uint32) uint16 {
	s := initial + sum16(b)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// writeHexDump writes one frame the way text2pcap reads it (od -Ax -tx1
// style: a hex offset, then up to 16 bytes), followed by a blank line.
func writeHexDump(w *strings.Builder, frame []byte) {
	for off := 0; off < len(frame); off += 16 {
		end := min(off+16, len(frame))
		fmt.Fprintf(w, "%06x", off)
		for _, c := range frame[off:end] {
			fmt.Fprintf(w, " %02x", c)
		}
		w.WriteString("\n")
	}
	w.WriteString("\n")
}

// TestSinkExpectMismatch: a sink that gets fewer datagrams than --expect
// fails, saying how many it got.
func TestSinkExpectMismatch(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	res := pipeline(t, ctx, 20*time.Second,
		[]string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24", "--run", "gen udp 192.0.2.7:9000 count=5", "--timeout", "10s"},
		[]string{"vnf", "host", "--if", "eth0=stdin", "--ip", "192.0.2.7/24", "--serve", "sink udp:9000", "--expect", "6", "--timeout", "10s"},
	)
	wantCode(t, "gen", res[0], 0)
	wantCode(t, "sink", res[1], 1)
	wantContains(t, "sink", res[1].Stdout, "sink udp:9000: 5 packets, 1000 bytes from 1 flow")
	wantContains(t, "sink", res[1].Stderr, "got 5 packets, expected 6")
}

// TestPcapReplayTiming: timing=original replays a capture at the pace it
// was recorded; without it, as fast as possible.
func TestPcapReplayTiming(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	file := filepath.Join(t.TempDir(), "paced.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	// 6 datagrams at 10/s: 0.5 s from the first to the last.
	r := run(t, ctx, 15*time.Second, procSpec{Stdout: f, Args: []string{"vnf", "host", "--if", "eth0=stdout,format=pcap",
		"--ip", "192.0.2.10/24", "--run", "gen udp 192.0.2.7:9000 count=6 rate=10", "--timeout", "10s"}})
	f.Close()
	wantCode(t, "recorder", r, 0)
	for _, c := range []struct {
		opt      string
		min, max float64 // seconds between the sink's first and last datagram
	}{{"", 0, 0.2}, {",timing=original", 0.4, 1.5}} {
		res := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=pcap:"+file+"|none"+c.opt, "--ip", "192.0.2.7/24",
			"--serve", "sink udp:9000", "--expect", "6", "--stats=json", "--timeout", "10s")
		wantCode(t, "replay"+c.opt, res, 0)
		var st struct {
			Packets int64 `json:"packets"`
			Flows   []struct {
				Seconds float64 `json:"seconds"`
			} `json:"flows"`
		}
		parseStats(t, "sink", res.Stdout).app(t, "sink udp:9000", &st)
		if st.Packets != 6 || len(st.Flows) != 1 {
			t.Fatalf("replay%s: %d packets in %d flows, want 6 in 1", c.opt, st.Packets, len(st.Flows))
		}
		if s := st.Flows[0].Seconds; s < c.min || s > c.max {
			t.Errorf("replay%s: datagrams spread over %.3f s, want %.1f to %.1f s", c.opt, s, c.min, c.max)
		}
	}
}
