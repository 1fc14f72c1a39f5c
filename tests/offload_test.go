package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTAPOffloadRouter runs the Linux kernel's iperf3 through one nfpipe
// router whose two interfaces are TAP devices in two namespaces of the
// test's own (client C, server S), with MASQUERADE on the way out, and
// proves from the outcomes, not from the speed, that TCP offloads work end
// to end:
//
//   - with offloads on both TAPs (the default), the kernel hands the router
//     TCP segments larger than the MTU (rx_bytes/rx_frames > 1514 on the
//     ingress interface) and the router forwards them whole
//     (tx_large > 0, tx_split == 0 on the egress interface), in both
//     directions;
//   - towards a TAP opened with gso=off, the router splits them into
//     MTU-sized frames itself (tx_split > 0, tx_large == 0), and tcpdump in
//     S sees no frame larger than 1514 bytes;
//   - without rules, the same through the router's fast path
//     (fast_path.forwarded > 0): the kernel's partial checksums go on to
//     an offloading TAP as they are and are completed for a plain one;
//   - in every case nothing is lost or dropped as too big (drops == 0,
//     tx_oversize == 0), the bytes iperf3's receiver counted are what the
//     client reports, the server sees the router's outside address (the
//     NAT rewrote the large segments correctly: checksums included, or the
//     kernel would have dropped them) or, without NAT, the client's, and
//     every TCP checksum tcpdump verifies on a plain TAP is correct.
func TestTAPOffloadRouter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and TAP devices")
	}
	for _, tool := range []string{"ip", "iperf3", "tcpdump", "ss"} {
		needTool(t, tool)
	}
	t.Parallel()
	for _, tc := range []struct {
		name    string
		eth1    string // options added to eth1's --if
		reverse bool   // iperf3 -R: the server sends
		split   bool   // the egress link has no GSO: the router splits
		noNAT   bool   // no rules: the fast path forwards
	}{
		{name: "offload both"},
		{name: "offload both, reverse", reverse: true},
		{name: "split to plain TAP", eth1: ",gso=off", split: true},
		{name: "fast path, offload both", noNAT: true},
		{name: "fast path, plain TAP", eth1: ",gso=off", split: true, noNAT: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 40*time.Second)
			ingress, egress := "eth0", "eth1"
			if tc.reverse {
				ingress, egress = "eth1", "eth0"
			}
			client, server := netns(t, "nfoc"), netns(t, "nfos")
			args := []string{"vnf", "router",
				"--if", "eth0=tap:nfoc0,netns=" + client + ",ip=192.0.2.1/24",
				"--if", "eth1=tap:nfos0,netns=" + server + tc.eth1 + ",ip=198.51.100.1/24",
				"--stats=json", "--timeout", "35s"}
			if !tc.noNAT {
				args = append(args, "--rule", "-t nat -A POSTROUTING -o eth1 -j MASQUERADE")
			}
			router := start(t, ctx, "router", procSpec{Args: args})
			waitInNetns(t, ctx, client, 10*time.Second, "TAP nfoc0 in "+client, "ip", "link", "show", "nfoc0")
			waitInNetns(t, ctx, server, 10*time.Second, "TAP nfos0 in "+server, "ip", "link", "show", "nfos0")
			for _, c := range [][]string{
				{client, "ip", "addr", "add", "192.0.2.2/24", "dev", "nfoc0"},
				{client, "ip", "link", "set", "nfoc0", "up"},
				{client, "ip", "route", "add", "default", "via", "192.0.2.1"},
				{server, "ip", "addr", "add", "198.51.100.2/24", "dev", "nfos0"},
				{server, "ip", "link", "set", "nfos0", "up"},
				{server, "ip", "route", "add", "default", "via", "198.51.100.1"},
			} {
				mustInNetns(t, ctx, c[0], c[1:]...)
			}

			// What reaches S on the plain TAP: the first 200 frames towards
			// iperf3's port, the bulk of them data. tcpdump reads them where
			// the kernel receives them from the TAP (no GRO on this path:
			// were it there, merged frames would fail the check below).
			var dump *proc
			pcapFile := t.TempDir() + "/nfos0.pcap"
			if tc.split {
				dump = start(t, ctx, "tcpdump", procSpec{Path: "ip", Args: []string{"netns", "exec", server,
					"tcpdump", "-i", "nfos0", "-nn", "-s", "0", "-c", "200", "-w", pcapFile, "tcp dst port 5201"}})
				dump.waitStderr(t, "listening on nfos0", 10*time.Second)
			}

			srv := start(t, ctx, "iperf3 -s", procSpec{Path: "ip", Args: []string{"netns", "exec", server,
				"iperf3", "-s", "-1", "--json"}})
			waitInNetns(t, ctx, server, 10*time.Second, "iperf3 -s", "sh", "-c", "ss -ltn | grep -q ':5201 '")
			args = []string{"iperf3", "-c", "198.51.100.2", "-t", "3", "--connect-timeout", "5000", "--json"}
			if tc.reverse {
				args = append(args, "-R")
			}
			cr := inNetns(t, ctx, client, 20*time.Second, args...)
			wantCode(t, "iperf3 -c", cr, 0)
			sr := result{Code: srv.wait(t, 10*time.Second), Stdout: srv.stdout.String(), Stderr: srv.stderr.String()}
			wantCode(t, "iperf3 -s", sr, 0)
			if dump != nil && !dump.exited() {
				dump.signal(t, syscall.SIGINT)
			}
			stopWithin(t, router, syscall.SIGTERM, 5*time.Second)
			if t.Failed() {
				return
			}

			cj, sj := parseIperf(t, "iperf3 -c", cr.Stdout), parseIperf(t, "iperf3 -s", sr.Stdout)
			// Each end reports its own count; the client also reports the
			// receiving server's.
			received, sent := sj.End.SumReceived.Bytes, cj.End.SumSent.Bytes
			if tc.reverse {
				received, sent = cj.End.SumReceived.Bytes, sj.End.SumSent.Bytes
			}
			if cj.End.SumReceived.Bytes != received {
				t.Errorf("iperf3: the client reports %d bytes received, the server counted %d", cj.End.SumReceived.Bytes, received)
			}
			if received < 10<<20 || received > sent {
				t.Errorf("iperf3: %d bytes received of %d sent, want more than 10 MiB and no more than sent", received, sent)
			}
			t.Logf("iperf3 %s: %.2f Gbit/s", tc.name, cj.End.SumReceived.BitsPerSecond/1e9)
			wantFrom := "198.51.100.1" // the router's outside address (MASQUERADE)
			if tc.noNAT {
				wantFrom = "192.0.2.2"
			}
			if len(sj.Start.Connected) != 1 || sj.Start.Connected[0].RemoteHost != wantFrom {
				t.Errorf("iperf3 -s: connected %+v, want one connection from %s", sj.Start.Connected, wantFrom)
			}

			rep := parseStats(t, "router", router.stdout.String())
			if fast := rep.Stack.Protocols["fast_path.forwarded"]; tc.noNAT && fast == 0 {
				t.Errorf("router: fast_path.forwarded = 0 without rules: the fast path forwarded nothing")
			} else if !tc.noNAT && fast != 0 {
				t.Errorf("router: fast_path.forwarded = %v with a NAT rule, want 0", fast)
			}
			for _, ifc := range rep.Stack.Interfaces {
				if ifc.Drops != 0 {
					t.Errorf("router: %s lost %d frames: %v", ifc.Name, ifc.Drops, ifc.Counters)
				}
				wantCounter(t, rep, ifc.Name, "tx_oversize", 0)
			}
			if frames, bytes := counter(t, rep, ingress, "rx_frames"), counter(t, rep, ingress, "rx_bytes"); frames == 0 || bytes/frames <= 1514 {
				t.Errorf("router: %s received %d bytes in %d frames, want an average above 1514: the kernel did not hand over large segments", ingress, bytes, frames)
			}
			if tc.split {
				if counter(t, rep, egress, "tx_split") == 0 {
					t.Errorf("router: %s.tx_split = 0: no large segment was split for the gso=off TAP", egress)
				}
				wantCounter(t, rep, egress, "tx_large", 0)
			} else {
				if counter(t, rep, egress, "tx_large") == 0 {
					t.Errorf("router: %s.tx_large = 0: no large segment went out whole to the offloading TAP", egress)
				}
				wantCounter(t, rep, egress, "tx_split", 0)
			}

			if dump == nil {
				return
			}
			if code := dump.wait(t, 5*time.Second); code != 0 {
				t.Errorf("tcpdump: exit status %d\n%s", code, dump.stderr.String())
			}
			b, err := os.ReadFile(pcapFile)
			if err != nil {
				t.Fatalf("tcpdump: %v", err)
			}
			_, frames := pcapRecords(t, b)
			full, over, largest := 0, 0, 0
			for _, f := range frames {
				switch {
				case len(f) > 1514:
					over++
				case len(f) == 1514:
					full++
				}
				largest = max(largest, len(f))
			}
			if over > 0 {
				t.Errorf("tcpdump on nfos0 in %s: %d of %d frames exceed 1514 bytes (largest %d): large segments reached the gso=off TAP unsplit", server, over, len(frames), largest)
			}
			if full < 100 {
				t.Errorf("tcpdump on nfos0 in %s: %d of %d frames are full-size (1514 bytes), want at least 100: the capture missed the bulk data", server, full, len(frames))
			}
			// A plain TAP gets complete checksums: tcpdump -vv checks
			// every one and says "incorrect" of a wrong one.
			vv, err := exec.CommandContext(ctx, "tcpdump", "-r", pcapFile, "-nn", "-vv").CombinedOutput()
			if err != nil {
				t.Fatalf("tcpdump -r %s -vv: %v\n%s", pcapFile, err, vv)
			}
			if n, bad := strings.Count(string(vv), "cksum"), strings.Count(string(vv), "incorrect"); n < len(frames) || bad > 0 {
				var show []string
				for _, l := range strings.Split(string(vv), "\n") {
					if strings.Contains(l, "incorrect") && len(show) < 3 {
						show = append(show, l)
					}
				}
				t.Errorf("tcpdump -vv on nfos0's capture: %d of %d frames have an incorrect checksum (%d checked): %s", bad, len(frames), n, strings.Join(show, "\n"))
			}
		})
	}
}

// iperfReport is what the test reads of iperf3 --json (3.x). Each end
// fills the sums of its own role, the client both (it gets the server's
// results): the receiver's count is end.sum_received.
type iperfReport struct {
	Start struct {
		Connected []struct {
			RemoteHost string `json:"remote_host"`
		} `json:"connected"`
	} `json:"start"`
	End struct {
		SumSent     iperfSum `json:"sum_sent"`
		SumReceived iperfSum `json:"sum_received"`
	} `json:"end"`
}

type iperfSum struct {
	Bytes         int64   `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
}

func parseIperf(t *testing.T, what, out string) iperfReport {
	t.Helper()
	var r iperfReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s --json: %v\n%s", what, err, out)
	}
	return r
}

// counter returns an interface counter, failing if the key does not exist
// (so that a renamed counter is noticed, not read as zero).
func counter(t *testing.T, r *statsReport, ifname, key string) uint64 {
	t.Helper()
	v, ok := r.iface(t, ifname).Counters[key]
	if !ok {
		t.Fatalf("%s: interface %s has no counter %q", r.Name, ifname, key)
	}
	return v
}
