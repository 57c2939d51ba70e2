//go:build !unix

package bench

import "syscall"

// childAttr is the default here: the measurements need Linux.
func childAttr() *syscall.SysProcAttr { return nil }
