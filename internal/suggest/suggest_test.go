package suggest

import "testing"

func TestDidYouMean(t *testing.T) {
	names := []string{"format", "mac", "mtu", "ip", "peer"}
	for word, want := range map[string]string{
		"fromat": ` (did you mean "format"?)`,
		"mtv":    ` (did you mean "mtu"?)`,
		"mab":    ` (did you mean "mac"?)`,
		"xyzzy":  "",
		"x":      "", // one edit from "ip" is the whole word: no hint
	} {
		if got := DidYouMean(word, names); got != want {
			t.Errorf("DidYouMean(%q) = %q, want %q", word, got, want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance(kitten, sitting) = %d, want 3", d)
	}
}
