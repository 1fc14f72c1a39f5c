package hostapp

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	const pingU = "(usage: ping ADDR [count=5] [interval=1s] [size=56] [ttl=64] [timeout=2s])"
	for _, tc := range []struct {
		name  string
		serve bool
		spec  string
		want  string
	}{
		// Application names.
		{"empty", false, "", `empty spec "": want an application: one of bulk, conns, echo, gen, http, ping`},
		{"blank", true, "  ", `empty spec "  ": want an application: one of bulk, echo, http, sink`},
		{"misspelt app", false, "pnig 192.0.2.2", `unknown application "pnig" in "pnig 192.0.2.2": want one of bulk, conns, echo, gen, http, ping (did you mean "ping"?)`},
		{"unknown app", false, "foo", `unknown application "foo" in "foo": want one of bulk, conns, echo, gen, http, ping`},
		{"misspelt server", true, "snik udp:9000", `unknown application "snik" in "snik udp:9000": want one of bulk, echo, http, sink (did you mean "sink"?)`},
		{"server as client", false, "sink udp:9000", `application "sink" in "sink udp:9000" runs only with --serve (--run applications: bulk, conns, echo, gen, http, ping)`},
		{"client as server", true, "gen udp 192.0.2.2:9", `application "gen" in "gen udp 192.0.2.2:9" runs only with --run (--serve applications: bulk, echo, http, sink)`},

		// Options, on ping.
		{"missing addr", false, "ping", `missing ADDR in "ping" ` + pingU},
		{"extra arg", false, "ping 192.0.2.2 extra", `unexpected argument "extra" in "ping 192.0.2.2 extra" ` + pingU},
		{"hostname", false, "ping host.example", `invalid address "host.example" in "ping host.example": want an IP address such as 192.0.2.2 or 2001:db8::2 (there is no DNS)`},
		{"misspelt option", false, "ping 192.0.2.2 cont=5", `unknown option "cont" in "ping 192.0.2.2 cont=5" (did you mean "count"?)`},
		{"unknown option", false, "ping 192.0.2.2 foo=1", `unknown option "foo" in "ping 192.0.2.2 foo=1" (ping options: count, interval, size, timeout, ttl)`},
		{"empty key", false, "ping 192.0.2.2 =5", `unknown option "" in "ping 192.0.2.2 =5" (ping options: count, interval, size, timeout, ttl)`},
		{"duplicate", false, "ping 192.0.2.2 count=5 count=6", `duplicate option "count=6" in "ping 192.0.2.2 count=5 count=6": count is already set`},
		{"not a number", false, "ping 192.0.2.2 count=abc", `invalid option "count=abc" in "ping 192.0.2.2 count=abc": want a whole number from 1 to 65535`},
		{"empty value", false, "ping 192.0.2.2 count=", `invalid option "count=" in "ping 192.0.2.2 count=": want a whole number from 1 to 65535`},
		{"count zero", false, "ping 192.0.2.2 count=0", `invalid option "count=0" in "ping 192.0.2.2 count=0": want a whole number from 1 to 65535`},
		{"bad duration", false, "ping 192.0.2.2 interval=fast", `invalid option "interval=fast" in "ping 192.0.2.2 interval=fast": want a duration such as 200ms or 3s`},
		{"negative interval", false, "ping 192.0.2.2 interval=-1s", `invalid option "interval=-1s" in "ping 192.0.2.2 interval=-1s": want a duration of zero or more`},
		{"zero timeout", false, "ping 192.0.2.2 timeout=0s", `invalid option "timeout=0s" in "ping 192.0.2.2 timeout=0s": want a duration greater than zero`},
		{"bad size", false, "ping 192.0.2.2 size=64X", `invalid option "size=64X" in "ping 192.0.2.2 size=64X": want a size such as 1500, 64K or 1M`},
		{"size too big", false, "ping 192.0.2.2 size=1M", `invalid option "size=1M" in "ping 192.0.2.2 size=1M": want a size from 0 to 65507 bytes`},
		{"ttl zero", false, "ping 192.0.2.2 ttl=0", `invalid option "ttl=0" in "ping 192.0.2.2 ttl=0": want a whole number from 1 to 255`},
		{"ttl too big", false, "ping 192.0.2.2 ttl=256", `invalid option "ttl=256" in "ping 192.0.2.2 ttl=256": want a whole number from 1 to 255`},

		// echo client.
		{"echo nothing", false, "echo", `missing tcp|udp in "echo" (usage: echo tcp|udp ADDR:PORT [count=10] [size=64] [timeout=2s])`},
		{"echo no addr", false, "echo tcp", `missing ADDR:PORT in "echo tcp" (usage: echo tcp|udp ADDR:PORT [count=10] [size=64] [timeout=2s])`},
		{"echo proto", false, "echo tpc 192.0.2.2:7", `invalid protocol "tpc" in "echo tpc 192.0.2.2:7": want tcp or udp (did you mean "tcp"?)`},
		{"echo no port", false, "echo tcp 192.0.2.2", `invalid address "192.0.2.2" in "echo tcp 192.0.2.2": want IP:PORT such as 192.0.2.2:7 or [2001:db8::2]:7 (there is no DNS)`},
		{"echo port 0", false, "echo tcp 192.0.2.2:0", `invalid address "192.0.2.2:0" in "echo tcp 192.0.2.2:0": want a port from 1 to 65535`},
		{"echo hostname", false, "echo tcp localhost:7", `invalid address "localhost:7" in "echo tcp localhost:7": want IP:PORT such as 192.0.2.2:7 or [2001:db8::2]:7 (there is no DNS)`},
		{"echo size 0", false, "echo udp 192.0.2.2:7 size=0", `invalid option "size=0" in "echo udp 192.0.2.2:7 size=0": want a size from 1 to 65507 bytes`},
		{"echo misspelt", false, "echo udp 192.0.2.2:7 timout=1s", `unknown option "timout" in "echo udp 192.0.2.2:7 timout=1s" (did you mean "timeout"?)`},

		// gen.
		{"gen udp size", false, "gen udp 192.0.2.2:9000 size=4", `invalid option "size=4" in "gen udp 192.0.2.2:9000 size=4": want a size from 8 to 65507 bytes`},
		{"gen tcp size", false, "gen tcp 192.0.2.2:9000 size=0", `invalid option "size=0" in "gen tcp 192.0.2.2:9000 size=0": want a size from 1 to 16777216 bytes`},
		{"gen rate", false, "gen udp 192.0.2.2:9000 rate=fast", `invalid option "rate=fast" in "gen udp 192.0.2.2:9000 rate=fast": want a rate such as 1000, 1000pps, 10Mbit or 1Gbit`},
		{"gen rate unit", false, "gen udp 192.0.2.2:9000 rate=10Mbps", `invalid option "rate=10Mbps" in "gen udp 192.0.2.2:9000 rate=10Mbps": want a rate such as 1000, 1000pps, 10Mbit or 1Gbit`},
		{"gen negative rate", false, "gen udp 192.0.2.2:9000 rate=-5", `invalid option "rate=-5" in "gen udp 192.0.2.2:9000 rate=-5": want a rate such as 1000, 1000pps, 10Mbit or 1Gbit`},
		{"gen duration", false, "gen udp 192.0.2.2:9000 duration=0s", `invalid option "duration=0s" in "gen udp 192.0.2.2:9000 duration=0s": want a duration greater than zero`},
		{"gen misspelt", false, "gen udp 192.0.2.2:9000 cout=5", `unknown option "cout" in "gen udp 192.0.2.2:9000 cout=5" (did you mean "count"?)`},

		// http client.
		{"http no url", false, "http get", `missing URL in "http get" (usage: http get URL [count=1] [expect=200] [keepalive=yes])`},
		{"http method", false, "http post http://192.0.2.2/", `invalid method "post" in "http post http://192.0.2.2/": want get`},
		{"https", false, "http get https://192.0.2.2/", `invalid URL "https://192.0.2.2/" in "http get https://192.0.2.2/": want http://IP[:PORT]/PATH`},
		{"http hostname", false, "http get http://example.com/", `invalid URL "http://example.com/" in "http get http://example.com/": want an IP address as host, such as http://192.0.2.2/ or http://[2001:db8::2]:8080/ (there is no DNS)`},
		{"http port 0", false, "http get http://192.0.2.2:0/", `invalid URL "http://192.0.2.2:0/" in "http get http://192.0.2.2:0/": want a port from 1 to 65535`},
		{"http no scheme", false, "http get 192.0.2.2", `invalid URL "192.0.2.2" in "http get 192.0.2.2": want http://IP[:PORT]/PATH`},
		{"http expect", false, "http get http://192.0.2.2/ expect=99", `invalid option "expect=99" in "http get http://192.0.2.2/ expect=99": want a whole number from 100 to 599`},
		{"http misspelt", false, "http get http://192.0.2.2/ expcet=404", `unknown option "expcet" in "http get http://192.0.2.2/ expcet=404" (did you mean "expect"?)`},

		// bulk client.
		{"bulk no addr", false, "bulk", `missing ADDR[:PORT] in "bulk" (usage: bulk ADDR[:PORT] [seconds=3] [size=128K] [port=5201])`},
		{"bulk hostname", false, "bulk example.com", `invalid address "example.com" in "bulk example.com": want IP or IP:PORT such as 192.0.2.2 or [2001:db8::2]:5201 (there is no DNS)`},
		{"bulk two ports", false, "bulk 192.0.2.2:5201 port=5202", `invalid option "port=5202" in "bulk 192.0.2.2:5201 port=5202": the address already names port 5201`},
		{"bulk seconds", false, "bulk 192.0.2.2 seconds=x", `invalid option "seconds=x" in "bulk 192.0.2.2 seconds=x": want a number of seconds such as 3 or 0.5, or a duration such as 500ms`},
		{"bulk zero seconds", false, "bulk 192.0.2.2 seconds=0", `invalid option "seconds=0" in "bulk 192.0.2.2 seconds=0": want a time from 1ms to 24h`},
		{"bulk size", false, "bulk 192.0.2.2 size=0", `invalid option "size=0" in "bulk 192.0.2.2 size=0": want a size from 1 to 16777216 bytes`},
		{"bulk port 0", false, "bulk 192.0.2.2:0", `invalid address "192.0.2.2:0" in "bulk 192.0.2.2:0": want a port from 1 to 65535`},

		// Servers.
		{"echo server nothing", true, "echo", `missing tcp:PORT or udp:PORT in "echo" (usage: echo tcp:PORT | udp:PORT)`},
		{"echo server no port", true, "echo tcp", `missing PORT or ADDR:PORT in "echo tcp" (usage: echo tcp:PORT | udp:PORT)`},
		{"echo server proto", true, "echo sctp:7", `invalid protocol "sctp" in "echo sctp:7": want tcp:PORT or udp:PORT (did you mean "tcp"?)`},
		{"echo server misspelt proto", true, "echo tpc:7", `invalid protocol "tpc" in "echo tpc:7": want tcp:PORT or udp:PORT (did you mean "tcp"?)`},
		{"echo server port", true, "echo tcp:70000", `invalid listen address "70000" in "echo tcp:70000": want PORT, :PORT or IP:PORT such as 9000, :9000, 192.0.2.2:9000 or [::]:9000`},
		{"echo server hostname", true, "echo udp localhost:7", `invalid listen address "localhost:7" in "echo udp localhost:7": want PORT, :PORT or IP:PORT such as 9000, :9000, 192.0.2.2:9000 or [::]:9000`},
		{"echo server extra", true, "echo tcp:7 extra", `unexpected argument "extra" in "echo tcp:7 extra" (usage: echo tcp:PORT | udp:PORT)`},
		{"echo server option", true, "echo tcp:7 foo=1", `unknown option "foo" in "echo tcp:7 foo=1" (echo takes no options)`},
		{"sink nothing", true, "sink", `missing tcp:PORT or udp:PORT in "sink" (usage: sink udp:PORT | tcp:PORT)`},
		{"sink expect", true, "sink udp:9000 expect=5", `unknown option "expect" in "sink udp:9000 expect=5" (sink takes no options; use the host's --expect N)`},
		{"http server addr", true, "http :x", `invalid listen address ":x" in "http :x": want PORT, :PORT or IP:PORT such as 9000, :9000, 192.0.2.2:9000 or [::]:9000`},
		{"http server extra", true, "http :80 :81", `unexpected argument ":81" in "http :80 :81" (usage: http [[ADDR]:PORT])`},
		{"bulk server option", true, "bulk :5201 port=5202", `unknown option "port" in "bulk :5201 port=5202" (bulk takes no options)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := ParseRun
			if tc.serve {
				parse = ParseServe
			}
			app, err := parse(tc.spec)
			if err == nil {
				t.Fatalf("%q parsed as %+v, want error %q", tc.spec, app, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("%q:\n got  %s\n want %s", tc.spec, err, tc.want)
			}
		})
	}
}

func TestParseRun(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		spec string
		want App
	}{
		{"ping 192.0.2.2", &pingApp{dst: netip.MustParseAddr("192.0.2.2"), count: 5, interval: time.Second, size: 56, ttl: 64, timeout: 2 * time.Second}},
		{" ping  ::ffff:192.0.2.2 count=3 interval=200ms size=1K ttl=1 timeout=500ms ", &pingApp{dst: netip.MustParseAddr("192.0.2.2"), count: 3, interval: 200 * time.Millisecond, size: 1024, ttl: 1, timeout: 500 * time.Millisecond}},
		{"echo tcp 192.0.2.2:7", &echoClient{proto: "tcp", dst: ap("192.0.2.2:7"), count: 10, size: 64, timeout: 2 * time.Second}},
		{"echo udp [2001:db8::2]:7 count=3 size=32K timeout=1s", &echoClient{proto: "udp", dst: ap("[2001:db8::2]:7"), count: 3, size: 32768, timeout: time.Second}},
		{"gen udp 198.51.100.7:9000", &genApp{proto: "udp", dst: ap("198.51.100.7:9000"), count: 1000, size: 200}},
		{"gen udp 198.51.100.7:9000 duration=2s rate=1000pps", &genApp{proto: "udp", dst: ap("198.51.100.7:9000"), duration: 2 * time.Second, size: 200, rate: rate{PPS: 1000}}},
		{"gen udp 198.51.100.7:9000 count=5 rate=500", &genApp{proto: "udp", dst: ap("198.51.100.7:9000"), count: 5, size: 200, rate: rate{PPS: 500}}},
		{"gen tcp 198.51.100.7:9000 size=1M rate=1.5Gbit", &genApp{proto: "tcp", dst: ap("198.51.100.7:9000"), count: 1000, size: 1 << 20, rate: rate{BPS: 1.5e9}}},
		{"gen udp 198.51.100.7:9000 rate=10Mbit", &genApp{proto: "udp", dst: ap("198.51.100.7:9000"), count: 1000, size: 200, rate: rate{BPS: 10e6}}},
		{"http get http://192.0.2.2/", &httpClient{url: "http://192.0.2.2/", count: 1, expect: 200}},
		{"http GET http://[2001:db8::2]:8080/x?a=b count=3 expect=404", &httpClient{url: "http://[2001:db8::2]:8080/x?a=b", count: 3, expect: 404}},
		{"bulk 192.0.2.2", &bulkClient{dst: ap("192.0.2.2:5201"), seconds: 3 * time.Second, size: 128 << 10}},
		{"bulk [2001:db8::2]:6000 seconds=0.5 size=64K", &bulkClient{dst: ap("[2001:db8::2]:6000"), seconds: 500 * time.Millisecond, size: 64 << 10}},
		{"bulk 2001:db8::2 seconds=1500ms port=6001", &bulkClient{dst: ap("[2001:db8::2]:6001"), seconds: 1500 * time.Millisecond, size: 128 << 10}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseRun(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !sameConfig(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseServe(t *testing.T) {
	all := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.Addr{}, port) }
	for _, tc := range []struct {
		spec  string
		name  string
		proto string
		addr  netip.AddrPort
		label string
	}{
		{"echo tcp:7", "echo", "tcp", all(7), "tcp:7"},
		{"echo udp:7", "echo", "udp", all(7), "udp:7"},
		{"echo tcp :7", "echo", "tcp", all(7), "tcp:7"},
		{"echo udp 192.0.2.2:7", "echo", "udp", netip.MustParseAddrPort("192.0.2.2:7"), "udp:192.0.2.2:7"},
		{"echo tcp:[::]:7", "echo", "tcp", netip.MustParseAddrPort("[::]:7"), "tcp:[::]:7"},
		{"sink udp:9000", "sink", "udp", all(9000), "udp:9000"},
		{"sink tcp 9000", "sink", "tcp", all(9000), "tcp:9000"},
		{"http", "http", "tcp", all(80), ":80"},
		{"http :8080", "http", "tcp", all(8080), ":8080"},
		{"http 192.0.2.2:8080", "http", "tcp", netip.MustParseAddrPort("192.0.2.2:8080"), "192.0.2.2:8080"},
		{"bulk", "bulk", "tcp", all(5201), ":5201"},
		{"bulk :6000", "bulk", "tcp", all(6000), ":6000"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			app, err := ParseServe(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if app.Name() != tc.name {
				t.Errorf("name %q, want %q", app.Name(), tc.name)
			}
			var proto, label string
			var addr netip.AddrPort
			switch a := app.(type) {
			case *echoServer:
				proto, addr, label = a.proto, a.addr, a.label
			case *sinkApp:
				proto, addr, label = a.proto, a.addr, a.label
			case *httpServer:
				proto, addr, label = "tcp", a.addr, a.label
			case *bulkServer:
				proto, addr, label = "tcp", a.addr, a.label
			}
			if proto != tc.proto || addr != tc.addr || label != tc.label {
				t.Errorf("got %s %v %q, want %s %v %q", proto, addr, label, tc.proto, tc.addr, tc.label)
			}
		})
	}
}

// sameConfig compares the parsed fields of two clients, ignoring their
// run-time state.
func sameConfig(a, b App) bool {
	switch a := a.(type) {
	case *pingApp:
		b, ok := b.(*pingApp)
		return ok && a.dst == b.dst && a.count == b.count && a.interval == b.interval && a.size == b.size && a.ttl == b.ttl && a.timeout == b.timeout
	case *echoClient:
		b, ok := b.(*echoClient)
		return ok && a.proto == b.proto && a.dst == b.dst && a.count == b.count && a.size == b.size && a.timeout == b.timeout
	case *genApp:
		b, ok := b.(*genApp)
		return ok && a.proto == b.proto && a.dst == b.dst && a.count == b.count && a.duration == b.duration && a.size == b.size && a.rate == b.rate
	case *httpClient:
		b, ok := b.(*httpClient)
		return ok && a.url == b.url && a.count == b.count && a.expect == b.expect
	case *bulkClient:
		b, ok := b.(*bulkClient)
		return ok && a.dst == b.dst && a.seconds == b.seconds && a.size == b.size
	}
	return reflect.DeepEqual(a, b)
}

func TestGenGap(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want time.Duration
	}{
		{"gen udp 192.0.2.2:9 rate=1000", time.Millisecond},
		{"gen udp 192.0.2.2:9 size=1000 rate=8Mbit", time.Millisecond},
		{"gen udp 192.0.2.2:9 rate=2kpps", 500 * time.Microsecond},
		{"gen udp 192.0.2.2:9", 0},
		{"gen udp 192.0.2.2:9 rate=0", 0},
	} {
		app, err := ParseRun(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := app.(*genApp).gap(); got != tc.want {
			t.Errorf("%q: gap %v, want %v", tc.spec, got, tc.want)
		}
	}
}

func TestUsageNamesEveryApp(t *testing.T) {
	u := Usage()
	for _, want := range []string{pingUsage, echoClientUsage, genUsage, httpClientUsage, bulkClientUsage, "echo tcp:PORT", "sink udp:PORT", "http [[ADDR]:PORT]", "bulk [[ADDR]:PORT]"} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage lacks %q", want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtBytes(640), "640 Bytes"},
		{fmtBytes(120 << 20), "120 MBytes"},
		{fmtBytes(1288490189), "1.20 GBytes"},
		{fmtBits(13.3e6), "13.3 Mbit/s"},
		{fmtBits(1.01e9), "1.01 Gbit/s"},
		{fmtBits(3.4321e9), "3.43 Gbit/s"},
		{fmtBits(999), "999 bit/s"},
		{fmtPercent(40), "40"},
		{fmtPercent(200.0 / 3), "66.6667"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// FuzzParse checks that no spec makes the parsers panic, and that every
// error quotes the spec.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ping 192.0.2.2 count=5", "echo tcp 192.0.2.2:7", "gen udp [::1]:9 rate=1.5Gbit size=1K", "http get http://192.0.2.2/?a=b",
		"bulk 192.0.2.2 seconds=0.5", "sink udp:9000", "echo tcp:[::]:7", "http :80", "bulk", "=", "ping =", "gen udp 1.2.3.4:5 rate=.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		for _, parse := range []func(string) (App, error){ParseRun, ParseServe} {
			app, err := parse(spec)
			if err != nil {
				if q := strconv.Quote(spec); !strings.Contains(err.Error(), q) {
					t.Errorf("error %q does not quote the spec %s", err, q)
				}
				continue
			}
			if app.Name() == "" {
				t.Errorf("%q: empty name", spec)
			}
			_ = app.Stats()
		}
	})
}
