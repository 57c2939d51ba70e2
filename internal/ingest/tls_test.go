package ingest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vppctl/vpp/internal/sim"
	"github.com/vppctl/vpp/internal/tlsutil"
	"github.com/vppctl/vpp/internal/tlsutil/tlstest"
)

// TestTLS serves wss:// with a certificate from a test CA: the simulator
// trusting that CA (vpp sim --ca) gets every reading acked; a client
// without it fails the handshake; a replaced certificate is served to new
// connections without a restart.
func TestTLS(t *testing.T) {
	pki := tlstest.Write(t, t.TempDir(), "ingest-1")
	tc, err := tlsutil.ServerConfig(pki.Cert, pki.Key, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, Config{TLS: tc}, &fakePub{})
	url := srv.URL()
	if url[:6] != "wss://" {
		t.Fatalf("URL %s", url)
	}
	if _, _, err := websocket.DefaultDialer.Dial(url, nil); err == nil {
		t.Fatal("handshake without the CA succeeded")
	}
	cc, err := tlsutil.ClientConfig(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(sim.Config{URL: url, TLS: cc, Devices: 10, Rate: 1000, Count: 300, Conns: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("sim over wss: %v", err)
	}
	if tr := s.Truth(); tr.ReadingsAcked != 300 {
		t.Fatalf("acked %d of 300", tr.ReadingsAcked)
	}

	// Rotate: a new CA and leaf replace the files; new handshakes get it.
	next := tlstest.Write(t, t.TempDir(), "ingest-2")
	for _, p := range [][2]string{{next.Cert, pki.Cert}, {next.Key, pki.Key}} {
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
	cc2, err := tlsutil.ClientConfig(next.CA)
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{TLSClientConfig: cc2}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial after rotation: %v", err)
	}
	tlsConn, ok := ws.NetConn().(*tls.Conn)
	if !ok || tlsConn.ConnectionState().PeerCertificates[0].Subject.CommonName != "ingest-2" {
		t.Fatal("the rotated certificate was not served")
	}
	ws.Close()
}
