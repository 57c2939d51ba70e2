package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/auth"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/internal/tlsutil"
	"github.com/vppctl/vpp/internal/tlsutil/tlstest"
)

// TestIngestRefusesWithoutAuth: neither --auth-key nor --insecure is a
// usage error (exit 2) with a message that says what to do.
func TestIngestRefusesWithoutAuth(t *testing.T) {
	t.Setenv("VPP_AUTH_KEY", "")
	os.Unsetenv("VPP_AUTH_KEY")
	if code := run(context.Background(), []string{"ingest", "--brokers", "127.0.0.1:1", "--status=false"}); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	dir := t.TempDir()
	if code := run(context.Background(), []string{"token", "keygen", "--type", "hmac", "--out", filepath.Join(dir, "k")}); code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	if code := run(context.Background(), []string{"ingest", "--brokers", "127.0.0.1:1", "--auth-key", filepath.Join(dir, "k"), "--insecure"}); code != 2 {
		t.Fatalf("--auth-key with --insecure: exit %d, want 2", code)
	}
}

// TestTokenIssue: keygen, then issue tokens the public key verifies.
func TestTokenIssue(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "ingest.key")
	if code := run(context.Background(), []string{"token", "keygen", "--out", key}); code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	if code := run(context.Background(), []string{"token", "keygen", "--out", key}); code == 0 {
		t.Fatal("keygen overwrote a key")
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi.Mode(), err)
	}
	out := captureStdout(t, func() {
		if code := run(context.Background(), []string{"token", "issue", "--key", key, "--devices", "a,b", "--site", "s1", "--ttl", "1h"}); code != 0 {
			t.Fatalf("issue exit %d", code)
		}
	})
	pub, err := auth.LoadKey(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	g, err := auth.NewVerifier(pub, auth.VerifierOptions{}).Verify(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Allows("a", "x") || !g.Allows("z", "s1") || g.Allows("z", "s2") {
		t.Fatalf("grant %v", g)
	}
	if code := run(context.Background(), []string{"token", "issue", "--key", key + ".pub", "--device", "a"}); code != 2 {
		t.Fatalf("issue with a public key: exit %d, want 2", code)
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	f()
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// TestAggregateHTTPS: aggregate --http with --tls-cert/--tls-key and
// --api-token: https only, /healthz open, /api/* and /metrics need the
// token, and nothing but GET/HEAD is served.
func TestAggregateHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded broker")
	}
	emb, err := kafka.StartEmbedded(kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	pki := tlstest.Write(t, t.TempDir(), "aggregate")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "api-token-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"aggregate", "--brokers", emb.Addr(), "--partitions", "2", "--replication", "1",
			"--http", addr, "--tls-cert", pki.Cert, "--tls-key", pki.Key, "--api-token", token, "--quiet", "--log-level", "warn"})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("aggregate exit %d", code)
		}
	}()
	cc, err := tlsutil.ClientConfig(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cc}, Timeout: 5 * time.Second}
	do := func(method, path, tok string) int {
		req, _ := http.NewRequest(method, "https://"+addr+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for do("GET", "/healthz", "") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("aggregate https never answered /healthz")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain http served")
	}
	for _, tc := range []struct {
		method, path, tok string
		want              int
	}{
		{"GET", "/api/metrics/fleet", "", 401},
		{"GET", "/api/metrics/fleet", "wrong-token-0123456789", 401},
		{"GET", "/api/metrics/fleet", token, 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", token, 200},
		{"POST", "/api/metrics/fleet", token, 405},
		{"PUT", "/api/metrics/regions", token, 405},
		{"DELETE", "/api/metrics/pipeline", token, 405},
		{"POST", "/metrics", token, 405},
		{"POST", "/", "", 405},
	} {
		if got := do(tc.method, tc.path, tc.tok); got != tc.want {
			t.Errorf("%s %s (token %v): %d, want %d", tc.method, tc.path, tc.tok != "", got, tc.want)
		}
	}
}
