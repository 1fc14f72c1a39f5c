package hostapp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePinger answers echo requests in-process, as a script says.
type fakePinger struct {
	v6      bool
	script  func(dst netip.Addr, id, seq uint16, ttl uint8, size int) []fakeReply
	replies chan PingReply
	closed  chan struct{}
	once    sync.Once
}

// fakeReply is one scripted answer, delivered after a delay.
type fakeReply struct {
	after time.Duration
	PingReply
}

var _ Pinger = (*fakePinger)(nil)

func (f *fakePinger) Send(dst netip.Addr, id, seq uint16, ttl uint8, payload []byte) error {
	for _, r := range f.script(dst, id, seq, ttl, len(payload)) {
		go func() {
			time.Sleep(r.after)
			select {
			case f.replies <- r.PingReply:
			case <-f.closed:
			}
		}()
	}
	return nil
}

func (f *fakePinger) Recv(deadline time.Time) (PingReply, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-f.replies:
		return r, nil
	case <-t.C:
		return PingReply{}, fmt.Errorf("recv: %w", os.ErrDeadlineExceeded)
	case <-f.closed:
		return PingReply{}, errors.New("recv: pinger closed")
	}
}

func (f *fakePinger) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// pingNet is loopNet with a scripted pinger.
type pingNet struct {
	loopNet
	script func(dst netip.Addr, id, seq uint16, ttl uint8, size int) []fakeReply
}

func (n pingNet) NewPinger(v6 bool) (Pinger, error) {
	return &fakePinger{v6: v6, script: n.script, replies: make(chan PingReply, 64), closed: make(chan struct{})}, nil
}

// echoOf is the echo reply a healthy target sends.
func echoOf(dst netip.Addr, id, seq uint16, size int) fakeReply {
	return fakeReply{PingReply: PingReply{From: dst, Kind: EchoReply, ID: id, Seq: seq, TTL: 64, Size: size + 8}}
}

// maskPing hides the timing figures of ping output.
func maskPing(s string) string {
	s = regexp.MustCompile(`time=[0-9.]+ ms`).ReplaceAllString(s, "time=X ms")
	s = regexp.MustCompile(`time \d+ms`).ReplaceAllString(s, "time Nms")
	return regexp.MustCompile(`= [0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+ ms`).ReplaceAllString(s, "= X/X/X/X ms")
}

func TestPing(t *testing.T) {
	router := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name    string
		spec    string
		script  func(dst netip.Addr, id, seq uint16, ttl uint8, size int) []fakeReply
		want    []string
		wantErr string
		check   func(t *testing.T, st PingStats)
	}{{
		name: "all answered",
		spec: "ping 192.0.2.2 count=3 interval=50ms",
		script: func(dst netip.Addr, id, seq uint16, ttl uint8, size int) []fakeReply {
			r := echoOf(dst, id, seq, size)
			r.after = 2 * time.Millisecond
			return []fakeReply{r}
		},
		want: []string{
			"PING 192.0.2.2 56(84) bytes of data.",
			"64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=X ms",
			"64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=X ms",
			"64 bytes from 192.0.2.2: icmp_seq=3 ttl=64 time=X ms",
			"",
			"--- 192.0.2.2 ping statistics ---",
			"3 packets transmitted, 3 received, 0% packet loss, time Nms",
			"rtt min/avg/max/mdev = X/X/X/X ms",
		},
		check: func(t *testing.T, st PingStats) {
			if st.Received != 3 || st.RTTMinMs < 2 || st.RTTMaxMs < st.RTTAvgMs || st.LossPercent != 0 {
				t.Errorf("stats = %+v, want 3 received with rtt ≥ 2 ms", st)
			}
		},
	}, {
		name: "ttl exceeded, lost, unreachable, foreign",
		spec: "ping 192.0.2.2 count=5 interval=50ms size=100 ttl=9 timeout=300ms",
		script: func(dst netip.Addr, id, seq uint16, ttl uint8, size int) []fakeReply {
			if ttl != 9 {
				return nil
			}
			switch seq {
			case 2:
				return []fakeReply{
					// Someone else's ping on the same stack: ignored.
					echoOf(dst, id+1, seq, size),
					{PingReply: PingReply{From: router, Kind: TimeExceeded, ID: id, Seq: seq, TTL: 255, Size: 36}},
				}
			case 3:
				return nil
			case 4:
				return []fakeReply{{PingReply: PingReply{From: router, Kind: Unreachable, Code: 3, ID: id, Seq: seq, TTL: 255, Size: 36}}}
			}
			return []fakeReply{echoOf(dst, id, seq, size)}
		},
		want: []string{
			"PING 192.0.2.2 100(128) bytes of data.",
			"108 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=X ms",
			"From 192.0.2.1 icmp_seq=2 Time to live exceeded",
			"From 192.0.2.1 icmp_seq=4 Destination unreachable (code 3)",
			"108 bytes from 192.0.2.2: icmp_seq=5 ttl=64 time=X ms",
			"",
			"--- 192.0.2.2 ping statistics ---",
			"5 packets transmitted, 2 received, +2 errors, 60% packet loss, time Nms",
			"rtt min/avg/max/mdev = X/X/X/X ms",
		},
		wantErr: "ping 192.0.2.2: 3 of 5 replies missing (60% loss)",
		check: func(t *testing.T, st PingStats) {
			if st.Transmitted != 5 || st.Received != 2 || st.Errors != 2 || st.LossPercent != 60 {
				t.Errorf("stats = %+v", st)
			}
		},
	}, {
		name: "ipv6 with a duplicate",
		spec: "ping 2001:db8::2 count=2 interval=100ms",
		script: func(dst netip.Addr, id, seq uint16, ttl uint8, size int) []fakeReply {
			r := echoOf(dst, id, seq, size)
			if seq == 1 {
				d := r
				d.after = 5 * time.Millisecond
				return []fakeReply{r, d}
			}
			return []fakeReply{r}
		},
		want: []string{
			"PING 2001:db8::2 56(104) bytes of data.",
			"64 bytes from 2001:db8::2: icmp_seq=1 ttl=64 time=X ms",
			"64 bytes from 2001:db8::2: icmp_seq=1 ttl=64 time=X ms (DUP!)",
			"64 bytes from 2001:db8::2: icmp_seq=2 ttl=64 time=X ms",
			"",
			"--- 2001:db8::2 ping statistics ---",
			"2 packets transmitted, 2 received, +1 duplicates, 0% packet loss, time Nms",
			"rtt min/avg/max/mdev = X/X/X/X ms",
		},
	}, {
		name:   "all lost",
		spec:   "ping 192.0.2.2 count=3 interval=0s timeout=100ms",
		script: func(netip.Addr, uint16, uint16, uint8, int) []fakeReply { return nil },
		want: []string{
			"PING 192.0.2.2 56(84) bytes of data.",
			"",
			"--- 192.0.2.2 ping statistics ---",
			"3 packets transmitted, 0 received, 100% packet loss, time Nms",
		},
		wantErr: "ping 192.0.2.2: 3 of 3 replies missing (100% loss)",
	}, {
		name: "one in three lost",
		spec: "ping 192.0.2.2 count=3 interval=0s timeout=100ms",
		script: func(dst netip.Addr, id, seq uint16, _ uint8, size int) []fakeReply {
			return []fakeReply{echoOf(dst, id, seq, size)}[:min(int(seq)%3, 1)]
		},
		wantErr: "ping 192.0.2.2: 1 of 3 replies missing (33.3333% loss)",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			env, out := testEnv(t, pingNet{script: tc.script})
			start := time.Now()
			app, err := runClient(t, tc.spec, env)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.wantErr == "" && time.Since(start) > time.Second {
				t.Errorf("took %v: ping should stop once every reply is in", time.Since(start))
			}
			if tc.want != nil {
				if got, want := maskPing(out.String()), strings.Join(tc.want, "\n")+"\n"; got != want {
					t.Errorf("output:\n%s\nwant:\n%s", got, want)
				}
			}
			if tc.check != nil {
				tc.check(t, app.Stats().(PingStats))
			}
			checkJSON(t, app)
		})
	}
}

func TestPingWithoutPinger(t *testing.T) {
	env, _ := testEnv(t, loopNet{})
	_, err := runClient(t, "ping 127.0.0.1 count=1", env)
	if want := "ping 127.0.0.1: ping needs a user-space stack"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestFmtRTT(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{412 * time.Microsecond, "0.412"},
		{1234 * time.Microsecond, "1.23"},
		{12345 * time.Microsecond, "12.3"},
		{123456 * time.Microsecond, "123"},
	} {
		if got := fmtRTT(tc.d); got != tc.want {
			t.Errorf("fmtRTT(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
