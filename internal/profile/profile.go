// Package profile writes pprof profiles of the running process: a CPU
// profile over a span of time, and the allocations made since it started.
package profile

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// StartCPU writes a CPU profile to path until the returned function is
// called; that function reports an error closing the file.
func StartCPU(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile %s: %w", path, err)
		}
		return nil
	}, nil
}

// WriteAllocs writes the allocations made since the process started, by
// allocation site, to path (go tool pprof -sample_index=alloc_space; the
// in-use samples are as of the last garbage collection).
func WriteAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	runtime.GC() // the in-use samples reflect now
	werr := pprof.Lookup("allocs").WriteTo(f, 0)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("alloc profile %s: %w", path, err)
	}
	return nil
}
