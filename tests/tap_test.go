package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netns creates a network namespace for the test and deletes it when the
// test ends, even on failure. Register it before starting processes in it:
// cleanups run last-in first-out, so they are killed first.
func netns(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a crashed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	return name
}

// inNetns runs a command in the namespace and returns its result.
func inNetns(t *testing.T, ctx context.Context, ns string, d time.Duration, args ...string) result {
	t.Helper()
	return run(t, ctx, d, procSpec{Path: "ip", Args: append([]string{"netns", "exec", ns}, args...)})
}

// mustInNetns runs a command in the namespace that must succeed.
func mustInNetns(t *testing.T, ctx context.Context, ns string, args ...string) {
	t.Helper()
	if r := inNetns(t, ctx, ns, 10*time.Second, args...); r.Code != 0 {
		t.Fatalf("%s: exit status %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
}

// TestTAPRealKernel: the Linux kernel's own ping and curl reach an nfpipe
// host over a TAP device, IPv4 and IPv6, in a namespace of the test's own.
func TestTAPRealKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a TAP device")
	}
	needTool(t, "curl")
	needTool(t, "ping")
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	ns := netns(t, "nfpt")
	host := start(t, ctx, "tap host", procSpec{Path: "ip", Args: []string{"netns", "exec", ns, nfpipeBin, "vnf", "host",
		"--if", "eth0=tap:nfpt0", "--ip", "192.0.2.2/24", "--ip", "2001:db8::2/64", "--serve", "http :80",
		"--stats=json", "--timeout", "50s"}})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ip", "link", "show", "nfpt0").Run() == nil {
			break
		}
		if host.exited() || time.Now().After(deadline) {
			t.Fatalf("TAP nfpt0 did not appear in %s (host exited: %v)", ns, host.exited())
		}
	}
	mustInNetns(t, ctx, ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "nfpt0")
	mustInNetns(t, ctx, ns, "ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "nfpt0", "nodad")
	mustInNetns(t, ctx, ns, "ip", "link", "set", "nfpt0", "up")

	r := inNetns(t, ctx, ns, 15*time.Second, "ping", "-c", "3", "-W", "2", "192.0.2.2")
	wantCode(t, "kernel ping", r, 0)
	wantContains(t, "kernel ping", r.Stdout, "3 packets transmitted, 3 received, 0% packet loss")
	r = inNetns(t, ctx, ns, 10*time.Second, "curl", "-s", "-m", "5", "http://192.0.2.2/")
	wantCode(t, "curl", r, 0)
	wantContains(t, "curl", r.Stdout, "nfpipe host", "you are 192.0.2.1:")
	r = inNetns(t, ctx, ns, 15*time.Second, "ping", "-6", "-c", "2", "2001:db8::2")
	wantCode(t, "kernel ping -6", r, 0)
	wantContains(t, "kernel ping -6", r.Stdout, "2 packets transmitted, 2 received, 0% packet loss")

	// A second function cannot take a TAP another one holds: it says so
	// and exits, without crashing.
	r = inNetns(t, ctx, ns, 10*time.Second, nfpipeBin, "vnf", "host", "--if", "eth0=tap:nfpt0", "--ip", "192.0.2.3/24",
		"--serve", "http :80", "--timeout", "5s")
	if r.Code == 0 {
		t.Errorf("a second host on the busy tap:nfpt0 exited 0")
	}
	wantNoPanic(t, "second host on a busy TAP", r.Stderr)
	wantContains(t, "second host on a busy TAP", r.Stderr, "tap:nfpt0")

	stopWithin(t, host, syscall.SIGTERM, 2*time.Second)
	if !host.exited() {
		return
	}
	rep := parseStats(t, "tap host", host.stdout.String())
	if got := rep.proto(t, "icmp.v4.packets_received.echo_request"); got != 3 {
		t.Errorf("icmp.v4.packets_received.echo_request = %d, want 3", got)
	}
	if got := rep.proto(t, "icmp.v6.packets_received.echo_request"); got != 2 {
		t.Errorf("icmp.v6.packets_received.echo_request = %d, want 2", got)
	}
	var hs struct {
		Requests int64 `json:"requests"`
	}
	rep.app(t, "http :80", &hs)
	if hs.Requests != 1 {
		t.Errorf("http :80 counted %d requests, want 1", hs.Requests)
	}
}

// TestTAPNeedsCapNetAdmin: without CAP_NET_ADMIN, tap: fails with an error
// that says what is missing. As root, the binary runs with its privileges
// dropped by setpriv, inside a namespace of the test's own.
func TestTAPNeedsCapNetAdmin(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 30*time.Second)
	args := []string{"vnf", "host", "--if", "eth0=tap:nfpc0", "--ip", "192.0.2.2/24", "--serve", "http :80", "--timeout", "5s"}
	var spec procSpec
	if os.Geteuid() != 0 {
		spec = procSpec{Args: args}
	} else {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_NET_ADMIN to test the unprivileged error")
		}
		ns := netns(t, "nfpc")
		spec = procSpec{Path: "ip", Args: append([]string{"netns", "exec", ns,
			"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", nfpipeBin}, args...)}
	}
	r := run(t, ctx, 15*time.Second, spec)
	if r.Code == 0 {
		t.Fatalf("tap: without CAP_NET_ADMIN exited 0\n%s", r.Stderr)
	}
	wantNoPanic(t, "unprivileged tap", r.Stderr)
	wantContains(t, "unprivileged tap", r.Stderr, "tap:nfpc0", "CAP_NET_ADMIN")
}
