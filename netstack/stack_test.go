package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

// build builds stacks concurrently (FIFO opens wait for their peers) and
// starts them, closing them at the end of the test.
func build(t *testing.T, cfgs ...Config) []*Stack {
	t.Helper()
	out := buildStopped(t, cfgs...)
	for _, s := range out {
		s.Start()
	}
	return out
}

// buildStopped builds stacks without starting them, for tests that must
// bind sockets before the first frame arrives.
func buildStopped(t *testing.T, cfgs ...Config) []*Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]*Stack, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			out[i], errs[i] = New(ctx, cfgs[i], log)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("stack %q: %v", cfgs[i].Name, err)
		}
		t.Cleanup(out[i].Close)
	}
	return out
}

func mustNIC(t *testing.T, spec string) NICConfig {
	t.Helper()
	n, err := ParseNIC(spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func cfg(t *testing.T, name string, fwd bool, routes []Route, specs ...string) Config {
	c := Config{Name: name, Forwarding: fwd, Routes: routes}
	for _, s := range specs {
		c.NICs = append(c.NICs, mustNIC(t, s))
	}
	return c
}

func waitDone(t *testing.T, s *Stack) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("receive side did not end")
	}
}

// TestOneWayPipeline sends UDP from a host through a router to a host over
// one-way links, as `host | router | host` does, and checks that every
// datagram arrives and every counter agrees. The stages run one after the
// other over files, so that no two stacks of this process run at once (see
// forwardMu); the tests/ package runs the same over real pipes between
// processes.
func TestOneWayPipeline(t *testing.T) {
	for _, fam := range []struct{ name, a, r0, r1, b, dst string }{
		{"ipv4", "192.0.2.10/24", "192.0.2.1/24", "198.51.100.1/24", "198.51.100.7/24", "198.51.100.7:9000"},
		{"ipv6", "2001:db8:1::10/64", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:2::7/64", "[2001:db8:2::7]:9000"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			dir := t.TempDir()
			f1, f2 := filepath.Join(dir, "f1"), filepath.Join(dir, "f2")
			const n = 500
			a := build(t, cfg(t, "a", false, nil, "eth0=none|file:"+f1+",ip="+fam.a))[0]
			dst := netip.MustParseAddrPort(fam.dst)
			c, err := a.DialUDP(context.Background(), dst)
			if err != nil {
				t.Fatal(err)
			}
			payload := make([]byte, 200)
			for i := range n {
				binary.BigEndian.PutUint64(payload, uint64(i))
				if _, err := c.Write(payload); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			c.Close()
			if !a.Drain(5 * time.Second) {
				t.Fatal("sender did not drain")
			}
			a.Close()

			r := build(t, cfg(t, "r", true, nil, "eth0=file:"+f1+"|none,ip="+fam.r0, "eth1=none|file:"+f2+",ip="+fam.r1))[0]
			waitDone(t, r)
			r.Drain(5 * time.Second)
			rs := r.Stats()
			r.Close()

			b := buildStopped(t, cfg(t, "b", false, nil, "eth0=file:"+f2+"|none,ip="+fam.b))[0]
			pc, err := b.ListenUDP(netip.AddrPortFrom(netip.Addr{}, dst.Port()))
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			b.Start()
			waitDone(t, b)
			count, buf := 0, make([]byte, 2000)
			for {
				pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := pc.ReadFrom(buf); err != nil {
					break
				}
				count++
			}
			if count != n {
				t.Errorf("received %d datagrams, want %d", count, n)
			}
			if got := rs.Interfaces[0].Counters["rx_frames"]; got != n {
				t.Errorf("router eth0 rx_frames = %d, want %d", got, n)
			}
			if got := rs.Interfaces[1].Counters["tx_frames"]; got != n {
				t.Errorf("router eth1 tx_frames = %d, want %d", got, n)
			}
			for _, ifc := range rs.Interfaces {
				if ifc.Drops != 0 {
					t.Errorf("router %s dropped %d frames: %v", ifc.Name, ifc.Drops, ifc.Counters)
				}
			}
		})
	}
}

// TestRouterTTL checks that the router answers TTL 1 with time-exceeded
// (gVisor alone forwards it with TTL 0) and forwards TTL 2 with TTL 1.
func TestRouterTTL(t *testing.T) {
	dir := t.TempDir()
	sa, sb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	routerCfg := cfg(t, "r", true, nil, "eth0=unix-listen:"+sa+",ip=192.0.2.1/24,ip=2001:db8:1::1/64", "eth1=unix-listen:"+sb+",ip=198.51.100.1/24,ip=2001:db8:2::1/64")
	r := build(t, routerCfg)[0]
	gw := func(s ...string) []Route {
		var out []Route
		for _, g := range s {
			rt, err := ParseRoute("default via " + g)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rt)
		}
		return out
	}
	st := build(t,
		cfg(t, "a", false, gw("192.0.2.1", "2001:db8:1::1"), "eth0=unix:"+sa+",ip=192.0.2.2/24,ip=2001:db8:1::2/64"),
		cfg(t, "b", false, gw("198.51.100.1", "2001:db8:2::1"), "eth0=unix:"+sb+",ip=198.51.100.2/24,ip=2001:db8:2::2/64"),
	)
	a := st[0]
	for _, tc := range []struct {
		dst, router string
		v6          bool
	}{{"198.51.100.2", "192.0.2.1", false}, {"2001:db8:2::2", "2001:db8:1::1", true}} {
		p, err := a.NewPinger(tc.v6)
		if err != nil {
			t.Fatal(err)
		}
		ping := func(seq uint16, ttl uint8) PingReply {
			t.Helper()
			if err := p.Send(netip.MustParseAddr(tc.dst), 7, seq, ttl, []byte("nfpipe")); err != nil {
				t.Fatal(err)
			}
			for {
				rep, err := p.Recv(time.Now().Add(5 * time.Second))
				if err != nil {
					t.Fatalf("ping %s ttl %d: %v", tc.dst, ttl, err)
				}
				if rep.ID == 7 && rep.Seq == seq {
					return rep
				}
			}
		}
		if rep := ping(1, 64); rep.Kind != EchoReply || rep.TTL != 63 || rep.From.String() != tc.dst {
			t.Errorf("ping %s: got %+v, want an echo reply from it with TTL 63", tc.dst, rep)
		}
		if rep := ping(2, 1); rep.Kind != TimeExceeded || rep.From.String() != tc.router {
			t.Errorf("ping %s ttl 1: got %+v, want time exceeded from %s", tc.dst, rep, tc.router)
		}
		if rep := ping(3, 2); rep.Kind != EchoReply || rep.TTL != 63 {
			t.Errorf("ping %s ttl 2: got %+v, want an echo reply", tc.dst, rep)
		}
		p.Close()
	}
	rs := r.Stats()
	if got := rs.Interfaces[0].Counters["rx_ttl_expired"]; got != 1 {
		t.Errorf("rx_ttl_expired = %d, want 1 (the IPv4 TTL-1 packet)", got)
	}
	if got := rs.Protocols["ip.forwarding.exhausted_ttl"]; got != 2 {
		t.Errorf("ip.forwarding.exhausted_ttl = %d, want 2 (one per family)", got)
	}
}

// ethFrame builds an Ethernet frame carrying an IPv4/UDP datagram.
func ethFrame(dstMAC, srcMAC []byte, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 14+20+8+len(payload))
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], ^checksum(ip[:20]))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload) // checksum 0: none, as IPv4 allows
	return b
}

// TestReceiveFilterAndMalformed replays a hex file with frames for this
// NIC, for another MAC, broadcast, and bad lines, and checks what is
// delivered and what is counted.
func TestReceiveFilterAndMalformed(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.hex")
	mac := DefaultMAC("h", "eth0", netip.MustParsePrefix("192.0.2.7/24"))
	src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.7")
	peer := []byte{2, 0, 0, 0, 0, 1}
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := frame.NewWriter(frame.Hex, f)
	w.WriteFrame(ethFrame(mac, peer, src, dst, 1000, 9000, []byte("for me")))
	w.WriteFrame(ethFrame([]byte{2, 9, 9, 9, 9, 9}, peer, src, dst, 1000, 9000, []byte("for another MAC")))
	w.WriteFrame(ethFrame([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peer, src, dst, 1000, 9000, []byte("broadcast")))
	w.Flush()
	f.WriteString("this is not hex\n0011 22\n")
	f.Close()

	b := buildStopped(t, cfg(t, "h", false, nil, "eth0=file:"+in+"|none,format=hex,ip=192.0.2.7/24"))[0]
	pc, err := b.ListenUDP(netip.MustParseAddrPort("0.0.0.0:9000"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	b.Start()
	waitDone(t, b)
	var got []string
	buf := make([]byte, 100)
	for {
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	if len(got) != 2 || got[0] != "for me" || got[1] != "broadcast" {
		t.Errorf("delivered %q, want [for me broadcast]", got)
	}
	c := b.Stats().Interfaces[0].Counters
	if c["rx_other_host"] != 1 || c["rx_malformed"] != 2 || c["rx_frames"] != 3 {
		t.Errorf("counters rx_frames=%d rx_other_host=%d rx_malformed=%d, want 3, 1, 2", c["rx_frames"], c["rx_other_host"], c["rx_malformed"])
	}
	if err := b.Err(); err != nil {
		t.Errorf("non-fatal bad lines must not fail the interface: %v", err)
	}
}

// TestFatalInput checks that a stream that cannot be resynchronised ends
// the interface with an error that names it.
func TestFatalInput(t *testing.T) {
	in := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(in, []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 0o600)
	s := build(t, cfg(t, "h", false, nil, "eth0=file:"+in+"|none,ip=192.0.2.7/24"))[0]
	waitDone(t, s)
	err := s.Err()
	if err == nil {
		t.Fatal("no error for a qemu length of 4294967295")
	}
	var me *frame.MalformedError
	if !errors.As(err, &me) || !me.Fatal {
		t.Errorf("error %v is not a fatal *frame.MalformedError", err)
	}
	if got := s.Stats().Interfaces[0].Counters["rx_malformed"]; got != 1 {
		t.Errorf("rx_malformed = %d, want 1", got)
	}
}

// TestBackpressure sends faster than a slow reader reads and checks that
// the sender waits instead of dropping: every frame arrives.
func TestBackpressure(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "out")
	if err := ensureFIFO(fifo); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	read := make(chan int)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			read <- -1
			return
		}
		defer f.Close()
		r := frame.NewReader(frame.QEMU, f)
		count := 0
		for {
			if _, err := r.ReadFrame(); err != nil {
				if err != io.EOF {
					t.Errorf("read: %v", err)
				}
				read <- count
				return
			}
			count++
			if count%200 == 0 {
				time.Sleep(5 * time.Millisecond) // a slow consumer
			}
		}
	}()
	a := build(t, cfg(t, "a", false, nil, "eth0=none|fifo:"+fifo+",ip=192.0.2.10/24"))[0]
	c, err := a.DialUDP(context.Background(), netip.MustParseAddrPort("192.0.2.7:9000"))
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1400)
	for i := 0; i < n; i++ {
		if _, err := c.Write(payload); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	c.Close()
	if !a.Drain(10 * time.Second) {
		t.Fatal("did not drain")
	}
	st := a.Stats().Interfaces[0]
	a.Close()
	if got := <-read; got != n {
		t.Errorf("reader got %d frames, want %d", got, n)
	}
	if st.Drops != 0 || st.Counters["tx_frames"] != n {
		t.Errorf("tx_frames=%d drops=%d, want %d and 0", st.Counters["tx_frames"], st.Drops, n)
	}
	if st.Counters["tx_waits"] == 0 {
		t.Log("the sender never had to wait; the reader was fast enough this time")
	}
}

// TestPcapReplayTiming replays a capture whose records are 150 ms apart,
// as fast as possible and then with timing=original.
func TestPcapReplayTiming(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	i := 0
	w := frame.NewPcapWriter(f, func() time.Time { i++; return t0.Add(time.Duration(i) * 150 * time.Millisecond) })
	mac := DefaultMAC("h", "eth0", netip.MustParsePrefix("192.0.2.7/24"))
	for range 3 {
		w.WriteFrame(ethFrame(mac, []byte{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.7"), 1000, 9000, []byte("x")))
	}
	w.Flush()
	f.Close()
	for _, tc := range []struct {
		opt      string
		min, max time.Duration
	}{{"", 0, 250 * time.Millisecond}, {",timing=original", 280 * time.Millisecond, 2 * time.Second}} {
		start := time.Now()
		s := build(t, cfg(t, "h", false, nil, "eth0=pcap:"+in+"|none,ip=192.0.2.7/24"+tc.opt))[0]
		waitDone(t, s)
		took := time.Since(start)
		if n := s.Stats().Interfaces[0].Counters["rx_frames"]; n != 3 {
			t.Errorf("%q: replayed %d frames, want 3", tc.opt, n)
		}
		if took < tc.min || took > tc.max {
			t.Errorf("%q: replay took %s, want %s..%s", tc.opt, took, tc.min, tc.max)
		}
		s.Close()
	}
}

// TestSessionPeerGone: on a unix-listen link, a frame whose write finds
// that the peer stopped reading (EPIPE) is counted as having no path, like
// every frame until the next peer connects, not as an I/O error.
func TestSessionPeerGone(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	c := cfg(t, "h", false, nil, "eth0=unix-listen:"+sock+",ip=192.0.2.1/24")
	c.Neighbors = []Neighbor{{Addr: netip.MustParseAddr("192.0.2.2"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}}
	h := build(t, c)[0]
	peer, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	// The peer stops reading but keeps its end open: our reader sees no
	// end of input, and our next write fails with EPIPE.
	if err := peer.(*net.UnixConn).CloseRead(); err != nil {
		t.Fatal(err)
	}
	conn, err := h.DialUDP(context.Background(), netip.MustParseAddrPort("192.0.2.2:9"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	var ctr map[string]uint64
	for time.Now().Before(deadline) {
		conn.Write([]byte("x"))
		time.Sleep(10 * time.Millisecond)
		ctr = h.Stats().Interfaces[0].Counters
		if ctr["tx_no_path"] >= 2 {
			break
		}
	}
	if ctr["tx_no_path"] < 2 || ctr["tx_errors"] != 0 {
		t.Fatalf("tx_no_path=%d tx_errors=%d, want every frame after the peer left counted as tx_no_path (at least 2) and no tx_errors", ctr["tx_no_path"], ctr["tx_errors"])
	}
}
