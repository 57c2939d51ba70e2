//go:build unix

package bench

import "syscall"

// childAttr puts a child in a process group of its own, so that a
// terminal's Ctrl-C reaches only the benchmark, which then stops its
// children in order (the broker last) instead of all of them at once.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
