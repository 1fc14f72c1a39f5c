package tests

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestChainHostfwd runs configs/hostfwd.yaml without root: the real curl on
// the host reaches a web server inside the chain through the gateway's
// --forward, and the chain's client echoes off a TCP echo server this test
// runs on the host's loopback, through the gateway's --expose.
func TestChainHostfwd(t *testing.T) {
	t.Parallel()
	needTool(t, "curl")
	ctx := testContext(t, time.Minute)
	ln, err := net.Listen("tcp", "127.0.0.1:17007")
	if err != nil {
		t.Fatalf("configs/hostfwd.yaml exposes the host's 127.0.0.1:17007, which is busy here: %v", err)
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
	root := shortDir(t)
	up := start(t, ctx, "chain up", procSpec{Args: []string{"chain", "up", "hostfwd.yaml", "--runtime-dir", root}, Dir: "../configs"})
	up.waitStderr(t, "chain hostfwd ready", 20*time.Second)
	var page string
	for deadline := time.Now().Add(3 * time.Second); ; {
		r := run(t, ctx, 10*time.Second, procSpec{Path: "curl", Args: []string{"-sS", "--max-time", "3", "http://127.0.0.1:18080/"}})
		if r.Code == 0 || time.Now().After(deadline) {
			wantCode(t, "curl through the gateway", r, 0)
			page = r.Stdout
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(page, "nfpipe host web: you are 203.0.113.2:") {
		t.Errorf("curl got %q, want web's greeting to the gateway's address", page)
	}
	if code := up.wait(t, 30*time.Second); code != 0 {
		t.Errorf("chain up: exit %d", code)
	}
	wantContains(t, "chain up", up.stdout.String(), "echo tcp 203.0.113.2:7: 3/3 messages echoed",
		"forward tcp:127.0.0.1:18080=198.51.100.10:80: 1 connection", "expose tcp:203.0.113.2:7=127.0.0.1:17007: 1 connection")
	wantContains(t, "chain up", up.stderr.String(), "chain hostfwd passed")
}
