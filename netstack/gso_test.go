package netstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// TestGSOThroughRouter sends a TCP stream from host a through router r to
// host b, IPv4 and IPv6. a's link to r carries large segments (gso=on);
// r passes them on whole where its link to b does too, and splits them
// into MTU-sized frames with valid checksums where it does not. The bytes
// must arrive intact, every frame b receives must fit the MTU when its link
// has no GSO (checked on a capture), and nothing may be dropped.
func TestGSOThroughRouter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fam     [4]string // a, r eth0, r eth1, b
		dst     string
		bGSO    string
		wantBig bool // frames larger than the MTU reach b
	}{
		{"ipv4/large-to-b", [4]string{"192.0.2.2/24", "192.0.2.1/24", "198.51.100.1/24", "198.51.100.2/24"}, "198.51.100.2:5001", ",gso=on", true},
		{"ipv4/split-for-b", [4]string{"192.0.2.2/24", "192.0.2.1/24", "198.51.100.1/24", "198.51.100.2/24"}, "198.51.100.2:5001", "", false},
		{"ipv6/large-to-b", [4]string{"2001:db8:1::2/64", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:2::2/64"}, "[2001:db8:2::2]:5001", ",gso=on", true},
		{"ipv6/split-for-b", [4]string{"2001:db8:1::2/64", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:2::2/64"}, "[2001:db8:2::2]:5001", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sa, sb, capture := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "b.pcap")
			r := build(t, cfg(t, "r", true, nil,
				"eth0=unix-listen:"+sa+",gso=on,ip="+tc.fam[1],
				"eth1=unix-listen:"+sb+tc.bGSO+",ip="+tc.fam[2]))[0]
			gw := func(p string) []Route {
				rt, err := ParseRoute("default via " + netip.MustParsePrefix(p).Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				return []Route{rt}
			}
			st := buildStopped(t,
				cfg(t, "a", false, gw(tc.fam[1]), "eth0=unix:"+sa+",gso=on,ip="+tc.fam[0]),
				cfg(t, "b", false, gw(tc.fam[2]), "eth0=unix:"+sb+tc.bGSO+",capture="+capture+",ip="+tc.fam[3]))
			a, b := st[0], st[1]
			ln, err := b.ListenTCP(netip.MustParseAddrPort(tc.dst))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			a.Start()
			b.Start()

			data := make([]byte, 8<<20)
			for i := range data {
				data[i] = byte(i*7 + i>>11)
			}
			got := make(chan [32]byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					t.Error(err)
					got <- [32]byte{}
					return
				}
				defer c.Close()
				h := sha256.New()
				n, err := io.Copy(h, c)
				if err != nil || n != int64(len(data)) {
					t.Errorf("b received %d bytes (%v), want %d", n, err, len(data))
				}
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				got <- sum
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := a.DialTCP(ctx, netip.MustParseAddrPort(tc.dst))
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(20 * time.Second)) // a stalled stream fails, not hangs
			if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
				t.Fatalf("send: %v", err)
			}
			c.Close()
			select {
			case sum := <-got:
				if sum != sha256.Sum256(data) {
					t.Fatal("b received different bytes")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("transfer did not finish")
			}

			as, rs := a.Stats(), r.Stats()
			if n := as.Interfaces[0].Counters["tx_large"]; n == 0 {
				t.Errorf("a sent no large segments on its GSO link: %v", as.Interfaces[0].Counters)
			}
			out := rs.Interfaces[1].Counters
			if tc.wantBig && (out["tx_large"] == 0 || out["tx_split"] != 0) {
				t.Errorf("router eth1 (gso=on): tx_large=%d tx_split=%d, want large segments passed whole", out["tx_large"], out["tx_split"])
			}
			if !tc.wantBig && (out["tx_split"] == 0 || out["tx_large"] != 0) {
				t.Errorf("router eth1 (no gso): tx_large=%d tx_split=%d, want large segments split", out["tx_large"], out["tx_split"])
			}
			for name, s := range map[string]Stats{"a": as, "r": rs, "b": b.Stats()} {
				for _, ifc := range s.Interfaces {
					if ifc.Drops != 0 {
						t.Errorf("%s %s dropped %d frames: %v", name, ifc.Name, ifc.Drops, ifc.Counters)
					}
				}
			}
			if n := rs.Protocols["ip.forwarding.packet_too_big"]; n != 0 {
				t.Errorf("router refused %d packets as too big", n)
			}
			b.Close()
			largest := largestFrame(t, capture)
			if tc.wantBig && largest <= 1514 {
				t.Errorf("largest frame b received: %d bytes, want large segments", largest)
			}
			if !tc.wantBig && largest > 1514 {
				t.Errorf("largest frame b received: %d bytes, want at most 1514 (MTU 1500)", largest)
			}
		})
	}
}

// largestFrame reads a pcap capture and returns its largest frame.
func largestFrame(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := frame.NewReader(frame.PCAP, f)
	largest, n := 0, 0
	for {
		b, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("capture %s: %v", path, err)
		}
		n++
		largest = max(largest, len(b))
	}
	if n == 0 {
		t.Fatalf("capture %s is empty", path)
	}
	return largest
}
