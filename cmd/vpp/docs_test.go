package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestCLIReferenceCurrent regenerates the CLI reference and compares it
// with the committed docs/cli, so a changed flag or command cannot leave
// the reference behind.
func TestCLIReferenceCurrent(t *testing.T) {
	committed := filepath.Join("..", "..", filepath.FromSlash(cliReferenceDir))
	fresh := t.TempDir()
	if err := writeCLIReference(newRootCmd(), fresh); err != nil {
		t.Fatal(err)
	}
	want := readPages(t, fresh)
	got := readPages(t, committed)
	var stale []string
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			stale = append(stale, name+" is missing")
		case !bytes.Equal(g, w):
			stale = append(stale, name+" differs")
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			stale = append(stale, name+" has no command")
		}
	}
	if len(stale) > 0 {
		sort.Strings(stale)
		t.Fatalf("docs/cli is stale: run `make docs` (%d pages: %v)", len(stale), stale)
	}
}

// readPages returns the vpp*.md files of dir by name.
func readPages(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "vpp*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pages[filepath.Base(f)] = b
	}
	return pages
}
