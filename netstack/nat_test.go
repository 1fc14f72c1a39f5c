package netstack

import (
	"net/netip"
	"testing"
)

// TestLinuxPickAddr checks the SNAT address choice against what a Linux
// 6.x kernel chose for the same flows (iptables -t nat -A POSTROUTING -j
// SNAT --to-source 203.0.113.10-203.0.113.20; ping from 192.0.2.2-9 to
// 198.51.100.2, observed with tcpdump). The differential tests in tests/
// check more against the running kernel.
func TestLinuxPickAddr(t *testing.T) {
	min, max := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.20")
	dst := netip.MustParseAddr("198.51.100.2")
	want := []string{"203.0.113.15", "203.0.113.18", "203.0.113.13", "203.0.113.10", "203.0.113.13", "203.0.113.18", "203.0.113.11", "203.0.113.11"}
	for i, w := range want {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(2 + i)})
		if got := linuxPickAddr(src, dst, min, max, false); got.String() != w {
			t.Errorf("SNAT of %s: got %s, Linux chose %s", src, got, w)
		}
	}
}
