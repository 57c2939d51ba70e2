package sshserve_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/vppctl/vpp/internal/tui/sshserve"
)

func TestAuthorizedKeySeesDashboard(t *testing.T) {
	ts := startServer(t, newDashboard, nil)
	c, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	tm := openTerm(t, c, true, 100, 30)
	tm.waitFor("vpp-test-dashboard 100x30")
	if n := len(ts.Sessions()); n != 1 {
		t.Errorf("Sessions() = %d, want 1", n)
	}

	// The client's window changes reach the program.
	if err := tm.sess.WindowChange(24, 80); err != nil {
		t.Fatal(err)
	}
	tm.waitFor("vpp-test-dashboard 80x24")

	if _, err := tm.in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if code := tm.wait(); code != 0 {
		t.Fatalf("exit status = %d, want 0; output %q", code, tm.screen())
	}

	fp := gossh.FingerprintSHA256(ts.key.signer.PublicKey())
	ts.waitLog(t, "ssh session start", "user=alice", "fingerprint="+fp, "remote=127.0.0.1:")
	ts.waitLog(t, "ssh session end", "fingerprint="+fp, "reason=quit", "duration=")
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.Sessions()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(ts.Sessions()); n != 0 {
		t.Errorf("Sessions() after quit = %d, want 0", n)
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	ts := startServer(t, newDashboard, nil)
	stranger := newClientKey(t)
	_, err := dial(t, ts.addr, "mallory", stranger.signer)
	if err == nil {
		t.Fatal("dial with an unknown key succeeded")
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("dial error = %v, want an authentication failure", err)
	}
	ts.waitLog(t, "ssh key refused", "remote=127.0.0.1:", "user=mallory",
		"fingerprint="+gossh.FingerprintSHA256(stranger.signer.PublicKey()))
}

func TestAuthorizedKeysReloaded(t *testing.T) {
	ts := startServer(t, newDashboard, nil)
	bob := newClientKey(t)
	if _, err := dial(t, ts.addr, "bob", bob.signer); err == nil {
		t.Fatal("bob got in before being authorized")
	}
	// Bob is added; the first key is dropped, and a key with an option
	// this server cannot honour is skipped.
	carol := newClientKey(t)
	writeAuthorized(t, ts.cfg.AuthorizedKeysPath,
		"restrict "+bob.authorizedLine()+" bob@example",
		`from="10.0.0.0/8" `+carol.authorizedLine(),
		"not a key")
	if _, err := dial(t, ts.addr, "bob", bob.signer); err != nil {
		t.Fatalf("bob refused after being added: %v", err)
	}
	if _, err := dial(t, ts.addr, "alice", ts.key.signer); err == nil {
		t.Fatal("removed key still accepted")
	}
	if _, err := dial(t, ts.addr, "carol", carol.signer); err == nil {
		t.Fatal("key with from= option accepted")
	}
	ts.waitLog(t, "key skipped, option not supported", `from=`)

	// A vanished file lets nobody in.
	if err := os.Remove(ts.cfg.AuthorizedKeysPath); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, ts.addr, "bob", bob.signer); err == nil {
		t.Fatal("key accepted after authorized_keys was removed")
	}
}

func TestMaxSessions(t *testing.T) {
	ts := startServer(t, newDashboard, func(c *sshserve.Config) { c.MaxSessions = 1 })
	c, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	first := openTerm(t, c, true, 80, 24)
	first.waitFor("vpp-test-dashboard 80x24")

	extra := openTerm(t, c, true, 80, 24)
	if code := extra.wait(); code != 1 {
		t.Errorf("extra session exit status = %d, want 1", code)
	}
	if want := "vpp top: too many sessions (1), try again later"; !strings.Contains(extra.screen(), want) {
		t.Errorf("extra session output %q, want %q", extra.screen(), want)
	}
	ts.waitLog(t, "ssh session end", "reason=too-many-sessions")

	// The first session is unaffected, and its slot is free once it quits.
	if _, err := first.in.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(); code != 0 {
		t.Fatalf("first session exit status = %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.Sessions()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	again := openTerm(t, c, true, 90, 20)
	again.waitFor("vpp-test-dashboard 90x20")
}

func TestNoPTY(t *testing.T) {
	ts := startServer(t, newDashboard, nil)
	c, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	tm := openTerm(t, c, false, 0, 0)
	if code := tm.wait(); code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	if !strings.Contains(tm.screen(), "Requires an active PTY") {
		t.Errorf("output %q, want the PTY message", tm.screen())
	}
	ts.waitLog(t, "ssh session end", "reason=no-pty")
}

func TestCommandRefused(t *testing.T) {
	ts := startServer(t, newDashboard, nil)
	c, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput("cat /etc/passwd")
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 1 {
		t.Errorf("exit = %v, want status 1", err)
	}
	if !bytes.Contains(out, []byte("commands are not supported")) {
		t.Errorf("output %q", out)
	}
}

func TestHostKeyPersisted(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "authorized_keys")
	writeAuthorized(t, auth, newClientKey(t).authorizedLine())
	cfg := sshserve.Config{
		Addr:               "127.0.0.1:0",
		HostKeyPath:        filepath.Join(dir, "state", "ssh_host_ed25519_key"),
		AuthorizedKeysPath: auth,
		Logger:             slog.New(slog.DiscardHandler),
	}
	listen := func() gossh.PublicKey {
		t.Helper()
		s, err := sshserve.Listen(t.Context(), cfg, newDashboard)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.HostKey()
	}
	first := listen()
	if first.Type() != gossh.KeyAlgoED25519 {
		t.Errorf("host key type %s, want ed25519", first.Type())
	}
	fi, err := os.Stat(cfg.HostKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("host key mode %v, want 0600", perm)
	}
	if second := listen(); !bytes.Equal(first.Marshal(), second.Marshal()) {
		t.Error("second start generated a new host key")
	}

	// Clients see that key.
	ts := startServer(t, newDashboard, func(c *sshserve.Config) { c.HostKeyPath = cfg.HostKeyPath })
	var seen gossh.PublicKey
	c, err := gossh.Dial("tcp", ts.addr, &gossh.ClientConfig{
		User: "alice",
		Auth: []gossh.AuthMethod{gossh.PublicKeys(ts.key.signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			seen = key
			return nil
		},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if !bytes.Equal(seen.Marshal(), first.Marshal()) {
		t.Error("client saw a different host key")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "authorized_keys")
	writeAuthorized(t, auth, newClientKey(t).authorizedLine())
	hostKey := filepath.Join(dir, "hostkey")
	for name, tc := range map[string]struct {
		cfg     sshserve.Config
		factory sshserve.ModelFactory
		want    error
	}{
		"no authorized keys": {sshserve.Config{HostKeyPath: hostKey}, newDashboard, sshserve.ErrNoAuthorizedKeys},
		"no host key":        {sshserve.Config{AuthorizedKeysPath: auth}, newDashboard, sshserve.ErrNoHostKey},
		"no factory":         {sshserve.Config{AuthorizedKeysPath: auth, HostKeyPath: hostKey}, nil, sshserve.ErrNoFactory},
		"missing file": {sshserve.Config{AuthorizedKeysPath: filepath.Join(dir, "nope"), HostKeyPath: hostKey},
			newDashboard, os.ErrNotExist},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.Addr = "127.0.0.1:0"
			err := sshserve.Serve(t.Context(), tc.cfg, tc.factory)
			if !errors.Is(err, tc.want) {
				t.Errorf("Serve = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPanicInOneSession(t *testing.T) {
	factory := func(sess ssh.Session) tea.Model {
		if sess.User() == "boom" {
			panic("factory exploded")
		}
		return dashboard{}
	}
	ts := startServer(t, factory, nil)
	c, err := dial(t, ts.addr, "boom", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	bad := openTerm(t, c, true, 80, 24)
	if code := bad.wait(); code != 1 {
		t.Errorf("panicking session exit status = %d, want 1", code)
	}
	if !strings.Contains(bad.screen(), "internal error") {
		t.Errorf("panicking session output %q", bad.screen())
	}
	ts.waitLog(t, "ssh session panic", "factory exploded")

	// A panic in the model's Update ends that session the same way.
	c3, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	bad2 := openTerm(t, c3, true, 80, 24)
	bad2.waitFor("vpp-test-dashboard 80x24")
	if _, err := bad2.in.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	if code := bad2.wait(); code != 1 {
		t.Errorf("session whose model panicked: exit status = %d, want 1", code)
	}
	if !strings.Contains(bad2.screen(), "internal error") {
		t.Errorf("session whose model panicked: output %q", bad2.screen())
	}
	ts.waitLog(t, "ssh session panic", "model exploded", "in=Update")
	ts.waitLog(t, "ssh session end", "reason=panic")

	c2, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatalf("server gone after a panic: %v", err)
	}
	openTerm(t, c2, true, 80, 24).waitFor("vpp-test-dashboard 80x24")
}

func TestIdleTimeout(t *testing.T) {
	// The model redraws every 20ms: output is not activity.
	ticking := func(ssh.Session) tea.Model { return dashboard{tick: 20 * time.Millisecond} }
	// Keys every 100 ms against a 2 s timeout: a stall of the test's own
	// writer long enough to close the session needs a machine 20× slower.
	const idle = 2 * time.Second
	ts := startServer(t, ticking, func(c *sshserve.Config) { c.IdleTimeout = idle })
	c, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	tm := openTerm(t, c, true, 80, 24)
	tm.waitFor("vpp-test-dashboard 80x24 frame")

	// Key presses are activity: typing keeps the session open past the
	// timeout.
	start := time.Now()
	var lastKey time.Time
	for time.Since(start) < 3*idle {
		if _, err := tm.in.Write([]byte("x")); err != nil {
			t.Fatalf("session closed while typing after %s: %v; output %q", time.Since(start), err, tm.screen())
		}
		lastKey = time.Now()
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(tm.screen(), "session closed") {
		t.Fatalf("session closed while typing; output %q", tm.screen())
	}

	if code := tm.wait(); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	// Never before the timeout; the upper bound only catches a timeout
	// that does not fire.
	if d := time.Since(lastKey); d < idle || d > idle+10*time.Second {
		t.Errorf("idle session closed %s after the last key, want about %s", d, idle)
	}
	if !strings.Contains(tm.screen(), "vpp top: no input for 2s, session closed") {
		t.Errorf("output %q, want the idle message", tm.screen())
	}
	ts.waitLog(t, "ssh session end", "reason=idle")
}

func TestShutdownClosesSessions(t *testing.T) {
	ts := startServer(t, newDashboard, nil)
	c, err := dial(t, ts.addr, "alice", ts.key.signer)
	if err != nil {
		t.Fatal(err)
	}
	tm := openTerm(t, c, true, 80, 24)
	tm.waitFor("vpp-test-dashboard 80x24")

	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	if code := tm.wait(); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	if !strings.Contains(tm.screen(), "vpp top: server shutting down") {
		t.Errorf("output %q, want the shutdown message", tm.screen())
	}
	_ = c.Close()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	ts.waitLog(t, "ssh session end", "reason=shutdown")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := (&net.Dialer{}).DialContext(ctx, "tcp", ts.addr); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}
