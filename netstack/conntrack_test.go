package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/netstack/rules"
)

// TestConntrackFull fills a two-flow conntrack table and checks that new
// flows are dropped and counted while the admitted ones keep working, and
// that a flow that times out frees its slot.
func TestConntrackFull(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ct.sock")
	srvCfg := cfg(t, "srv", false, nil, "eth0=unix-listen:"+sock+",ip=192.0.2.2/24")
	srvCfg.Conntrack = ConntrackConfig{Max: 2, Timeouts: ConntrackTimeouts{UDP: 2 * time.Second}}
	cliCfg := cfg(t, "cli", false, nil, "eth0=unix:"+sock+",ip=192.0.2.1/24")
	st := buildStopped(t, srvCfg, cliCfg)
	srv, cli := st[0], st[1]
	rs := &rules.Ruleset{}
	if err := rs.AddCommands("--rule", []string{"-A INPUT -j ACCEPT"}, rules.ParseOptions{Family: rules.IPv4}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ApplyRules(rs); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.ListenTCP(netip.MustParseAddrPort("0.0.0.0:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	udp := map[uint16]net.PacketConn{}
	got := map[uint16]chan string{}
	for _, p := range []uint16{9001, 9002} {
		pc, err := srv.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), p))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		udp[p], got[p] = pc, make(chan string, 16)
		go func() {
			b := make([]byte, 100)
			for {
				n, _, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				got[p] <- string(b[:n])
			}
		}()
	}
	srv.Start()
	cli.Start()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	echo, err := cli.DialTCP(ctx, netip.MustParseAddrPort("192.0.2.2:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	roundTrip := func(msg string) {
		t.Helper()
		echo.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := echo.Write([]byte(msg)); err != nil {
			t.Fatalf("echo write %q: %v", msg, err)
		}
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(echo, b); err != nil || string(b) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, b, err)
		}
	}
	roundTrip("first")
	send := func(port uint16, msg string) {
		t.Helper()
		c, err := cli.DialUDP(ctx, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(port uint16, msg string, arrives bool) {
		t.Helper()
		wait := 2 * time.Second
		if !arrives {
			wait = 300 * time.Millisecond
		}
		select {
		case m := <-got[port]:
			if !arrives || m != msg {
				t.Fatalf("port %d: got %q, want %q (arrives %v)", port, m, msg, arrives)
			}
		case <-time.After(wait):
			if arrives {
				t.Fatalf("port %d: %q did not arrive", port, msg)
			}
		}
	}
	send(9001, "udp-1") // the second flow: the table is now full
	udpSent := time.Now()
	expect(9001, "udp-1", true)
	send(9002, "udp-2") // a third flow: refused
	expect(9002, "udp-2", false)
	// A new TCP connection is refused too (its SYN is dropped).
	dctx, dcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if c, err := cli.DialTCP(dctx, netip.MustParseAddrPort("192.0.2.2:7")); err == nil {
		c.Close()
		t.Error("a new TCP connection got through a full conntrack table")
	}
	dcancel()
	roundTrip("still-established") // the admitted flow keeps working
	cs := srv.Stats().Conntrack
	if cs == nil || cs.Count != 2 || cs.Max != 2 || cs.Dropped < 2 {
		t.Fatalf("conntrack stats %+v, want count 2, max 2, dropped >= 2", cs)
	}
	// The UDP flow times out after 2s; its slot goes to a new flow.
	time.Sleep(time.Until(udpSent.Add(2200 * time.Millisecond)))
	send(9002, "udp-3")
	expect(9002, "udp-3", true)
	roundTrip("after-expiry")
	cs = srv.Stats().Conntrack
	if cs.Count != 2 || cs.Expired < 1 {
		t.Fatalf("conntrack stats after expiry %+v, want count 2 and one expired", cs)
	}
}

func TestConntrackTimeoutsSet(t *testing.T) {
	var to ConntrackTimeouts
	for _, s := range []string{"udp=5s", "tcp_established=3600", "icmp=1m"} {
		if err := to.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if to.UDP != 5*time.Second || to.TCPEstablished != time.Hour || to.ICMP != time.Minute {
		t.Fatalf("got %+v", to)
	}
	d := to.withDefaults()
	if d.UDPStream != 120*time.Second || d.UDP != 5*time.Second {
		t.Fatalf("defaults %+v", d)
	}
	for s, want := range map[string]string{
		"udp":         `conntrack timeout "udp": want NAME=DURATION, e.g. udp=30s`,
		"tpc=3s":      `conntrack timeout "tpc=3s": unknown name "tpc" (known: tcp_syn_sent, tcp_established, tcp_fin_wait, tcp_close, udp, udp_stream, icmp)`,
		"udp=soon":    `conntrack timeout "udp=soon": "soon" is not a duration (30s, 5m, or seconds)`,
		"udp=-1s":     `conntrack timeout "udp=-1s": must be positive`,
		"udp=0":       `conntrack timeout "udp=0": must be positive`,
		"icmp=12abcd": `conntrack timeout "icmp=12abcd": "12abcd" is not a duration (30s, 5m, or seconds)`,
	} {
		if err := to.Set(s); err == nil || err.Error() != want {
			t.Errorf("Set(%q) = %v, want %s", s, err, want)
		}
	}
}
