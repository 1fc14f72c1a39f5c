package netstack

import (
	"net/netip"
	"testing"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

func TestParseNIC(t *testing.T) {
	tests := []struct {
		spec   string
		rx, tx Endpoint
		format frame.Format
		oneWay bool
		addrs  int
	}{
		{"eth0=stdin", Endpoint{Kind: Stdin}, Endpoint{}, frame.QEMU, true, 0},
		{"eth0=stdout,format=pcap", Endpoint{}, Endpoint{Kind: Stdout}, frame.PCAP, true, 0},
		{"eth0=stdio,format=hex,ip=192.0.2.1/24,ip=2001:db8::1/64", Endpoint{Kind: Stdin}, Endpoint{Kind: Stdout}, frame.Hex, false, 2},
		{"eth0=fifo:/tmp/a|fifo:/tmp/b", Endpoint{Kind: FIFO, Path: "/tmp/a"}, Endpoint{Kind: FIFO, Path: "/tmp/b"}, frame.QEMU, false, 0},
		{"eth0=pcap:in.pcap|none", Endpoint{Kind: File, Path: "in.pcap"}, Endpoint{}, frame.PCAP, true, 0},
		{"eth0=none|pcap:out.pcap", Endpoint{}, Endpoint{Kind: File, Path: "out.pcap"}, frame.PCAP, true, 0},
		{"eth0=unix:/tmp/l.sock", Endpoint{Kind: Unix, Path: "/tmp/l.sock"}, Endpoint{Kind: Unix, Path: "/tmp/l.sock"}, frame.QEMU, false, 0},
		{"eth0=unix-listen:/tmp/l.sock,format=vde", Endpoint{Kind: UnixListen, Path: "/tmp/l.sock"}, Endpoint{Kind: UnixListen, Path: "/tmp/l.sock"}, frame.VDE, false, 0},
		{"eth0=seqpacket:3", Endpoint{Kind: Seqpacket, FD: 3}, Endpoint{Kind: Seqpacket, FD: 3}, frame.QEMU, false, 0},
		{"eth0=fd:3|fd:4", Endpoint{Kind: FD, FD: 3}, Endpoint{Kind: FD, FD: 4}, frame.QEMU, false, 0},
		{"eth0=tap:nfp0", Endpoint{Kind: TAP, Path: "nfp0"}, Endpoint{Kind: TAP, Path: "nfp0"}, frame.QEMU, false, 0},
		{"eth0=stdio,peer=broadcast", Endpoint{Kind: Stdin}, Endpoint{Kind: Stdout}, frame.QEMU, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			n, err := ParseNIC(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != "eth0" || n.Link.Rx != tt.rx || n.Link.Tx != tt.tx || n.Link.Format != tt.format || n.Link.OneWay() != tt.oneWay || len(n.Addrs) != tt.addrs {
				t.Errorf("got name %q rx %v tx %v format %v oneway %v addrs %v", n.Name, n.Link.Rx, n.Link.Tx, n.Link.Format, n.Link.OneWay(), n.Addrs)
			}
		})
	}
	if n, err := ParseNIC("eth0=tap:nfp0,netns=blue"); err != nil || n.Link.Netns != "blue" || n.Link.Rx.Kind != TAP {
		t.Errorf("tap:nfp0,netns=blue: %+v, %v", n.Link, err)
	}
	if n, err := ParseNIC("eth0=seqpacket:3,pack=on"); err != nil || n.Link.Pack != On {
		t.Errorf("seqpacket:3,pack=on: %+v, %v", n.Link, err)
	}
	n, _ := ParseNIC("eth0=stdio,peer=broadcast")
	if n.Link.resolves() {
		t.Error("peer= must turn neighbour resolution off")
	}
}

func TestParseNICErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"eth0", `interface "eth0": want NAME=ENDPOINT, e.g. eth0=stdio or eth0=unix:/tmp/l.sock`},
		{"eth0=bogus:x", `interface "eth0=bogus:x": unknown endpoint kind "bogus" in "bogus:x"`},
		{"eth0=fifi:/tmp/x", `interface "eth0=fifi:/tmp/x": unknown endpoint kind "fifi" in "fifi:/tmp/x" (did you mean "fifo"?)`},
		{"eth0=fifo:/tmp/x", `interface "eth0=fifo:/tmp/x": fifo:/tmp/x is one-way: write fifo:/tmp/x|none to only receive, none|fifo:/tmp/x to only send, or RX|TX with two endpoints`},
		{"eth0=stdout|stdin", `interface "eth0=stdout|stdin": cannot receive from stdout`},
		{"eth0=unix:/a|stdout", `interface "eth0=unix:/a|stdout": unix:/a carries both directions: use it alone, not in RX|TX`},
		{"eth0=stdin,fromat=hex", `interface "eth0=stdin,fromat=hex": unknown option "fromat" (did you mean "format"?) (valid: format, mac, mtu, ip, peer, timing, capture, netns, gso, pack)`},
		{"eth0=stdio,pack=on", `interface "eth0=stdio,pack=on": pack applies to seqpacket: endpoints (several frames per message)`},
		{"eth0=seqpacket:3,pack=yes", `interface "eth0=seqpacket:3,pack=yes": pack "yes": want on or off`},
		{"eth0=stdin,netns=blue", `interface "eth0=stdin,netns=blue": netns applies to tap: endpoints`},
		{"eth0=tap:x,netns=", `interface "eth0=tap:x,netns=": netns needs a namespace name (under /run/netns) or a path`},
		{"eth0=stdin,format=json", `interface "eth0=stdin,format=json": unknown frame format "json" (valid: hex, pcap, qemu, vde)`},
		{"eth0=tap:x,format=hex", `interface "eth0=tap:x,format=hex": format applies to byte streams; tap carries one frame per message`},
		{"eth0=pcap:x|none,format=hex", `interface "eth0=pcap:x|none,format=hex": a pcap: endpoint is always format=pcap`},
		{"eth0=stdin,ip=300.1.1.1/24", `interface "eth0=stdin,ip=300.1.1.1/24": bad address "300.1.1.1/24": want ADDR/LEN such as 192.0.2.1/24 or 2001:db8::1/64`},
		{"eth0=stdin,mac=zz", `interface "eth0=stdin,mac=zz": bad mac "zz"`},
		{"eth0=fd:x", `interface "eth0=fd:x": endpoint "fd:x": bad file descriptor "x"`},
		{"eth 0=stdin", `interface "eth 0=stdin": bad name "eth 0" (at most 15 characters, no spaces, '|', ',', ':' or '/')`},
	}
	for _, tt := range tests {
		_, err := ParseNIC(tt.spec)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseNIC(%q)\n got: %v\nwant: %s", tt.spec, err, tt.want)
		}
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct{ in, want string }{
		{"default via 192.0.2.1", "default via 192.0.2.1"},
		{"default via 2001:db8::1", "default via 2001:db8::1"},
		{"198.51.100.0/24 via 192.0.2.1 dev eth0", "198.51.100.0/24 via 192.0.2.1 dev eth0"},
		{"198.51.100.7/24 dev eth1", "198.51.100.0/24 dev eth1"},
		{"default6 dev eth0", "default dev eth0"},
	}
	for _, tt := range tests {
		r, err := ParseRoute(tt.in)
		if err != nil || r.String() != tt.want {
			t.Errorf("ParseRoute(%q) = %v, %v; want %s", tt.in, r, err, tt.want)
		}
	}
	for in, want := range map[string]string{
		"default":                      `route "default": needs via GATEWAY or dev NAME`,
		"default via":                  `route "default via": "via" needs a value`,
		"default via x":                `route "default via x": bad gateway "x"`,
		"10.0.0.0/8 through 192.0.2.1": `route "10.0.0.0/8 through 192.0.2.1": unknown word "through" (want via or dev)`,
	} {
		if _, err := ParseRoute(in); err == nil || err.Error() != want {
			t.Errorf("ParseRoute(%q) error %v, want %s", in, err, want)
		}
	}
}

func TestParseNeighbor(t *testing.T) {
	nb, err := ParseNeighbor("192.0.2.1 lladdr 02:00:00:00:00:01 dev eth0")
	if err != nil || nb.Addr != netip.MustParseAddr("192.0.2.1") || nb.MAC.String() != "02:00:00:00:00:01" || nb.NIC != "eth0" {
		t.Errorf("got %+v, %v", nb, err)
	}
	if _, err := ParseNeighbor("192.0.2.1"); err == nil {
		t.Error("a neighbour without a MAC must be an error")
	}
}

func TestDefaultMAC(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.1/24")
	a, b := DefaultMAC("r1", "eth0", p), DefaultMAC("r1", "eth0", p)
	if a.String() != b.String() {
		t.Fatalf("not stable: %s vs %s", a, b)
	}
	if a[0]&0x02 == 0 || a[0]&0x01 != 0 {
		t.Errorf("%s is not a locally administered unicast MAC", a)
	}
	if DefaultMAC("r2", "eth0", p).String() == a.String() || DefaultMAC("r1", "eth1", p).String() == a.String() {
		t.Error("different functions or interfaces must get different MACs")
	}
}

func TestConfigValidate(t *testing.T) {
	nic := func(spec string) NICConfig {
		n, err := ParseNIC(spec)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no interfaces: give at least one --if NAME=ENDPOINT"},
		{Config{NICs: []NICConfig{nic("eth0=stdin"), nic("eth0=stdout")}}, `interface "eth0" is defined twice`},
		{Config{NICs: []NICConfig{nic("eth0=stdin,ip=192.0.2.1/24"), nic("eth1=stdout,ip=192.0.2.1/24")}}, `address 192.0.2.1 is on both "eth0" and "eth1"`},
		{Config{NICs: []NICConfig{nic("eth0=stdin,mtu=40")}}, `interface "eth0": mtu 40 out of range 68..65521`},
		{Config{NICs: []NICConfig{nic("eth0=stdin,mtu=1000,ip=2001:db8::1/64")}}, `interface "eth0": IPv6 address 2001:db8::1/64 needs mtu >= 1280 (have 1000)`},
		{Config{NICs: []NICConfig{nic("eth0=stdin")}, Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), NIC: "eth9"}}}, `route default dev eth9: no interface "eth9"`},
	}
	for _, tt := range tests {
		if err := tt.cfg.validate(); err == nil || err.Error() != tt.want {
			t.Errorf("got %v\nwant %s", err, tt.want)
		}
	}
}
