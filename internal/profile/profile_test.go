package profile

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readProfile returns the decompressed protobuf of a pprof file.
func readProfile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not a gzip-compressed profile: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var sink [][]byte

// TestWriteAllocs: the profile names the allocation sample types and the
// function that allocated.
func TestWriteAllocs(t *testing.T) {
	for range 1000 {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil
	path := filepath.Join(t.TempDir(), "allocs.pprof")
	if err := WriteAllocs(path); err != nil {
		t.Fatal(err)
	}
	b := readProfile(t, path)
	for _, want := range []string{"alloc_space", "inuse_space", "TestWriteAllocs"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("allocation profile lacks %q", want)
		}
	}
}

// TestStartCPU: a CPU profile is written when stopped, and a second one
// cannot start while the first runs.
func TestStartCPU(t *testing.T) {
	dir := t.TempDir()
	stop, err := StartCPU(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StartCPU(filepath.Join(dir, "second.pprof")); err == nil {
		t.Error("a second CPU profile started while the first runs")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if b := readProfile(t, filepath.Join(dir, "cpu.pprof")); !bytes.Contains(b, []byte("nanoseconds")) {
		t.Error("CPU profile lacks its sample unit")
	}
	if _, err := StartCPU(filepath.Join(dir, "missing", "cpu.pprof")); err == nil {
		t.Error("no error for a profile path in a missing directory")
	}
}
