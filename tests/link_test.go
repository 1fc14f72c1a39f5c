package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOtherMACDropped: frames addressed to another MAC are dropped and
// counted (rx_other_host), as a real NIC does; peer= sets the destination
// MAC of a one-way link and mac= the receiver's own.
func TestOtherMACDropped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	gen := []string{"vnf", "host", "--if", "eth0=stdout,format=hex,peer=02:00:00:00:00:07", "--ip", "192.0.2.10/24",
		"--run", "gen udp 192.0.2.7:9000 count=10", "--timeout", "10s"}
	for _, c := range []struct {
		mac       string
		delivered int64
	}{{"02:00:00:00:00:07", 10}, {"02:00:00:00:00:08", 0}} {
		res := pipeline(t, ctx, 20*time.Second, gen,
			[]string{"vnf", "host", "--if", "eth0=stdin,format=hex,mac=" + c.mac, "--ip", "192.0.2.7/24",
				"--serve", "sink udp:9000", "--stats=json", "--timeout", "10s"})
		wantCode(t, "gen", res[0], 0)
		wantCode(t, "sink", res[1], 0)
		rep := parseStats(t, "sink", res[1].Stdout)
		if got := rep.iface(t, "eth0").MAC; got != c.mac {
			t.Errorf("sink eth0 MAC %s, want %s", got, c.mac)
		}
		var st sinkStats
		rep.app(t, "sink udp:9000", &st)
		if st.Packets != c.delivered {
			t.Errorf("sink with MAC %s got %d packets, want %d", c.mac, st.Packets, c.delivered)
		}
		wantCounter(t, rep, "eth0", "rx_frames", 10)
		wantCounter(t, rep, "eth0", "rx_other_host", uint64(10-c.delivered))
	}

	// The frames on the wire carry the peer MAC.
	res := nfpipe(t, ctx, 10*time.Second, gen...)
	wantCode(t, "gen", res, 0)
	for _, l := range lines(res.Stdout) {
		if !strings.HasPrefix(l, "020000000007 ") {
			t.Errorf("frame not addressed to peer=02:00:00:00:00:07: %.40s", l)
		}
	}

	// A router drops a unicast frame for someone else instead of
	// forwarding it.
	sh, st := shell(t, ctx, 20*time.Second, t.TempDir(),
		`nfpipe vnf host --if eth0=stdout,format=hex --ip 192.0.2.10/24 --run 'gen udp 198.51.100.7:9000 count=10' 2>/dev/null \
 | sed 's/^FFFFFFFFFFFF/020000000099/' \
 | nfpipe vnf router --if eth0=stdin,format=hex,ip=192.0.2.1/24 --if eth1=stdout,ip=198.51.100.1/24 --stats=json >/dev/null`)
	wantStatus(t, "host | sed | router", st, 0, 0, 0)
	rtr := parseStats(t, "router", sh.Stderr)
	wantCounter(t, rtr, "eth0", "rx_other_host", 10)
	wantCounter(t, rtr, "eth1", "tx_frames", 0)
	if d := rtr.iface(t, "eth0").Drops; d != 10 {
		t.Errorf("router eth0 drops %d, want 10", d)
	}
}

// TestStaticNeighbours: with --neigh on both sides, two hosts on a two-way
// link talk without a single ARP request.
func TestStaticNeighbours(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	sock := filepath.Join(shortDir(t), "l.sock")
	srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock + ",mac=02:00:00:00:00:02",
		"--ip", "192.0.2.2/24", "--neigh", "192.0.2.1 lladdr 02:00:00:00:00:01", "--serve", "echo tcp:7",
		"--stats=json", "--timeout", "20s"}})
	cli := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock+",mac=02:00:00:00:00:01",
		"--ip", "192.0.2.1/24", "--neigh", "192.0.2.2 lladdr 02:00:00:00:00:02 dev eth0",
		"--run", "ping 192.0.2.2 count=2 interval=100ms", "--run", "echo tcp 192.0.2.2:7 count=3", "--stats=json", "--timeout", "10s")
	wantCode(t, "client", cli, 0)
	wantContains(t, "client", cli.Stdout, "2 received, 0% packet loss", "3/3 messages echoed")
	stopWithin(t, srv, syscall.SIGTERM, 2*time.Second)
	for _, r := range []*statsReport{parseStats(t, "client", cli.Stdout), parseStats(t, "server", srv.stdout.String())} {
		if n := r.proto(t, "arp.outgoing_requests_sent"); n != 0 {
			t.Errorf("%s sent %d ARP requests despite static neighbours", r.Name, n)
		}
	}
}

// TestJumboMTU: mtu= raises the link MTU; 8000-byte pings and 8500-byte
// UDP echoes pass unfragmented.
func TestJumboMTU(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	sock := filepath.Join(shortDir(t), "l.sock")
	srv := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix-listen:" + sock + ",mtu=9000",
		"--ip", "192.0.2.2/24", "--serve", "echo udp:7", "--timeout", "20s"}})
	cli := nfpipe(t, ctx, 15*time.Second, "vnf", "host", "--if", "eth0=unix:"+sock+",mtu=9000", "--ip", "192.0.2.1/24",
		"--run", "ping 192.0.2.2 count=2 size=8000 interval=100ms", "--run", "echo udp 192.0.2.2:7 count=3 size=8500",
		"--stats=json", "--timeout", "10s")
	wantCode(t, "client", cli, 0)
	wantContains(t, "client", cli.Stdout, "8008 bytes from 192.0.2.2: icmp_seq=1", "echo udp 192.0.2.2:7: 3/3 messages echoed, 25500 bytes")
	rep := parseStats(t, "client", cli.Stdout)
	if got := rep.proto(t, "ip.outgoing_packet_errors"); got != 0 {
		t.Errorf("ip.outgoing_packet_errors = %d", got)
	}
	stopWithin(t, srv, syscall.SIGTERM, 2*time.Second)
}

// TestLinger: --linger keeps a function running after its input ended,
// until --timeout.
func TestLinger(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		linger   bool
		min, max time.Duration
	}{{false, 0, 900 * time.Millisecond}, {true, 1000 * time.Millisecond, 3 * time.Second}} {
		f, err := os.Open(empty)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"vnf", "host", "--if", "eth0=stdin", "--ip", "192.0.2.7/24", "--serve", "sink udp:9000", "--timeout", "1s"}
		if c.linger {
			args = append(args, "--linger")
		}
		began := time.Now()
		res := run(t, ctx, 10*time.Second, procSpec{Stdin: f, Args: args})
		took := time.Since(began)
		f.Close()
		wantCode(t, strings.Join(args, " "), res, 0)
		if took < c.min || took > c.max {
			t.Errorf("linger=%v: ran %v, want %v to %v", c.linger, took.Round(time.Millisecond), c.min, c.max)
		}
	}
}

// TestTwoRouters: static routes (--route, --gw) across two routers; the
// TTL drops by one per router, and a TTL that runs out at the second
// router is reported by it.
func TestTwoRouters(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 40*time.Second)
	dir := shortDir(t)
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	r1 := start(t, ctx, "r1", procSpec{Args: []string{"vnf", "router", "--name", "r1",
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24,ip=2001:db8:1::1/64",
		"--if", "eth1=unix-listen:" + b + ",ip=198.51.100.1/24,ip=2001:db8:2::1/64",
		"--route", "203.0.113.0/24 via 198.51.100.2", "--route", "2001:db8:3::/64 via 2001:db8:2::2 dev eth1", "--timeout", "30s"}})
	r2 := start(t, ctx, "r2", procSpec{Args: []string{"vnf", "router", "--name", "r2",
		"--if", "eth0=unix:" + b + ",ip=198.51.100.2/24,ip=2001:db8:2::2/64",
		"--if", "eth1=unix-listen:" + c + ",ip=203.0.113.1/24,ip=2001:db8:3::1/64",
		"--gw", "198.51.100.1", "--gw", "2001:db8:2::1", "--timeout", "30s"}})
	far := start(t, ctx, "far", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + c,
		"--ip", "203.0.113.7/24", "--ip", "2001:db8:3::7/64", "--gw", "203.0.113.1", "--gw", "2001:db8:3::1",
		"--serve", "http :80", "--timeout", "30s"}})
	r1.waitStderr(t, `msg="peer connected" vnf=r1 kind=router if=eth1`, 15*time.Second)
	r2.waitStderr(t, `msg="peer connected" vnf=r2 kind=router if=eth1`, 15*time.Second)
	near := func(runs ...string) result {
		args := []string{"vnf", "host", "--if", "eth0=unix:" + a, "--ip", "192.0.2.10/24", "--ip", "2001:db8:1::10/64",
			"--gw", "192.0.2.1", "--gw", "2001:db8:1::1", "--timeout", "15s"}
		for _, r := range runs {
			args = append(args, "--run", r)
		}
		return run(t, ctx, 20*time.Second, procSpec{Args: args})
	}
	res := near("ping 203.0.113.7 count=2 interval=100ms", "ping 2001:db8:3::7 count=2 interval=100ms",
		"http get http://203.0.113.7/", "http get http://[2001:db8:3::7]/")
	wantCode(t, "near host", res, 0)
	if n := len(regexp.MustCompile(`(?m)^64 bytes from \S+: icmp_seq=\d ttl=62 `).FindAllString(res.Stdout, -1)); n != 4 {
		t.Errorf("%d ping replies with ttl=62 (two routers), want 4:\n%s", n, res.Stdout)
	}
	wantContains(t, "near host", res.Stdout, "GET http://203.0.113.7/ -> 200 OK", "GET http://[2001:db8:3::7]/ -> 200 OK")
	res = near("ping 203.0.113.7 ttl=2 count=1")
	wantCode(t, "ping ttl=2", res, 1)
	wantContains(t, "ping ttl=2", res.Stdout, "From 198.51.100.2 icmp_seq=1 Time to live exceeded")
	for _, p := range []*proc{far, r2, r1} {
		stopWithin(t, p, syscall.SIGTERM, 2*time.Second)
	}
}
