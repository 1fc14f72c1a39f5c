package hostapp

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
)

// TestConns: many connections open at once against the echo server, each
// echoing twice; the server saw every one.
func TestConns(t *testing.T) {
	checkGoroutines(t)
	env, out := testEnv(t, loopNet{})
	srv := startServe(t, "echo tcp:127.0.0.1:0", env)
	spec := fmt.Sprintf("conns %s count=200 parallel=16 size=32", srv.dialable())
	c, err := runClient(t, spec, env)
	if err != nil {
		t.Fatalf("%s: %v", spec, err)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
	st := c.Stats().(ConnsStats)
	if st.Count != 200 || st.Opened != 200 || st.OpenFailed != 0 || st.Echoed != 200 || st.EchoFailed != 0 || st.SetupRate <= 0 {
		t.Errorf("stats = %+v, want 200 opened and echoed again", st)
	}
	ss := srv.app.Stats().(EchoServerStats)
	if ss.Connections != 200 || ss.Bytes != 200*2*32 {
		t.Errorf("server: %d connections, %d bytes; want 200 and %d", ss.Connections, ss.Bytes, 200*2*32)
	}
	want := regexp.MustCompile(`^conns ` + regexp.QuoteMeta(srv.dialable().String()) + `: 200/200 opened in [0-9.]+s \([0-9]+/s\), 200/200 echoed again once all were open\n$`)
	if !want.MatchString(out.String()) {
		t.Errorf("output = %q", out.String())
	}
	checkJSON(t, c)
}

// TestConnsFailures: connections that cannot open fail the client, with
// counts and the first error.
func TestConnsFailures(t *testing.T) {
	checkGoroutines(t)
	env, _ := testEnv(t, loopNet{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens: every dial is refused
	c, err := runClient(t, "conns "+addr+" count=5 parallel=2 timeout=2s", env)
	if err == nil || !strings.Contains(err.Error(), "5 of 5 connections failed to open") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v, want 5 of 5 failed to open, refused", err)
	}
	if st := c.Stats().(ConnsStats); st.Opened != 0 || st.OpenFailed != 5 || st.FirstError == "" {
		t.Errorf("stats = %+v", st)
	}
}

func TestConnsSpecErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"conns":                        "missing ADDR:PORT",
		"conns 192.0.2.1:7 count=0":    "count",
		"conns 192.0.2.1:7 size=4":     "size",
		"conns 192.0.2.1:7 paralel=4":  `did you mean "parallel"`,
		"conns 192.0.2.1:7 parallel=0": "parallel",
	} {
		_, err := ParseRun(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to mention %q", spec, err, want)
		}
	}
}
