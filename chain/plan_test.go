package chain

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nfpipe/nfpipe/configs"
	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/vnf/kinds"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func findFunction(t *testing.T, p *Plan, name string) FunctionPlan {
	t.Helper()
	for _, f := range p.Functions {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no function %q in the plan", name)
	return FunctionPlan{}
}

// TestPlanArgvAndFDs checks the command line and descriptors of each end
// of the descriptor-passing transports.
func TestPlanArgvAndFDs(t *testing.T) {
	p := mustCheck(t, `
		name: t
		functions:
		  a:
		    kind: router
		    interfaces:
		      x: 192.0.2.1/24
		      y: {addresses: [198.51.100.1/24, 2001:db8::1/64], mtu: 9000, mac: 02:00:00:00:00:01}
		    gateways: [2001:db8::2]
		    routes: [10.0.0.0/8 via 198.51.100.2 dev y, 10.1.0.0/16 dev x]
		    neighbors: [198.51.100.2 lladdr 02:00:00:00:00:02]
		    rules: [-A FORWARD -p tcp --dport 23 -j DROP]
		    rule-files: [rules/good.rules]
		    log-level: debug
		  b:
		    kind: host
		    interfaces:
		      eth0: 192.0.2.2/24
		    run: [ping 192.0.2.1 count=1]
		    env: {B: "2", A: "1"}
		  c:
		    kind: host
		    interfaces:
		      eth0: {addresses: [198.51.100.2/24, 2001:db8::2/64], mtu: 9000}
		    serve: [sink udp:9000]
		    stats: json
		links:
		  - [a.x, b]
		  - {ends: [c, a.y], transport: pipe, format: vde}
		`)
	rules, _ := filepath.Abs("testdata/rules/good.rules")
	a, b, c := findFunction(t, p, "a"), findFunction(t, p, "b"), findFunction(t, p, "c")
	// Link peers get static neighbour entries (the spec's own stays).
	mac := func(fn, ifc, addr string) string {
		return netstack.DefaultMAC(fn, ifc, netip.MustParsePrefix(addr)).String()
	}
	macAx, macB, macC := mac("a", "x", "192.0.2.1/24"), mac("b", "eth0", "192.0.2.2/24"), mac("c", "eth0", "198.51.100.2/24")
	for _, tt := range []struct {
		fn   FunctionPlan
		argv []string
		fds  []FD
	}{
		{a, []string{"vnf", "router", "--name", "a",
			"--if", "x=seqpacket:3,ip=192.0.2.1/24,gso=on,pack=on",
			"--if", "y=fd:4|fd:5,format=vde,ip=198.51.100.1/24,ip=2001:db8::1/64,mac=02:00:00:00:00:01,mtu=9000,gso=on",
			"--route", "10.0.0.0/8 via 198.51.100.2 dev y", "--route", "10.1.0.0/16 dev x",
			"--gw", "2001:db8::2",
			"--neigh", "198.51.100.2 lladdr 02:00:00:00:00:02",
			"--rules=" + rules, "--rule=-A FORWARD -p tcp --dport 23 -j DROP",
			"--log-level", "debug", "--control", "/run/nfpipe/t/fn/a.sock",
			"--neigh", "192.0.2.2 lladdr " + macB + " dev x", "--neigh", "2001:db8::2 lladdr " + macC + " dev y"},
			[]FD{{3, 0, 0, FDSocket, "x"}, {4, 1, 1, FDPipeRx, "y"}, {5, 1, 1, FDPipeTx, "y"}}},
		{b, []string{"vnf", "host", "--name", "b", "--if", "eth0=seqpacket:3,ip=192.0.2.2/24,gso=on,pack=on",
			"--run=ping 192.0.2.1 count=1", "--control", "/run/nfpipe/t/fn/b.sock",
			"--neigh", "192.0.2.1 lladdr " + macAx + " dev eth0"},
			[]FD{{3, 0, 1, FDSocket, "eth0"}}},
		{c, []string{"vnf", "host", "--name", "c", "--if", "eth0=fd:3|fd:4,format=vde,ip=198.51.100.2/24,ip=2001:db8::2/64,mtu=9000,gso=on",
			"--serve=sink udp:9000", "--stats=json", "--control", "/run/nfpipe/t/fn/c.sock",
			"--neigh", "198.51.100.1 lladdr 02:00:00:00:00:01 dev eth0", "--neigh", "2001:db8::1 lladdr 02:00:00:00:00:01 dev eth0"},
			[]FD{{3, 1, 0, FDPipeRx, "eth0"}, {4, 1, 0, FDPipeTx, "eth0"}}},
	} {
		if !slices.Equal(tt.fn.Argv, tt.argv) {
			t.Errorf("%s argv:\n%q\nwant\n%q", tt.fn.Name, tt.fn.Argv, tt.argv)
		}
		if !slices.Equal(tt.fn.FDs, tt.fds) {
			t.Errorf("%s fds: %+v, want %+v", tt.fn.Name, tt.fn.FDs, tt.fds)
		}
	}
	if !b.Client || a.Client || c.Client {
		t.Errorf("clients: a %v b %v c %v, want only b", a.Client, b.Client, c.Client)
	}
	if !slices.Equal(b.Env, []string{"A=1", "B=2"}) {
		t.Errorf("b env %q, want sorted A=1 B=2", b.Env)
	}
	if a.Restart != defaultRestart() {
		t.Errorf("a restart %+v, want the default %+v", a.Restart, defaultRestart())
	}
	if got := p.Links[1]; got.Name != "c.eth0--a.y" || got.Transport != Pipe || got.Format != "vde" || got.Mirror != -1 {
		t.Errorf("link 1: %+v", got)
	}
	if ifc := a.Interfaces[1]; ifc.MAC != "02:00:00:00:00:01" || ifc.MTU != 9000 || ifc.Link != 1 || ifc.End != 1 {
		t.Errorf("a.y: %+v", ifc)
	}
	if ifc := b.Interfaces[0]; ifc.MAC == "" || ifc.MTU != 1500 {
		t.Errorf("b.eth0 has no default MAC or MTU: %+v", ifc)
	}
}

// TestGSOPlan checks where large segments travel whole: on links between
// two functions and on tap links unless the spec says `gso: off`, and not
// on the chain's stdin/stdout or files unless it says `gso: on`.
func TestGSOPlan(t *testing.T) {
	p := mustCheck(t, `
		name: g
		functions:
		  a: {kind: router, interfaces: {p: 192.0.2.1/24, q: 198.51.100.1/24, t: 203.0.113.1/24, s: 10.0.0.1/24, u: 10.0.1.1/24}}
		  b: {kind: host, interfaces: {eth0: 192.0.2.2/24}}
		  c: {kind: host, interfaces: {eth0: 198.51.100.2/24}}
		links:
		  - [a.p, b]
		  - {ends: [a.q, c], transport: stream, gso: off}
		  - {ends: [a.t], tap: gt0, gso: off}
		  - {ends: [a.s], transport: stdin}
		  - {ends: [a.u], path: /tmp/nfpipe-gso-test.sock, gso: on}
		`)
	a := findFunction(t, p, "a")
	want := map[string]string{"p": ",gso=on,pack=on", "q": "", "t": ",gso=off", "s": "", "u": ",gso=on"}
	for _, ifc := range a.Interfaces {
		w := want[ifc.Name]
		if has := strings.HasSuffix(ifc.Spec, w) && (w != "" || !strings.Contains(ifc.Spec, "gso=")); !has {
			t.Errorf("interface %s: --if %s, want it to end in %q", ifc.Name, ifc.Spec, w)
		}
	}
	for i, w := range []bool{true, false, false, false, true} {
		if p.Links[i].GSO != w {
			t.Errorf("link %s: GSO %v, want %v", p.Links[i].Name, p.Links[i].GSO, w)
		}
	}
}

// TestPackPlan checks where seqpacket links carry several frames per
// message: between two functions unless the spec says `pack: off`.
func TestPackPlan(t *testing.T) {
	p := mustCheck(t, `
		name: pk
		functions:
		  a: {kind: router, interfaces: {p: 192.0.2.1/24, q: 198.51.100.1/24, r: 203.0.113.1/24}}
		  b: {kind: host, interfaces: {eth0: 192.0.2.2/24}}
		  c: {kind: host, interfaces: {eth0: 198.51.100.2/24}}
		  d: {kind: host, interfaces: {eth0: 203.0.113.2/24}}
		links:
		  - [a.p, b]
		  - {ends: [a.q, c], pack: off}
		  - {ends: [a.r, d], transport: stream}
		`)
	a := findFunction(t, p, "a")
	want := map[string]bool{"p": true, "q": false, "r": false}
	for _, ifc := range a.Interfaces {
		if has := strings.HasSuffix(ifc.Spec, ",pack=on"); has != want[ifc.Name] {
			t.Errorf("interface %s: --if %s, want pack=on: %v", ifc.Name, ifc.Spec, want[ifc.Name])
		}
	}
	for i, w := range []bool{true, false, false} {
		if p.Links[i].Pack != w {
			t.Errorf("links[%d].Pack = %v, want %v", i, p.Links[i].Pack, w)
		}
	}
}

// TestPipeline checks the shorthand: each function's last interface to
// the next one's first, and the open ends on the runner's stdin and
// stdout.
func TestPipeline(t *testing.T) {
	p := mustCheck(t, `
		name: nat-filter
		pipeline: [functions/nat.yaml, functions/filter.yaml, sink]
		functions:
		  sink: {kind: host, interfaces: {eth0: 198.51.100.7/24, eth1: 203.0.113.7/24}, serve: [sink udp:9000]}
		`)
	var links []string
	for _, l := range p.Links {
		var ends []string
		for _, e := range l.Ends {
			ends = append(ends, e.String())
		}
		links = append(links, string(l.Transport)+" "+strings.Join(ends, " "))
	}
	want := []string{"stdin nat.in", "seqpacket nat.out filter.in", "seqpacket filter.out sink.eth0", "stdout sink.eth1"}
	if !slices.Equal(links, want) {
		t.Errorf("links %q, want %q", links, want)
	}
	nat := findFunction(t, p, "nat")
	if nat.Argv[5] != "in=fd:3|none,format=qemu,ip=10.0.0.1/24" || nat.FDs[0].Object != FDStdin {
		t.Errorf("nat's first interface is not the chain's stdin: %q %+v", nat.Argv, nat.FDs)
	}
	if s := findFunction(t, p, "sink"); s.Interfaces[1].Spec != "eth1=none|fd:4,format=qemu,ip=203.0.113.7/24" || s.FDs[1].Object != FDStdout {
		t.Errorf("sink's last interface is not the chain's stdout: %+v", s)
	}
}

// TestPipelineFile checks that the three-line configs/pipeline.yaml is
// the shell pipeline `nat | filter`.
func TestPipelineFile(t *testing.T) {
	b, err := os.ReadFile("../configs/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(string(b)), "\n") + 1; n != 3 {
		t.Errorf("configs/pipeline.yaml has %d lines, want 3", n)
	}
	opts := optionsWith(kinds.Registry())
	opts.Dir = ""
	p, err := Check("../configs/pipeline.yaml", b, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Functions) != 2 || p.Functions[0].Name != "nat" || p.Functions[1].Name != "filter" || len(p.Links) != 3 || p.Links[0].Transport != Stdin || p.Links[2].Transport != Stdout {
		t.Errorf("not nat | filter: %+v", p)
	}
}

// TestMirrors checks how each kind of mirror is made: which interface's
// capture= option, which FIFO, which monitor interface.
func TestMirrors(t *testing.T) {
	p := mustCheck(t, `
		name: m
		functions:
		  a: {kind: host, interfaces: {eth0: 192.0.2.1/24, eth1: 198.51.100.1/24, eth2: 203.0.113.1/24}}
		  b: {kind: host, interfaces: {eth0: 192.0.2.2/24, eth1: 198.51.100.2/24, eth2: 203.0.113.2/24}}
		  mon: {kind: host, interfaces: {in: null}}
		links:
		  - {ends: [a.eth0, b.eth0], mirror: captures/ab.pcap}
		  - {ends: [a.eth1, b.eth1], mirror: {fifo: watch.pcap, at: b.eth1}}
		  - {ends: [a.eth2, b.eth2], mirror: {function: mon}}
		`)
	capture, _ := filepath.Abs("testdata/captures/ab.pcap")
	want := []MirrorPlan{
		{Link: 0, Kind: MirrorCapture, At: End{"a", "eth0"}, Capture: capture},
		{Link: 1, Kind: MirrorFIFO, At: End{"b", "eth1"}, Capture: "/run/nfpipe/m/mirrors/watch.pcap"},
		{Link: 2, Kind: MirrorFunction, At: End{"a", "eth2"}, Capture: "/run/nfpipe/m/mirrors/a.eth2--b.eth2.pcap", Monitor: &End{"mon", "in"}},
	}
	if len(p.Mirrors) != len(want) {
		t.Fatalf("mirrors %+v, want %+v", p.Mirrors, want)
	}
	for i, m := range p.Mirrors {
		w := want[i]
		if m.Link != w.Link || m.Kind != w.Kind || m.At != w.At || m.Capture != w.Capture || (m.Monitor == nil) != (w.Monitor == nil) || m.Monitor != nil && *m.Monitor != *w.Monitor {
			t.Errorf("mirror %d: %+v, want %+v", i, m, w)
		}
		if p.Links[i].Mirror != i {
			t.Errorf("links[%d].Mirror = %d, want %d", i, p.Links[i].Mirror, i)
		}
	}
	a, b, mon := findFunction(t, p, "a"), findFunction(t, p, "b"), findFunction(t, p, "mon")
	for _, tt := range []struct{ got, want string }{
		{a.Interfaces[0].Spec, "eth0=seqpacket:3,ip=192.0.2.1/24,capture=" + capture + ",gso=on,pack=on"},
		{b.Interfaces[0].Spec, "eth0=seqpacket:3,ip=192.0.2.2/24,gso=on,pack=on"},
		{a.Interfaces[1].Spec, "eth1=seqpacket:4,ip=198.51.100.1/24,gso=on,pack=on"},
		{b.Interfaces[1].Spec, "eth1=seqpacket:4,ip=198.51.100.2/24,capture=/run/nfpipe/m/mirrors/watch.pcap,gso=on,pack=on"},
		{a.Interfaces[2].Spec, "eth2=seqpacket:5,ip=203.0.113.1/24,capture=/run/nfpipe/m/mirrors/a.eth2--b.eth2.pcap,gso=on,pack=on"},
		{mon.Interfaces[0].Spec, "in=fifo:/run/nfpipe/m/mirrors/a.eth2--b.eth2.pcap|none,format=pcap"},
	} {
		if tt.got != tt.want {
			t.Errorf("--if %s, want %s", tt.got, tt.want)
		}
	}
	if mon.Interfaces[0].Link != -1 || mon.Interfaces[0].Mirror != 2 || len(mon.FDs) != 0 {
		t.Errorf("monitor interface: %+v, fds %+v", mon.Interfaces[0], mon.FDs)
	}
	if want := []string{"/run/nfpipe/m/mirrors/watch.pcap", "/run/nfpipe/m/mirrors/a.eth2--b.eth2.pcap"}; !slices.Equal(p.Runtime.FIFOs, want) {
		t.Errorf("runtime FIFOs %q, want %q", p.Runtime.FIFOs, want)
	}
}

// TestDefaultsAndMerge checks defaults, per-function overrides and YAML
// merge keys.
func TestDefaultsAndMerge(t *testing.T) {
	p := mustCheck(t, `
		name: d
		defaults:
		  restart: {policy: on-failure, backoff: 1s, max-backoff: 8s}
		  env: {A: a, B: b}
		  log-level: warn
		functions:
		  a: &base
		    kind: host
		    interfaces: {eth0: 192.0.2.1/24}
		    restart: always
		    env: {B: x}
		  b:
		    <<: *base
		    interfaces: {eth0: 192.0.2.2/24}
		    log-level: error
		links: [[a, b]]
		`)
	a, b := findFunction(t, p, "a"), findFunction(t, p, "b")
	want := RestartPolicy{Policy: RestartAlways, Backoff: 1e9, MaxBackoff: 8e9, MaxRestarts: 5, Window: 60e9}
	if a.Restart != want || b.Restart != want {
		t.Errorf("restart a %+v b %+v, want %+v", a.Restart, b.Restart, want)
	}
	if !slices.Equal(a.Env, []string{"A=a", "B=x"}) || !slices.Equal(b.Env, a.Env) {
		t.Errorf("env a %q b %q", a.Env, b.Env)
	}
	if !slices.Contains(a.Argv, "warn") || !slices.Contains(b.Argv, "error") {
		t.Errorf("log levels: %q %q", a.Argv, b.Argv)
	}
}

// TestConfigs checks every chain spec in configs/ with every kind, and
// that the embedded quickstart is configs/quickstart.yaml.
func TestConfigs(t *testing.T) {
	files, _ := filepath.Glob("../configs/*.yaml")
	specs := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !IsSpec(b) {
			continue
		}
		specs++
		opts := optionsWith(kinds.Registry())
		opts.Dir = ""
		if _, err := Check(f, b, opts); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
	if specs < 5 {
		t.Errorf("found %d chain specs in configs/, want at least 5", specs)
	}
	b, _ := os.ReadFile("../configs/quickstart.yaml")
	if !bytes.Equal(b, configs.Quickstart) {
		t.Error("the embedded quickstart differs from configs/quickstart.yaml")
	}
}

// TestGolden compares plans and graphs with testdata/golden (go test
// -update rewrites them). Absolute paths under the repository read $ROOT.
func TestGolden(t *testing.T) {
	root, _ := filepath.Abs("..")
	for _, spec := range []string{"testdata/transports.yaml", "../configs/quickstart.yaml", "../configs/nat-firewall.yaml", "../configs/pipeline.yaml", "../configs/loadbalancer.yaml", "../configs/mirror.yaml", "../configs/tap-gateway.yaml"} {
		name := strings.TrimSuffix(filepath.Base(spec), ".yaml")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(spec)
			if err != nil {
				t.Fatal(err)
			}
			opts := optionsWith(kinds.Registry())
			opts.Dir = ""
			p, err := Check(spec, b, opts)
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string]func(io.Writer) error{
				".plan": p.WriteText,
				".json": func(w io.Writer) error {
					enc := json.NewEncoder(w)
					enc.SetEscapeHTML(false)
					enc.SetIndent("", "  ")
					return enc.Encode(p)
				},
			}
			for _, f := range GraphFormats {
				outputs["."+f] = func(w io.Writer) error { return p.WriteGraph(w, f) }
			}
			var back Plan
			var js bytes.Buffer
			if err := outputs[".json"](&js); err != nil || json.Unmarshal(js.Bytes(), &back) != nil {
				t.Fatalf("the JSON plan does not read back: %v", err)
			}
			if back.Functions[0].Restart != p.Functions[0].Restart || back.Functions[0].Argv[1] != p.Functions[0].Argv[1] {
				t.Errorf("the JSON plan reads back differently: %+v", back.Functions[0])
			}
			for ext, write := range outputs {
				var buf bytes.Buffer
				if err := write(&buf); err != nil {
					t.Fatal(err)
				}
				got := strings.ReplaceAll(buf.String(), root, "$ROOT")
				golden := filepath.Join("testdata/golden", name+ext)
				if *update {
					if err := os.MkdirAll("testdata/golden", 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs (go test -update rewrites it):\n%s", golden, got)
				}
			}
		})
	}
}
