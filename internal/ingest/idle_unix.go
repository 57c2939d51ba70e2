//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ingest

import (
	"net"
	"syscall"
)

// rawConnOf returns the socket of a plain TCP connection, or nil (TLS).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readable reports whether a read of socket fd would not block: it has
// bytes, or an end of stream or error to report.
func readable(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n > 0 || err != syscall.EAGAIN
}
