package netstack

import (
	"testing"
)

// TestTapHeader checks the virtio-net header written before each frame on a
// TAP with offloads: large TCP segments ask the kernel to segment them (GSO
// type, segment size, header length, partial checksum that finishes to a
// valid one), small ones with a partial checksum ask it to finish that, and
// anything else goes as it is.
func TestTapHeader(t *testing.T) {
	const mtu = 1500
	for _, tc := range []struct {
		name      string
		spec      segTestSpec
		mss       uint16 // from the stack's GSO options; 0: none
		needsCsum bool
		want      vnetHdr
	}{
		{"large IPv4", segTestSpec{payload: 20000}, 0, false,
			vnetHdr{flags: vnetFNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: 14 + 20 + segTestTCPLen, gsoSize: mtu - 20 - segTestTCPLen, csumStart: 34, csumOffset: 16}},
		{"large IPv6", segTestSpec{v6: true, payload: 20000}, 0, false,
			vnetHdr{flags: vnetFNeedsCsum, gsoType: vnetGSOTCPv6, hdrLen: 14 + 40 + segTestTCPLen, gsoSize: mtu - 40 - segTestTCPLen, csumStart: 54, csumOffset: 16}},
		{"large, the stack's smaller MSS", segTestSpec{payload: 20000}, 1000, true,
			vnetHdr{flags: vnetFNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: 14 + 20 + segTestTCPLen, gsoSize: 1000, csumStart: 34, csumOffset: 16}},
		{"large, an MSS above what the MTU allows", segTestSpec{payload: 20000}, 9000, true,
			vnetHdr{flags: vnetFNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: 14 + 20 + segTestTCPLen, gsoSize: mtu - 20 - segTestTCPLen, csumStart: 34, csumOffset: 16}},
		{"small, partial checksum", segTestSpec{payload: 100}, 1448, true,
			vnetHdr{flags: vnetFNeedsCsum, csumStart: 34, csumOffset: 16}},
		{"small, full checksum", segTestSpec{payload: 100}, 0, false, vnetHdr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := segTestFrame(t, tc.spec)
			f, _ := parseTCPFrame(b)
			setPartialChecksum(b, f) // a full, valid checksum first
			if err := finishChecksum(b, f.l4, tcpChecksumOffset, len(b)); err != nil {
				t.Fatal(err)
			}
			if tc.needsCsum && len(b) <= mtu+14 {
				setPartialChecksum(b, f) // as the stack leaves it
			}
			h := make([]byte, vnetHdrLen)
			if err := tapHeader(h, b, mtu, tc.mss, tc.needsCsum); err != nil {
				t.Fatal(err)
			}
			var got vnetHdr
			got.decode(h)
			if got != tc.want {
				t.Fatalf("header %+v, want %+v", got, tc.want)
			}
			if got.flags&vnetFNeedsCsum != 0 {
				// What the kernel does with NEEDS_CSUM must give a
				// valid checksum (for a large segment, each segment's
				// is derived from this one the same way).
				if err := finishChecksum(b, int(got.csumStart), int(got.csumOffset), len(b)); err != nil {
					t.Fatal(err)
				}
			}
			if !segTestTCPChecksumValid(b, f) {
				t.Error("the TCP checksum does not verify once finished")
			}
		})
	}
	t.Run("large, not TCP", func(t *testing.T) {
		b := segTestUDPFrame(false, make([]byte, 3000))
		if err := tapHeader(make([]byte, vnetHdrLen), b, mtu, 0, false); err == nil {
			t.Error("a 3000-byte UDP frame on a 1500-byte MTU got a header; want an error (it is dropped and counted)")
		}
	})
	t.Run("round trip", func(t *testing.T) {
		in := vnetHdr{flags: 1, gsoType: 4, hdrLen: 86, gsoSize: 1428, csumStart: 54, csumOffset: 16}
		b := make([]byte, vnetHdrLen)
		in.encode(b)
		var out vnetHdr
		out.decode(b)
		if out != in {
			t.Errorf("decode(encode(%+v)) = %+v", in, out)
		}
	})
}
