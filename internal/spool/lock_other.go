//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package spool

import (
	"fmt"
	"io"
	"os"
)

// dirLocking is true where lockDir keeps a second process out.
const dirLocking = false

// lockDir creates the lock file; on this OS it does not lock it, so two
// processes must not share a spool directory.
func lockDir(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}
