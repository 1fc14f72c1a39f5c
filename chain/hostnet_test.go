package chain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostTestRoot skips unless root with ip and nft (in CI a missing tool
// fails), and returns a namespace of the test's own, deleted at its end.
func hostTestRoot(t *testing.T, prefix string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces, TAP devices and nftables tables")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed in CI: scripts/install-deps.sh must install it", tool)
			}
			t.Skipf("needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	ns := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run()
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	return ns
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func hostPlan(t *testing.T, root, src string) *Plan {
	t.Helper()
	opts := testOptions()
	opts.RuntimeRoot = root
	p, err := Check("t.yaml", []byte(dedent(src)), opts)
	if err != nil {
		t.Fatalf("unexpected errors:\n%v", err)
	}
	if err := os.MkdirAll(p.Runtime.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostAttach: a tap link naming a TAP device that exists uses it; the
// record lists only what the runner added (an address the device had
// already is not its own), cleanHost removes that and leaves the device;
// a second run of the same chain from another runtime directory is
// refused without undoing the first's objects.
func TestHostAttach(t *testing.T) {
	ns := hostTestRoot(t, "nfht")
	sh(t, "ip", "-n", ns, "tuntap", "add", "dev", "vm0", "mode", "tap")
	sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.9/24", "dev", "vm0")
	spec := fmt.Sprintf(`
		name: ht
		functions:
		  h: {kind: host, interfaces: {eth0: 192.0.2.1/24}}
		links:
		  - ends: [h.eth0]
		    tap: vm0
		    netns: %s
		    host: {addresses: [192.0.2.2/24, 192.0.2.9/24], routes: [10.9.0.0/16 via 192.0.2.1], forward: true}
		`, ns)
	p := hostPlan(t, t.TempDir(), spec)
	var warn bytes.Buffer
	if err := setupHost(p, &warn); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "forwarding is off in netns "+ns) || !strings.Contains(warn.String(), "net.ipv4.ip_forward=1") {
		t.Errorf("no warning about forwarding, off in a fresh namespace: %q", warn.String())
	}
	addrs := sh(t, "ip", "-n", ns, "-o", "addr", "show", "vm0")
	routes := sh(t, "ip", "-n", ns, "route")
	tables := sh(t, "ip", "netns", "exec", ns, "nft", "list", "table", "inet", "nfpipe-ht")
	for what, s := range map[string][2]string{
		"address 192.0.2.2/24": {addrs, "192.0.2.2/24"},
		"route":                {routes, "10.9.0.0/16 via 192.0.2.1 dev vm0"},
		"forward rule":         {tables, `iifname "vm0" counter packets 0 bytes 0 accept`},
	} {
		if !strings.Contains(s[0], s[1]) {
			t.Errorf("%s: no %q in:\n%s", what, s[1], s[0])
		}
	}
	var rec hostRecord
	b, _ := os.ReadFile(p.Host.Record)
	json.Unmarshal(b, &rec)
	var got []string
	for _, o := range rec.Objects {
		got = append(got, o.String())
	}
	want := []string{"address 192.0.2.2/24 on vm0 in netns " + ns, "route 10.9.0.0/16 via 192.0.2.1 dev vm0 in netns " + ns, "nftables table inet nfpipe-ht in netns " + ns}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || rec.PID != os.Getpid() {
		t.Errorf("record (pid %d):\n%s\nwant:\n%s", rec.PID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The same chain from another runtime directory: its table is taken.
	p2 := hostPlan(t, t.TempDir(), spec)
	if err := setupHost(p2, &warn); err == nil || !strings.Contains(err.Error(), "nftables table inet nfpipe-ht in netns "+ns+": it exists already") {
		t.Errorf("a second run of the chain: %v", err)
	}
	if err := cleanHost(p2.Host.Record, true); err != nil {
		t.Error(err)
	}
	if !strings.Contains(sh(t, "ip", "-n", ns, "-o", "addr", "show", "vm0"), "192.0.2.2/24") {
		t.Errorf("the refused second run removed the first's address")
	}

	if err := cleanHost(p.Host.Record, true); err != nil {
		t.Fatal(err)
	}
	addrs = sh(t, "ip", "-n", ns, "-o", "addr", "show", "vm0")
	if strings.Contains(addrs, "192.0.2.2/") || !strings.Contains(addrs, "192.0.2.9/24") {
		t.Errorf("after cleanHost, want 192.0.2.9 (the device's own) and not 192.0.2.2:\n%s", addrs)
	}
	if r := sh(t, "ip", "-n", ns, "route"); strings.Contains(r, "10.9.0.0/16") {
		t.Errorf("the route remains:\n%s", r)
	}
	if r := sh(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); strings.Contains(r, "nfpipe-ht") {
		t.Errorf("the table remains:\n%s", r)
	}
	if _, err := os.Stat(p.Host.Record); err == nil {
		t.Errorf("the record remains")
	}
}

// TestHostCreate: a device the runner names is created persistent with
// the interface's MTU in a namespace it creates; one of that name that
// exists already is refused (it is not the chain's); cleanHost removes
// the device and the namespace, and a record left by a runner that died
// is honoured by cleanHost with mine false only.
func TestHostCreate(t *testing.T) {
	ns := hostTestRoot(t, "nfhc")
	own := fmt.Sprintf("nfhn-%d", os.Getpid())
	t.Cleanup(func() { exec.Command("ip", "netns", "del", own).Run() })
	spec := fmt.Sprintf(`
		name: hc
		functions:
		  h: {kind: host, interfaces: {eth0: {addresses: [192.0.2.1/24], mtu: 9000}, eth1: 198.51.100.1/24}}
		links:
		  - ends: [h.eth0]
		    netns: {name: %s, create: true}
		  - ends: [h.eth1]
		    netns: %s
		`, own, ns)
	p := hostPlan(t, t.TempDir(), spec)
	dev0, dev1 := p.Links[0].TAP, p.Links[1].TAP
	if dev0 != TAPDevice("hc", "h.eth0--tap") || len(dev0) > 15 {
		t.Fatalf("device name %q", dev0)
	}
	sh(t, "ip", "-n", ns, "tuntap", "add", "dev", dev1, "mode", "tap")
	var warn bytes.Buffer
	err := setupHost(p, &warn)
	if err == nil || !strings.Contains(err.Error(), "TAP device "+dev1+" in netns "+ns+": it exists already, and this chain did not create it") {
		t.Fatalf("setupHost with the device name taken: %v", err)
	}
	link := sh(t, "ip", "-n", own, "-d", "link", "show", dev0)
	if !strings.Contains(link, "mtu 9000") || !strings.Contains(link, "persist on") || !strings.Contains(link, "tun type tap") {
		t.Errorf("the device made in %s:\n%s", own, link)
	}
	// As if the runner had died: the record is not this process's.
	b, _ := os.ReadFile(p.Host.Record)
	var rec hostRecord
	json.Unmarshal(b, &rec)
	rec.PID = 1
	b, _ = json.Marshal(rec)
	os.WriteFile(p.Host.Record, b, 0o600)
	if err := cleanHost(p.Host.Record, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, own)); err != nil {
		t.Fatalf("cleanHost(mine) removed another runner's namespace")
	}
	if err := cleanHost(p.Host.Record, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, own)); err == nil {
		t.Errorf("netns %s remains", own)
	}
	if !strings.Contains(sh(t, "ip", "-n", ns, "link"), dev1) {
		t.Errorf("the device that was there before is gone")
	}
}
