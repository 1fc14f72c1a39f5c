package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestGSOThroughRouter sends a bulk TCP stream from host a through router
// r to host b, three processes over unix sockets, IPv4 and IPv6. a's link
// to r carries large segments (gso=on); r passes them on whole where its
// link to b does too, and splits them into MTU-sized frames with valid
// checksums where it does not (b's stack would drop a bad checksum and the
// stream would stall). Every byte must arrive, every frame b receives must
// fit the MTU when its link has no GSO (checked on b's capture), and
// nothing may be dropped.
func TestGSOThroughRouter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		a, r0, r1, b, gw string
		bGSO             string
		whole            bool // large segments reach b whole
	}{
		{"ipv4/whole", "192.0.2.2/24", "192.0.2.1/24", "198.51.100.1/24", "198.51.100.2/24", "198.51.100.1", ",gso=on", true},
		{"ipv4/split", "192.0.2.2/24", "192.0.2.1/24", "198.51.100.1/24", "198.51.100.2/24", "198.51.100.1", "", false},
		{"ipv6/whole", "2001:db8:1::2/64", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:2::2/64", "2001:db8:2::1", ",gso=on", true},
		{"ipv6/split", "2001:db8:1::2/64", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:2::2/64", "2001:db8:2::1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 60*time.Second)
			dir := shortDir(t)
			sa, sb, capture := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock"), filepath.Join(dir, "b.pcap")
			addr := func(p string) string { return p[:len(p)-3] }
			rtr := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router",
				"--if", "eth0=unix-listen:" + sa + ",gso=on,ip=" + tc.r0,
				"--if", "eth1=unix-listen:" + sb + tc.bGSO + ",ip=" + tc.r1,
				"--stats=json", "--timeout", "50s"}})
			far := start(t, ctx, "b", procSpec{Args: []string{"vnf", "host",
				"--if", "eth0=unix:" + sb + tc.bGSO + ",capture=" + capture + ",ip=" + tc.b,
				"--gw", tc.gw, "--serve", "bulk", "--stats=json", "--timeout", "50s"}})
			rtr.waitStderr(t, `msg="peer connected" vnf=router kind=router if=eth1`, 15*time.Second)
			spec := fmt.Sprintf("bulk %s seconds=1", addr(tc.b))
			if tc.b[0] != '1' {
				spec = fmt.Sprintf("bulk [%s] seconds=1", addr(tc.b))
			}
			res := run(t, ctx, 30*time.Second, procSpec{Args: []string{"vnf", "host",
				"--if", "eth0=unix:" + sa + ",gso=on,ip=" + tc.a, "--gw", addr(tc.r0),
				"--run", spec, "--stats=json", "--timeout", "20s"}})
			wantCode(t, "a: "+spec, res, 0)
			arep := parseStats(t, "a", res.Stdout)
			var bulk bulkClientStats
			arep.app(t, spec, &bulk)
			if bulk.SentBytes < 10<<20 || bulk.ReceivedBytes != bulk.SentBytes {
				t.Errorf("bulk: sent %d bytes, b received %d; want at least 10 MiB, all of it", bulk.SentBytes, bulk.ReceivedBytes)
			}
			if n := counter(t, arep, "eth0", "tx_large"); n == 0 {
				t.Errorf("a sent no large segments on its gso=on link")
			}

			// b first: a router that stops ends b's input, and b would be
			// gone before its signal.
			stopWithin(t, far, syscall.SIGTERM, 10*time.Second)
			stopWithin(t, rtr, syscall.SIGTERM, 10*time.Second)
			rrep := parseStats(t, "router", rtr.stdout.String())
			large, split := counter(t, rrep, "eth1", "tx_large"), counter(t, rrep, "eth1", "tx_split")
			if tc.whole && (large == 0 || split != 0) {
				t.Errorf("router eth1 (gso=on): tx_large=%d tx_split=%d, want large segments passed on whole", large, split)
			}
			if !tc.whole && (split == 0 || large != 0) {
				t.Errorf("router eth1 (no gso): tx_large=%d tx_split=%d, want large segments split", large, split)
			}
			if n := rrep.proto(t, "ip.forwarding.packet_too_big"); n != 0 {
				t.Errorf("router refused %d packets as too big", n)
			}
			brep := parseStats(t, "b", far.stdout.String())
			for _, rep := range []*statsReport{arep, rrep, brep} {
				for _, ifc := range rep.Stack.Interfaces {
					drops := ifc.Drops
					if rep == rrep && ifc.Name == "eth0" {
						// a exits as soon as its transfer is done: b's last
						// ACKs may find it gone, dropped as tx_no_path.
						drops -= ifc.Counters["tx_no_path"]
					}
					if q := ifc.Counters["tx_queue_drops"]; rep == rrep && q > 0 {
						// A two-way link's queue may overflow, like a NIC's,
						// while the router is delivering (README, "Running a
						// function"); TCP recovers, and b got every byte
						// (above). Only a rare loss is that.
						if q*1000 > ifc.Counters["tx_frames"] {
							t.Errorf("router %s: %d tx_queue_drops of %d frames, more than 0.1%%", ifc.Name, q, ifc.Counters["tx_frames"])
						}
						drops -= q
					}
					if drops != 0 {
						t.Errorf("%s %s dropped %d frames: %v", rep.Name, ifc.Name, drops, ifc.Counters)
					}
				}
			}
			b, err := os.ReadFile(capture)
			if err != nil {
				t.Fatal(err)
			}
			_, frames := pcapRecords(t, b)
			largest := 0
			for _, f := range frames {
				largest = max(largest, len(f))
			}
			if tc.whole && largest <= 1514 {
				t.Errorf("largest frame b received: %d bytes, want large segments", largest)
			}
			if !tc.whole && largest > 1514 {
				t.Errorf("largest frame b received: %d bytes, want at most 1514 (MTU 1500)", largest)
			}
		})
	}
}
