package rules

import (
	"reflect"
	"strings"
	"testing"
)

// checkRoundTrip checks that Save's output for each family reads back to
// the same tables and renders to the same text, and that it is valid
// exactly when the original is.
func checkRoundTrip(t *testing.T, rs *Ruleset) {
	t.Helper()
	for _, f := range []Family{IPv4, IPv6} {
		saved := rs.Save(f)
		if saved == "" {
			if len(rs.Tables(f)) != 0 {
				t.Fatalf("%v: tables but no Save output", f)
			}
			continue
		}
		var back Ruleset
		if err := back.AddFile("saved", []byte(saved), ParseOptions{}); err != nil {
			t.Fatalf("%v: Save output does not parse: %v\n%s", f, err, saved)
		}
		other := IPv6
		if f == IPv6 {
			other = IPv4
		}
		if len(back.Tables(other)) != 0 {
			t.Fatalf("%v: Save output read back as %v:\n%s", f, other, saved)
		}
		if got, want := dump(&back, f), dump(rs, f); !reflect.DeepEqual(got, want) {
			t.Fatalf("%v: read back differently:\n%s\ngot  %#v\nwant %#v", f, saved, got, want)
		}
		if again := back.Save(f); again != saved {
			t.Fatalf("%v: Save is not stable:\n%s\nthen\n%s", f, saved, again)
		}
		if a, b := len(familyErrors(rs, f)), len(familyErrors(&back, f)); (a == 0) != (b == 0) {
			t.Fatalf("%v: %d validation errors before the round trip, %d after:\n%s", f, a, b, saved)
		}
	}
}

// familyErrors returns Validate's cross-rule errors for one family.
func familyErrors(rs *Ruleset, f Family) []*Error {
	var errs []*Error
	for _, t := range rs.Tables(f) {
		errs = append(errs, validateTable(t)...)
	}
	return errs
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			var rs Ruleset
			if err := rs.AddCommands("--rule", append(tt.pre, tt.cmd), ParseOptions{Family: tt.fam}); err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, &rs)
		})
	}

	// Everything at once, in both families, with the real save files.
	var all Ruleset
	for _, tt := range parseCases {
		fam := tt.fam
		if fam == 0 {
			fam = IPv4
		}
		cmds := append([]string(nil), tt.pre...)
		cmds = append(cmds, tt.cmd)
		for i, c := range cmds {
			if strings.HasPrefix(c, "-N ") && all.Table(fam, "filter") != nil && all.Table(fam, "filter").Chain(c[3:]) != nil {
				cmds[i] = "-F " + c[3:]
			}
		}
		if err := all.AddCommands(tt.name, cmds, ParseOptions{Family: fam}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{realIPv4Save, realIPv6Save} {
		if err := all.AddFile("real", []byte(f), ParseOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := all.Validate(); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, &all)
}
