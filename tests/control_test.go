package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/netstack/frame"
	"github.com/nfpipe/nfpipe/vnf"
)

// TestControlSocket drives a running router through --control: status,
// stats, a live pcap capture of one interface while a client pings through
// it, a rules reload, and stop.
func TestControlSocket(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	dir := shortDir(t)
	a, b, ctl := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "r.ctl")
	router := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router", "--control", ctl,
		"--if", "eth0=unix-listen:" + a + ",ip=192.0.2.1/24", "--if", "eth1=unix-listen:" + b + ",ip=198.51.100.1/24",
		"--rule", "-A FORWARD -p icmp -j ACCEPT"}})
	server := start(t, ctx, "server", procSpec{Args: []string{"vnf", "host", "--if", "eth0=unix:" + b, "--ip", "198.51.100.2/24", "--gw", "198.51.100.1"}})
	defer server.dumpAndKill()
	router.waitStderr(t, "peer connected", 10*time.Second)
	waitControl(t, ctx, ctl, 10*time.Second)

	call := func(req vnf.ControlRequest, reply any) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := vnf.Control(cctx, ctl, req, reply); err != nil {
			t.Fatalf("%s: %v", req.Op, err)
		}
	}
	var st vnf.Status
	call(vnf.ControlRequest{Op: "status"}, &st)
	if st.Name != "router" || st.Kind != "router" || len(st.Interfaces) != 2 || st.Interfaces[1].Name != "eth1" || st.PID == 0 {
		t.Errorf("status %+v", st)
	}
	// An unknown interface is an error naming the ones there are.
	var r vnf.ControlReply
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := vnf.Control(cctx, ctl, vnf.ControlRequest{Op: "capture", If: "eth9"}, &r)
	cancel()
	if err == nil || err.Error() != `no interface "eth9" (have: eth0, eth1)` {
		t.Errorf("capture of eth9: %v", err)
	}

	// Live capture of eth1 while the client pings through the router.
	conn, err := net.Dial("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(`{"op":"capture","if":"eth1"}` + "\n"))
	br := bufio.NewReader(conn)
	line, err := br.ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &r) != nil || !r.OK {
		t.Fatalf("capture reply %q, %v", line, err)
	}
	echoes := make(chan int, 1)
	go func() {
		n := 0
		rd := frame.NewReader(frame.PCAP, br)
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				echoes <- n
				return
			}
			// IPv4 ICMP echo request or reply: ethertype 0x0800, proto 1, type 8/0.
			if len(f) > 34 && f[12] == 0x08 && f[13] == 0 && f[23] == 1 && (f[34] == 8 || f[34] == 0) {
				n++
			}
		}
	}()
	client := nfpipe(t, ctx, 30*time.Second, "vnf", "host", "--if", "eth0=unix:"+a, "--ip", "192.0.2.2/24", "--gw", "192.0.2.1",
		"--run", "ping 198.51.100.2 count=3 interval=50ms")
	wantCode(t, "client", client, 0)

	var rep vnf.StatsReport
	call(vnf.ControlRequest{Op: "stats"}, &rep)
	if len(rep.Rules) == 0 || rep.Net.Interfaces[1].Counters["tx_frames"] == 0 {
		t.Errorf("stats: rules %+v, eth1 %+v", rep.Rules, rep.Net.Interfaces[1].Counters)
	}
	var forward uint64
	for _, c := range rep.Rules {
		if c.Chain == "FORWARD" && c.Family == "IPv4" {
			forward = c.Rules[0].Packets
		}
	}
	if forward != 6 {
		t.Errorf("FORWARD icmp rule counted %d packets, want 6 (3 requests, 3 replies)", forward)
	}
	call(vnf.ControlRequest{Op: "reload"}, &r)
	router.waitStderr(t, "rules reloaded", 5*time.Second)
	conn.Close() // ends the capture
	select {
	case n := <-echoes:
		if n != 6 {
			t.Errorf("the live capture of eth1 held %d echo frames, want 6", n)
		}
	case <-time.After(5 * time.Second):
		t.Error("the capture stream did not end when its client closed")
	}
	call(vnf.ControlRequest{Op: "stop"}, &r)
	if code := router.wait(t, 5*time.Second); code != 0 {
		t.Errorf("router stopped by the control socket: exit %d", code)
	}
	if _, err := net.Dial("unix", ctl); err == nil {
		t.Error("the control socket is still there after the router stopped")
	}
}
