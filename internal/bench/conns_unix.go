//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// connsFileLimit raises this process's soft RLIMIT_NOFILE to the hard
// limit and fails when n connections do not fit it, here or in ingest
// (whose Go runtime raises its own soft limit to the same hard limit).
func connsFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise the open file limit to %d: %w", lim.Max, err)
		}
	}
	if need := uint64(n) + connsFDReserve; need > lim.Cur {
		return fmt.Errorf("%d connections need %d open files in this process and in ingest, the limit is %d (ulimit -Hn; raising it needs CAP_SYS_RESOURCE): use at most %d connections",
			n, need, lim.Cur, int64(lim.Cur)-connsFDReserve)
	}
	return nil
}
