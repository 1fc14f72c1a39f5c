package hostapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// maskNumbers replaces the figures that depend on timing.
var maskTimes = regexp.MustCompile(`[0-9.]+ (ms|s|Gbit/s|Mbit/s|kbit/s|bit/s)\b`)

func TestEchoClientServer(t *testing.T) {
	checkGoroutines(t)
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			env, out := testEnv(t, loopNet{})
			srv := startServe(t, "echo "+proto+":127.0.0.1:0", env)
			spec := fmt.Sprintf("echo %s %s count=20 size=100", proto, srv.dialable())
			client, err := runClient(t, spec, env)
			if err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
			if err := srv.stop(); err != nil {
				t.Fatalf("server: %v", err)
			}
			cs := client.Stats().(EchoClientStats)
			if cs.Sent != 20 || cs.Echoed != 20 || cs.Missing != 0 || cs.Corrupt != 0 || cs.Bytes != 2000 {
				t.Errorf("client stats = %+v, want 20 sent and echoed, 2000 bytes", cs)
			}
			ss := srv.app.Stats().(EchoServerStats)
			if ss.Bytes != 2000 {
				t.Errorf("server echoed %d bytes, want 2000", ss.Bytes)
			}
			if proto == "udp" && ss.Messages != 20 {
				t.Errorf("server echoed %d datagrams, want 20", ss.Messages)
			}
			if proto == "tcp" && ss.Connections != 1 {
				t.Errorf("server saw %d connections, want 1", ss.Connections)
			}
			want := fmt.Sprintf("echo %s %s: 20/20 messages echoed, 2000 bytes, rtt avg X\n", proto, srv.dialable())
			if got := maskTimes.ReplaceAllString(out.String(), "X"); got != want {
				t.Errorf("output = %q, want %q", got, want)
			}
			checkJSON(t, client, srv.app)
		})
	}
}

// TestEchoClientFailures checks that silence and corruption fail the
// client with counts.
func TestEchoClientFailures(t *testing.T) {
	// A UDP peer that answers every datagram with one byte flipped, and
	// stays silent for the second message.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 65536)
		for i := 0; ; i++ {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if i == 1 {
				continue
			}
			buf[n-1] ^= 0xff
			pc.WriteTo(buf[:n], from)
		}
	}()
	env, out := testEnv(t, loopNet{})
	addr := pc.LocalAddr().String()
	client, err := runClient(t, "echo udp "+addr+" count=3 size=32 timeout=200ms", env)
	want := "echo udp " + addr + ": 3 of 3 messages not echoed (1 missing, 2 corrupt)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if cs := client.Stats().(EchoClientStats); cs.Echoed != 0 || cs.Missing != 1 || cs.Corrupt != 2 {
		t.Errorf("stats = %+v", cs)
	}
	if got, want := out.String(), "echo udp "+addr+": 0/3 messages echoed, 0 bytes, 2 corrupt\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestGenSinkUDP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expect  int64
		wantErr string // %s is the sink's label
	}{
		{"exact", 1000, ""},
		{"not set", -1, ""},
		{"mismatch", 1001, "sink %s: got 1000 packets, expected 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			env, out := testEnv(t, loopNet{})
			env.Expect = tc.expect
			srv := startServe(t, "sink udp:127.0.0.1:0", env)
			label := "udp:" + srv.addr.String()
			// Paced so that a busy test machine does not overflow the
			// kernel's receive buffer; the sink must still count every
			// datagram that arrived before it was stopped.
			gen, err := runClient(t, fmt.Sprintf("gen udp %s count=1000 size=200 rate=20000pps", srv.dialable()), env)
			if err != nil {
				t.Fatalf("gen: %v", err)
			}
			err = srv.stop()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("sink: %v", err)
			}
			if want := fmt.Sprintf(tc.wantErr, label); tc.wantErr != "" && (err == nil || err.Error() != want) {
				t.Fatalf("sink err = %v, want %q", err, want)
			}
			gs := gen.Stats().(GenStats)
			if gs.Packets != 1000 || gs.Bytes != 200000 {
				t.Errorf("gen stats = %+v", gs)
			}
			st := srv.app.Stats().(SinkStats)
			if st.Packets != 1000 || st.Bytes != 200000 || len(st.Flows) != 1 || st.Lost != 0 || st.Duplicates != 0 {
				t.Errorf("sink stats = %+v, want 1000 packets, 200000 bytes, 1 flow, no loss", st)
			}
			text := out.String()
			for _, want := range []string{
				fmt.Sprintf("gen udp -> %s: 1000 packets, 200000 bytes in ", srv.dialable()),
				fmt.Sprintf("sink %s: 1000 packets, 200000 bytes from 1 flow\n", label),
				"  from             packets   bytes  lost  dup  reord  seconds",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			checkJSON(t, gen, srv.app)
		})
	}
}

func TestGenSinkTCP(t *testing.T) {
	checkGoroutines(t)
	env, out := testEnv(t, loopNet{})
	env.Expect = 500 * 1000
	srv := startServe(t, "sink tcp:127.0.0.1:0", env)
	gen, err := runClient(t, fmt.Sprintf("gen tcp %s count=500 size=1000", srv.dialable()), env)
	if err != nil {
		t.Fatalf("gen: %v", err)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("sink: %v", err)
	}
	if gs := gen.Stats().(GenStats); gs.Packets != 500 || gs.Bytes != 500000 {
		t.Errorf("gen stats = %+v", gs)
	}
	st := srv.app.Stats().(SinkStats)
	if st.Bytes != 500000 || len(st.Flows) != 1 || st.Flows[0].Connections != 1 {
		t.Errorf("sink stats = %+v, want 500000 bytes over 1 connection", st)
	}
	if want := fmt.Sprintf("sink tcp:%s: 500000 bytes from 1 flow\n", srv.addr); !strings.HasSuffix(out.String(), want) {
		t.Errorf("output does not end with %q:\n%s", want, out.String())
	}

	// The same sink contract with a wrong expectation.
	env.Expect = 1
	srv = startServe(t, "sink tcp 127.0.0.1:0", env)
	if _, err := runClient(t, fmt.Sprintf("gen tcp %s count=3 size=10", srv.dialable()), env); err != nil {
		t.Fatalf("gen: %v", err)
	}
	want := fmt.Sprintf("sink tcp:%s: got 30 bytes, expected 1", srv.addr)
	if err := srv.stop(); err == nil || err.Error() != want {
		t.Errorf("sink err = %v, want %q", err, want)
	}
}

// TestSinkDrains sends a burst and stops the sink at once: every datagram
// the kernel already holds must be counted.
func TestSinkDrains(t *testing.T) {
	checkGoroutines(t)
	env, _ := testEnv(t, loopNet{})
	env.Expect = 200
	srv := startServe(t, "sink udp 127.0.0.1:0", env)
	c, err := net.Dial("udp", srv.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 100)
	for i := range 200 {
		msg[7] = byte(i)
		msg[6] = byte(i >> 8)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // stay within the receive buffer
		}
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("sink: %v", err)
	}
}

func TestSeqTracker(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		seqs                  []uint64
		lost, dups, reordered int64
	}{
		{"in order", []uint64{0, 1, 2, 3}, 0, 0, 0},
		{"gap", []uint64{0, 1, 4, 5}, 2, 0, 0},
		{"duplicate", []uint64{0, 1, 1, 2}, 0, 1, 0},
		{"reordered", []uint64{0, 2, 1, 3}, 0, 0, 1},
		{"late first", []uint64{5, 6, 4, 3}, 0, 0, 2},
		{"jump beyond the window", []uint64{0, seqWindow + 10, 1}, seqWindow + 8, 0, 1},
		// Beyond the window a duplicate cannot be told from a late
		// arrival: it counts as one, and lost is one short.
		{"duplicate of a slid-out number", []uint64{0, 1, seqWindow + 1, 1}, seqWindow - 2, 0, 1},
		{"starts mid-stream", []uint64{1000, 1001, 1003}, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s seqTracker
			for _, x := range tc.seqs {
				s.add(x)
			}
			if s.lost() != tc.lost || s.dups != tc.dups || s.reordered != tc.reordered {
				t.Errorf("lost %d dups %d reordered %d, want %d %d %d", s.lost(), s.dups, s.reordered, tc.lost, tc.dups, tc.reordered)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	checkGoroutines(t)
	env, out := testEnv(t, loopNet{})
	srv := startServe(t, "http 127.0.0.1:0", env)
	base := fmt.Sprintf("http://%s", srv.dialable())

	client, err := runClient(t, "http get "+base+"/bytes/1000 count=2", env)
	if err != nil {
		t.Fatalf("get /bytes/1000: %v", err)
	}
	if st := client.Stats().(HTTPClientStats); st.Requests != 2 || st.OK != 2 || st.Bytes != 2000 || st.LastStatus != 200 {
		t.Errorf("client stats = %+v", st)
	}
	if _, err := runClient(t, "http get "+base+"/nothing-here expect=404", env); err != nil {
		t.Errorf("expect=404: %v", err)
	}
	_, err = runClient(t, "http get "+base+"/nothing-here", env)
	if want := "http get " + base + "/nothing-here: got 404 Not Found, expected 200"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if _, err := runClient(t, "http get "+base+"/healthz", env); err != nil {
		t.Errorf("healthz: %v", err)
	}

	// The greeting, read with a plain client to see the body.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(base + "/?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`^nfpipe host: you are 127\.0\.0\.1:\d+, you asked for /\?x=1\n$`).Match(body) {
		t.Errorf("greeting = %q", body)
	}

	if err := srv.stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
	st := srv.app.Stats().(HTTPServerStats)
	if st.Requests != 6 || st.ByStatus[200] != 4 || st.ByStatus[404] != 2 {
		t.Errorf("server stats = %+v, want 6 requests: 4×200, 2×404", st)
	}
	want := strings.Join([]string{
		"GET " + base + "/bytes/1000 -> 200 OK, 1000 bytes in X",
		"GET " + base + "/bytes/1000 -> 200 OK, 1000 bytes in X",
		"GET " + base + "/nothing-here -> 404 Not Found, 19 bytes in X: 404 page not found",
		"GET " + base + "/nothing-here -> 404 Not Found, 19 bytes in X: 404 page not found",
		"GET " + base + "/healthz -> 200 OK, 3 bytes in X: ok",
		"http server " + srv.addr.String() + ": 6 requests, " + fmt.Sprint(st.Bytes) + " bytes",
		"",
	}, "\n")
	if got := maskTimes.ReplaceAllString(out.String(), "X"); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	checkJSON(t, client, srv.app)
}

func TestHTTPBadBytes(t *testing.T) {
	env, _ := testEnv(t, loopNet{})
	srv := startServe(t, "http 127.0.0.1:0", env)
	base := fmt.Sprintf("http://%s", srv.dialable())
	for _, path := range []string{"/bytes/x", "/bytes/-1", "/bytes/1073741825"} {
		if _, err := runClient(t, "http get "+base+path+" expect=400", env); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestBulk(t *testing.T) {
	checkGoroutines(t)
	env, out := testEnv(t, loopNet{})
	srv := startServe(t, "bulk 127.0.0.1:0", env)
	client, err := runClient(t, fmt.Sprintf("bulk %s seconds=1 size=64K", srv.dialable()), env)
	if err != nil {
		t.Fatalf("bulk: %v", err)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
	cs := client.Stats().(BulkClientStats)
	ss := srv.app.Stats().(BulkServerStats)
	if cs.SentBytes == 0 || cs.ReceivedBytes != cs.SentBytes || ss.Bytes != cs.SentBytes {
		t.Errorf("sent %d, receiver answered %d, server counted %d: want all equal and non-zero", cs.SentBytes, cs.ReceivedBytes, ss.Bytes)
	}
	if ss.Connections != 1 || len(ss.Recent) != 1 || !ss.Recent[0].Complete {
		t.Errorf("server stats = %+v", ss)
	}
	if len(cs.Intervals) == 0 {
		t.Errorf("no intervals")
	}
	var sum int64
	for _, iv := range cs.Intervals {
		sum += iv.Bytes
	}
	if sum != cs.SentBytes {
		t.Errorf("intervals add up to %d bytes, sent %d", sum, cs.SentBytes)
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^\[  0\.00-\d+\.\d\d s\]  [0-9.]+ [KMG]?Bytes  [0-9.]+ [kMG]?bit/s$`,
		`(?m)^bulk ` + regexp.QuoteMeta(srv.dialable().String()) + `: sent [0-9.]+ [KMG]?Bytes in \d+\.\d\d s = [0-9.]+ [kMG]?bit/s; receiver got [0-9.]+ [KMG]?Bytes = [0-9.]+ [kMG]?bit/s$`,
		`(?m)^bulk: received [0-9.]+ [KMG]?Bytes from 127\.0\.0\.1:\d+ in [0-9.]+ s = [0-9.]+ [kMG]?bit/s$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s:\n%s", re, text)
		}
	}
	checkJSON(t, client, srv.app)
}

// TestServerStopsWithOpenConnections checks that servers return when
// stopped even while a client holds a connection open.
func TestServerStopsWithOpenConnections(t *testing.T) {
	for _, spec := range []string{"echo tcp:127.0.0.1:0", "bulk 127.0.0.1:0", "sink tcp:127.0.0.1:0", "http 127.0.0.1:0"} {
		t.Run(spec, func(t *testing.T) {
			checkGoroutines(t)
			env, _ := testEnv(t, loopNet{})
			srv := startServe(t, spec, env)
			c, err := net.Dial("tcp", srv.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("x"))
			time.Sleep(20 * time.Millisecond)
			start := time.Now()
			if err := srv.stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v to stop", d)
			}
		})
	}
}

func TestClientStopsOnCancel(t *testing.T) {
	env, _ := testEnv(t, loopNet{})
	srv := startServe(t, "sink udp:127.0.0.1:0", env)
	app, err := ParseRun(fmt.Sprintf("gen udp %s duration=1h rate=100", srv.dialable()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = app.Run(ctx, env)
	if err == nil || !strings.Contains(err.Error(), "stopped after") {
		t.Errorf("err = %v, want a stop error", err)
	}
}

// checkJSON checks that every app's Stats marshals.
func checkJSON(t *testing.T, apps ...App) {
	t.Helper()
	for _, a := range apps {
		if _, err := json.Marshal(a.Stats()); err != nil {
			t.Errorf("%s: Stats does not marshal: %v", a.Name(), err)
		}
	}
}
