//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ingest

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: idle connections wait in gorilla's reader.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

// readable is not used where rawConnOf returns nil.
func readable(uintptr) bool { return true }
