package chain

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the spec decoder and checker: they
// must never panic, and must return a plan or an ErrorList whose every
// error names the file.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../configs/*.yaml")
	more, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range append(seeds, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "name: x", "[", "name: a\nfunctions: {a: &a {<<: *a}}",
		"name: a\npipeline: [a, a.yaml, '', ~]\nfunctions: {a: {kind: host, interfaces: {eth0: ~}}}",
		"name: a\nlinks: [[a], {ends: [a.b, c.d, e.f]}, {mirror: {function: x}}, ~, 3]",
		"name: a\nfunctions: {a: {kind: host, interfaces: {eth0: [1.2.3.4/33, '::1/200']}, expect: [1], run: {a: b}}}",
	} {
		f.Add([]byte(s))
	}
	opts := testOptions()
	// No file system: function and rule files are missing, replays too.
	opts.ReadFile = func(string) ([]byte, error) { return nil, os.ErrNotExist }
	opts.Stat = func(string) (os.FileInfo, error) { return nil, os.ErrNotExist }
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Check("fuzz.yaml", data, opts)
		if err == nil {
			if p == nil {
				t.Fatal("no plan and no error")
			}
			var b nopWriter
			if err := p.WriteText(b); err != nil {
				t.Fatal(err)
			}
			for _, g := range GraphFormats {
				if err := p.WriteGraph(b, g); err != nil {
					t.Fatal(err)
				}
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error is not an ErrorList: %v", err)
		}
		for _, e := range list {
			if e.Pos.File == "" || e.Msg == "" {
				t.Fatalf("error without a place or message: %#v", e)
			}
		}
	})
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
