package netstack

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/nfpipe/nfpipe/netstack/frame"
	"github.com/nfpipe/nfpipe/netstack/rules"
)

// TestFastPath replays frames into a router and reads what it sends on:
// a plain datagram is forwarded by the fast path with the TTL one less, a
// valid header checksum and new Ethernet addresses; everything the fast
// path leaves to gVisor (TTL 1, IP options, a bad header checksum, the
// subnet's broadcast address, a packet for the router itself, a router
// with rules) is not counted as fast-forwarded, and gVisor does with it
// what it did before.
func TestFastPath(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.7")
	peerIn := []byte{2, 0, 0, 0, 0, 1}
	peerOut := []byte{2, 0, 0, 0, 0, 2}
	routerMAC := []byte{2, 0, 0, 0, 1, 1}
	outMAC := DefaultMAC("r", "eth1", netip.MustParsePrefix("198.51.100.1/24"))
	plain := ethFrame(routerMAC, peerIn, src, dst, 1000, 9000, []byte("plain"))
	ttl1 := ethFrame(routerMAC, peerIn, src, dst, 1000, 9000, []byte("ttl 1"))
	setTTL(ttl1, 1)
	badSum := ethFrame(routerMAC, peerIn, src, dst, 1000, 9000, []byte("bad sum"))
	badSum[14+10] ^= 0xff
	bcast := ethFrame(routerMAC, peerIn, src, netip.MustParseAddr("198.51.100.255"), 1000, 9000, []byte("broadcast"))
	mine := ethFrame(routerMAC, peerIn, src, netip.MustParseAddr("198.51.100.1"), 1000, 9000, []byte("for the router"))
	options := withRouterAlert(ethFrame(routerMAC, peerIn, src, dst, 1000, 9000, []byte("options")))
	padded := append(ethFrame(routerMAC, peerIn, src, dst, 1000, 9000, []byte("pad")), 0, 0, 0, 0, 0, 0, 0, 0)

	// runOn runs the router with eth1Opts added to eth1's interface (which
	// then reads an empty capture, so that it is a two-way link).
	runOn := func(t *testing.T, withRules bool, eth1Opts string, frames ...[]byte) (out [][]byte, fast uint64) {
		dir := t.TempDir()
		in, outPath, empty := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap"), filepath.Join(dir, "empty.pcap")
		for path, fs := range map[string][][]byte{in: frames, empty: nil} {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			w := frame.NewWriter(frame.PCAP, f)
			for _, b := range fs {
				w.WriteFrame(b)
			}
			w.Flush()
			f.Close()
		}
		eth1In := "none"
		if eth1Opts != "" {
			eth1In = "pcap:" + empty
		}
		c := cfg(t, "r", true, nil,
			"eth0=pcap:"+in+"|none,ip=192.0.2.1/24,ip=2001:db8:1::1/64,mac=02:00:00:00:01:01",
			"eth1="+eth1In+"|pcap:"+outPath+",ip=198.51.100.1/24,ip=2001:db8:2::1/64,peer=02:00:00:00:00:02"+eth1Opts)
		r := buildStopped(t, c)[0]
		if withRules {
			rs := &rules.Ruleset{}
			if err := rs.AddCommands("--rule", []string{"-A FORWARD -p tcp --dport 23 -j DROP"}, rules.ParseOptions{Family: rules.IPv4}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ApplyRules(rs); err != nil {
				t.Fatal(err)
			}
		}
		r.Start()
		waitDone(t, r)
		r.Drain(5e9)
		st := r.Stats()
		fast = st.Protocols["fast_path.forwarded"]
		t.Logf("eth0 %v\neth1 %v", st.Interfaces[0].Counters, st.Interfaces[1].Counters)
		r.Close()
		g, err := os.Open(outPath)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		rd := frame.NewReader(frame.PCAP, g)
		for {
			b, err := rd.ReadFrame()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, append([]byte(nil), b...))
		}
		return out, fast
	}
	run := func(t *testing.T, withRules bool, frames ...[]byte) (out [][]byte, fast uint64) {
		return runOn(t, withRules, "", frames...)
	}

	t.Run("plain", func(t *testing.T) {
		out, fast := run(t, false, plain, padded)
		if fast != 2 || len(out) != 2 {
			t.Fatalf("fast-forwarded %d, sent %d frames; want 2 and 2", fast, len(out))
		}
		for i, b := range out {
			ip := b[14:]
			if !bytes.Equal(b[0:6], peerOut) || !bytes.Equal(b[6:12], outMAC) {
				t.Errorf("frame %d: Ethernet %x → %x, want %x → %x", i, b[6:12], b[0:6], []byte(outMAC), peerOut)
			}
			if ip[8] != 63 {
				t.Errorf("frame %d: TTL %d, want 63", i, ip[8])
			}
			if checksum(ip[:20]) != 0xffff {
				t.Errorf("frame %d: bad IPv4 header checksum", i)
			}
			if want := 14 + int(binary.BigEndian.Uint16(ip[2:])); len(b) != want {
				t.Errorf("frame %d: %d bytes, want %d (padding dropped)", i, len(b), want)
			}
		}
		if !bytes.HasSuffix(out[0], []byte("plain")) {
			t.Errorf("payload changed: % x", out[0][42:])
		}
	})
	t.Run("left to gVisor", func(t *testing.T) {
		out, fast := run(t, false, ttl1, badSum, bcast, mine, options)
		if fast != 0 {
			t.Errorf("fast-forwarded %d frames, want 0", fast)
		}
		// gVisor forwards the packet with options (TTL 63) and nothing
		// else: TTL 1 gets time-exceeded back on eth0 (no transmit
		// side), the bad header is dropped, the broadcast and the
		// router's own packet are not forwarded.
		if len(out) != 1 || out[0][14+8] != 63 || !bytes.HasSuffix(out[0], []byte("options")) {
			t.Errorf("sent %d frames, want only the one with options, TTL 63", len(out))
		}
	})
	src6, dst6 := netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::7")
	t.Run("ipv6", func(t *testing.T) {
		plain6 := eth6Frame(routerMAC, peerIn, src6, dst6, 17, 64, []byte("plain6"))
		hbh := eth6Frame(routerMAC, peerIn, src6, dst6, 0, 64, []byte("hop-by-hop"))
		hl1 := eth6Frame(routerMAC, peerIn, src6, dst6, 17, 1, []byte("hop limit 1"))
		ll := eth6Frame(routerMAC, peerIn, netip.MustParseAddr("fe80::10"), dst6, 17, 64, []byte("link-local source"))
		anycast := eth6Frame(routerMAC, peerIn, src6, netip.MustParseAddr("2001:db8:2::"), 17, 64, []byte("subnet-router anycast"))
		out, fast := run(t, false, plain6, hbh, hl1, ll, anycast)
		if fast != 1 {
			t.Errorf("fast-forwarded %d frames, want 1 (the plain one)", fast)
		}
		if len(out) == 0 || !bytes.HasSuffix(out[0], []byte("plain6")) {
			t.Fatalf("sent %d frames; the first is not the plain one", len(out))
		}
		b := out[0]
		if !bytes.Equal(b[0:6], peerOut) || !bytes.Equal(b[6:12], outMAC) || b[14+7] != 63 {
			t.Errorf("Ethernet %x → %x, hop limit %d; want %x → %x, 63", b[6:12], b[0:6], b[14+7], []byte(outMAC), peerOut)
		}
	})
	t.Run("large TCP segment", func(t *testing.T) {
		seg := segTestFrame(t, segTestSpec{payload: 9000})
		copy(seg[0:6], routerMAC)
		copy(seg[6:12], peerIn)
		copy(seg[14+12:14+16], src.AsSlice())
		copy(seg[14+16:14+20], dst.AsSlice())
		setTTL(seg, 64)
		want := append([]byte(nil), seg...)
		copy(want[0:6], peerOut)
		copy(want[6:12], outMAC)
		setTTL(want, 63)
		// To a link that takes large segments whole: the fast path,
		// the segment unchanged but for what forwarding changes.
		out, fast := runOn(t, false, ",gso=on", seg)
		if fast != 1 || len(out) != 1 {
			t.Fatalf("gso=on: fast-forwarded %d, sent %d frames; want 1 and 1", fast, len(out))
		}
		if !bytes.Equal(out[0], want) {
			t.Errorf("gso=on: the segment changed beyond its Ethernet addresses, TTL and header checksum")
		}
		// To one that does not: left to gVisor, which (the segment came
		// on a link without GSO) answers "fragmentation needed" on eth0
		// and sends nothing on eth1.
		out, fast = runOn(t, false, "", seg)
		if fast != 0 || len(out) != 0 {
			t.Errorf("gso=off: fast-forwarded %d, sent %d frames; want 0 and 0", fast, len(out))
		}
	})
	t.Run("rules", func(t *testing.T) {
		out, fast := run(t, true, plain)
		if fast != 0 || len(out) != 1 || out[0][14+8] != 63 {
			t.Errorf("with rules: fast-forwarded %d, sent %d frames; want 0 and 1 (by gVisor, TTL 63)", fast, len(out))
		}
	})
}

func setTTL(b []byte, ttl byte) {
	ip := b[14:34]
	ip[8] = ttl
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], ^checksum(ip))
}

// withRouterAlert inserts an IPv4 router alert option (IHL 6).
func withRouterAlert(b []byte) []byte {
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:34]...)
	out = append(out, 0x94, 0x04, 0, 0)
	out = append(out, b[34:]...)
	ip := out[14:38]
	ip[0] = 0x46
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+4)
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], ^checksum(ip))
	return out
}

// eth6Frame builds an Ethernet frame carrying an IPv6 packet with next
// header nh (17: UDP, 0: a hop-by-hop header with padding, then UDP) and
// hop limit hl; the UDP checksum is left 0 (routers do not check it).
func eth6Frame(dstMAC, srcMAC []byte, src, dst netip.Addr, nh, hl byte, payload []byte) []byte {
	var ext []byte
	if nh == 0 {
		ext = []byte{17, 0, 1, 4, 0, 0, 0, 0} // next header UDP, PadN
	}
	udpLen := 8 + len(payload)
	b := make([]byte, 14+40+len(ext)+udpLen)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+udpLen))
	ip[6], ip[7] = nh, hl
	copy(ip[8:24], src.AsSlice())
	copy(ip[24:40], dst.AsSlice())
	copy(ip[40:], ext)
	udp := ip[40+len(ext):]
	binary.BigEndian.PutUint16(udp[0:], 1000)
	binary.BigEndian.PutUint16(udp[2:], 9000)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[8:], payload)
	return b
}
