package tlsutil

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/tlsutil/tlstest"
)

// serverName dials ln with the CA of pki and returns the served
// certificate's common name.
func serverName(t *testing.T, addr, ca string) string {
	t.Helper()
	cc, err := ClientConfig(ca)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	first := tlstest.Write(t, dir, "first")
	cfg, err := ServerConfig(first.Cert, first.Key, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}(c)
		}
	}()
	if got := serverName(t, ln.Addr().String(), first.CA); got != "first" {
		t.Fatalf("served %q", got)
	}
	// A new pair from another CA replaces the files in place.
	second := tlstest.Write(t, filepath.Join(t.TempDir()), "second")
	for _, p := range [][2]string{{second.Cert, first.Cert}, {second.Key, first.Key}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(2 * time.Second)
		_ = os.Chtimes(p[1], later, later)
	}
	if got := serverName(t, ln.Addr().String(), second.CA); got != "second" {
		t.Fatalf("after the change served %q, want the reloaded certificate", got)
	}
	// A broken file keeps the last good certificate.
	if err := os.WriteFile(first.Cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serverName(t, ln.Addr().String(), second.CA); got != "second" {
		t.Fatalf("after a bad write served %q", got)
	}
}

func TestClientConfigRejectsUnknownCA(t *testing.T) {
	if _, err := ClientConfig(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("missing CA accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("nope"), 0o600)
	if _, err := ClientConfig(bad); err == nil {
		t.Fatal("CA file without certificates accepted")
	}
}
