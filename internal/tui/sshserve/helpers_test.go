package sshserve_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"github.com/charmbracelet/x/ansi"
	gossh "golang.org/x/crypto/ssh"

	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/internal/tui/sshserve"
)

// dashboard is a trivial stand-in for the dashboard: it shows the window
// size it received and quits on q; ! panics. With tick set it redraws
// (a frame counter) every tick, like the live dashboard.
type dashboard struct {
	w, h   int
	tick   time.Duration
	frames int
}

type tickMsg struct{}

func (m dashboard) next() tea.Cmd {
	if m.tick <= 0 {
		return nil
	}
	return tea.Tick(m.tick, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m dashboard) Init() tea.Cmd { return m.next() }

func (m dashboard) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tickMsg:
		m.frames++
		return m, m.next()
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q":
			return m, tea.Quit
		case "!":
			panic("model exploded")
		}
	}
	return m, nil
}

func (m dashboard) View() tea.View {
	s := fmt.Sprintf("vpp-test-dashboard %dx%d", m.w, m.h)
	if m.tick > 0 {
		s += fmt.Sprintf(" frame %d", m.frames)
	}
	v := tea.NewView(s)
	v.AltScreen = true
	return v
}

func newDashboard(ssh.Session) tea.Model { return dashboard{} }

// clientKey is a client's key pair.
type clientKey struct {
	signer gossh.Signer
	priv   ed25519.PrivateKey
}

func newClientKey(t *testing.T) clientKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{signer: signer, priv: priv}
}

// authorizedLine is the key's authorized_keys line.
func (k clientKey) authorizedLine() string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.signer.PublicKey())))
}

// writePrivate writes the private key in OpenSSH format (mode 0600) for
// the ssh binary and returns its path.
func (k clientKey) writePrivate(t *testing.T) string {
	t.Helper()
	block, err := gossh.MarshalPrivateKey(k.priv, "vpp test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeAuthorized writes an authorized_keys file with lines.
func writeAuthorized(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testServer is a served sshserve.Server with its log.
type testServer struct {
	*sshserve.Server
	addr string
	cfg  sshserve.Config
	logs *testutil.SyncBuffer
	key  clientKey // authorized
	stop func() error
}

// startServer serves on 127.0.0.1:0 with an authorized_keys file holding
// one fresh key; edit changes the config first. The server is stopped
// when the test ends.
func startServer(t *testing.T, factory sshserve.ModelFactory, edit func(*sshserve.Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ts := &testServer{logs: &testutil.SyncBuffer{}, key: newClientKey(t)}
	ts.cfg = sshserve.Config{
		Addr:               "127.0.0.1:0",
		HostKeyPath:        filepath.Join(dir, "host", "ssh_host_ed25519_key"),
		AuthorizedKeysPath: filepath.Join(dir, "authorized_keys"),
		ShutdownTimeout:    2 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(io.MultiWriter(ts.logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	writeAuthorized(t, ts.cfg.AuthorizedKeysPath, "# test", ts.key.authorizedLine())
	if edit != nil {
		edit(&ts.cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := sshserve.Listen(ctx, ts.cfg, factory)
	if err != nil {
		cancel()
		t.Fatalf("listen: %v", err)
	}
	ts.Server, ts.addr = srv, srv.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	var stopErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = fmt.Errorf("Serve did not return within 10s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ts
}

// testWriter sends logs to t.Log, for failures.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// dial connects with key as user.
func dial(t *testing.T, addr, user string, key gossh.Signer) (*gossh.Client, error) {
	t.Helper()
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(key)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), //nolint:gosec // test server
		Timeout:         5 * time.Second,
	})
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// term is a client session with a PTY and a running shell.
type term struct {
	t    *testing.T
	sess *gossh.Session
	in   io.WriteCloser
	out  *testutil.SyncBuffer
}

// openTerm opens a session on c, with a w×h PTY when pty is set, and
// starts the shell.
func openTerm(t *testing.T, c *gossh.Client, pty bool, w, h int) *term {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	tm := &term{t: t, sess: sess, out: &testutil.SyncBuffer{}}
	sess.Stdout, sess.Stderr = tm.out, tm.out
	if tm.in, err = sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if pty {
		if err := sess.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
			t.Fatalf("request pty: %v", err)
		}
	}
	if err := sess.Shell(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	return tm
}

// screen is the output so far without escape sequences.
func (tm *term) screen() string { return ansi.Strip(tm.out.String()) }

// waitFor waits until the output contains s.
func (tm *term) waitFor(s string) {
	tm.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tm.screen(), s) {
		if time.Now().After(deadline) {
			tm.t.Fatalf("%q not in output after 5s; output: %q", s, tm.screen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the session to end and returns its exit status.
func (tm *term) wait() int {
	tm.t.Helper()
	done := make(chan error, 1)
	go func() { done <- tm.sess.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*gossh.ExitError); ok {
			return ee.ExitStatus()
		}
		tm.t.Fatalf("session: %v; output: %q", err, tm.screen())
	case <-time.After(5 * time.Second):
		tm.t.Fatalf("session still open after 5s; output: %q", tm.screen())
	}
	return -1
}

// waitLog waits until the server's log contains all of parts on one line.
func (ts *testServer) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(ts.logs.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q", parts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
