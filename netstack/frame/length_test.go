package frame

import "testing"

func qemuRec(n uint32, body []byte) []byte { return cat(u32be(n), body) }
func vdeRec(n uint16, body []byte) []byte  { return cat(u16be(n), body) }

func TestLengthMalformed(t *testing.T) {
	good := mkFrame(60, 1)
	good2 := mkFrame(1514, 2)
	q := func(b []byte) []byte { return qemuRec(uint32(len(b)), b) }
	v := func(b []byte) []byte { return vdeRec(uint16(len(b)), b) }
	runCases(t, []malformedCase{
		{"empty", QEMU, nil, steps(eofStep(), eofStep())},
		{"length 0", QEMU, cat(qemuRec(0, nil), q(good)), steps(
			errStep("qemu frame at byte 0: frame length 0 shorter than an Ethernet header (14)"),
			okStep(good), eofStep())},
		{"length 3", QEMU, cat(q(good), qemuRec(3, []byte("abc")), q(good2)), steps(
			okStep(good),
			errStep("qemu frame at byte 64: frame length 3 shorter than an Ethernet header (14)"),
			okStep(good2), eofStep())},
		{"length 13", QEMU, cat(qemuRec(13, repeat(0xff, 13)), qemuRec(13, repeat(0xff, 13)), q(good)), steps(
			errStep("qemu frame at byte 0: frame length 13 shorter than an Ethernet header (14)"),
			errStep("qemu frame at byte 17: frame length 13 shorter than an Ethernet header (14)"),
			okStep(good), eofStep())},
		{"length 65536", QEMU, cat(q(good), qemuRec(65536, repeat(0, 65536)), q(good)), steps(
			okStep(good),
			fatalStep("qemu frame at byte 64: length 65536 exceeds 65535 (is the other side speaking this format?)"))},
		{"length 90000", QEMU, cat(qemuRec(90000, nil)), steps(
			fatalStep("qemu frame at byte 0: length 90000 exceeds 65535 (is the other side speaking this format?)"))},
		{"length 4294967295", QEMU, cat(qemuRec(0xffffffff, nil)), steps(
			fatalStep("qemu frame at byte 0: length 4294967295 exceeds 65535 (is the other side speaking this format?)"))},
		{"vde stream", QEMU, v(good), steps(
			fatalStep("qemu frame at byte 0: length 3932672 exceeds 65535 (is the other side speaking this format?)"))},
		{"truncated length", QEMU, cat(q(good), []byte{0, 0}), steps(
			okStep(good),
			fatalStep("qemu frame at byte 64: truncated length prefix: want 4 bytes, got 2"))},
		{"truncated frame", QEMU, cat(q(good), qemuRec(1514, good2[:1000])), steps(
			okStep(good),
			fatalStep("qemu frame at byte 64: truncated frame: want 1514 bytes, got 1000"))},
		{"truncated empty frame", QEMU, qemuRec(60, nil), steps(
			fatalStep("qemu frame at byte 0: truncated frame: want 60 bytes, got 0"))},
		{"truncated runt", QEMU, qemuRec(5, []byte{1, 2}), steps(
			fatalStep("qemu frame at byte 0: truncated frame: want 5 bytes, got 2"))},

		{"empty", VDE, nil, steps(eofStep())},
		{"length 0", VDE, cat(vdeRec(0, nil), v(good)), steps(
			errStep("vde frame at byte 0: frame length 0 shorter than an Ethernet header (14)"),
			okStep(good), eofStep())},
		{"length 3", VDE, cat(v(good), vdeRec(3, []byte("abc")), v(good2)), steps(
			okStep(good),
			errStep("vde frame at byte 62: frame length 3 shorter than an Ethernet header (14)"),
			okStep(good2), eofStep())},
		{"length 13", VDE, cat(vdeRec(13, repeat(0xff, 13)), v(good)), steps(
			errStep("vde frame at byte 0: frame length 13 shorter than an Ethernet header (14)"),
			okStep(good), eofStep())},
		{"truncated length", VDE, cat(v(good), []byte{0}), steps(
			okStep(good),
			fatalStep("vde frame at byte 62: truncated length prefix: want 2 bytes, got 1"))},
		{"truncated frame", VDE, cat(v(good), vdeRec(1514, good2[:1000])), steps(
			okStep(good),
			fatalStep("vde frame at byte 62: truncated frame: want 1514 bytes, got 1000"))},
		{"truncated runt", VDE, vdeRec(5, []byte{1, 2}), steps(
			fatalStep("vde frame at byte 0: truncated frame: want 5 bytes, got 2"))},
	})
}

// TestLengthWire pins the exact bytes of both length-prefixed formats.
func TestLengthWire(t *testing.T) {
	b := mkFrame(14, 9)
	if got, want := encode(t, QEMU, b), cat([]byte{0, 0, 0, 14}, b); string(got) != string(want) {
		t.Errorf("qemu: got %x; want %x", got, want)
	}
	if got, want := encode(t, VDE, b), cat([]byte{0, 14}, b); string(got) != string(want) {
		t.Errorf("vde: got %x; want %x", got, want)
	}
	big := mkFrame(65535, 9)
	if got := encode(t, VDE, big); string(got[:2]) != "\xff\xff" || len(got) != 65537 {
		t.Errorf("vde 65535: got prefix %x, %d bytes", got[:2], len(got))
	}
}
