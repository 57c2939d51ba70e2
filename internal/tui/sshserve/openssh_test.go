package sshserve_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/vppctl/vpp/internal/e2e"
	"github.com/vppctl/vpp/internal/testutil"
	"github.com/vppctl/vpp/internal/tui/sshserve"
)

// sshArgs is an OpenSSH client command line for the test server: only the
// given key, no user configuration, no known_hosts, no prompts.
func sshArgs(addr, keyPath string) []string {
	host, port, _ := strings.Cut(addr, ":")
	return []string{"ssh",
		"-F", "/dev/null",
		"-i", keyPath,
		"-p", port,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=5",
		"-tt", "operator@" + host,
	}
}

func requireSSH(t *testing.T) {
	t.Helper()
	testutil.RequireTool(t, "ssh", "apt-get install openssh-client")
}

// TestOpenSSHClient is the acceptance check: the real ssh client, in a
// real terminal (tmux), sees the dashboard at its own size, q ends it with
// exit status 0 and the terminal is restored.
func TestOpenSSHClient(t *testing.T) {
	requireSSH(t)
	e2e.RequireTmux(t)
	ts := startServer(t, newDashboard, nil)

	tm := e2e.StartTmux(t, 100, 30, sshArgs(ts.addr, ts.key.writePrivate(t))...)
	tm.WaitFor("vpp-test-dashboard 100x30", 10*time.Second)

	tm.Resize(90, 25)
	tm.WaitFor("vpp-test-dashboard 90x25", 5*time.Second)

	tm.Send("q")
	if code := tm.Wait(10 * time.Second); code != 0 {
		t.Fatalf("ssh exit code %d, want 0; screen:\n%s", code, tm.Capture())
	}
	// The alternate screen is gone (the dashboard no longer shows) and the
	// terminal's modes are as before.
	if screen := tm.Capture(); strings.Contains(screen, "vpp-test-dashboard") {
		t.Errorf("dashboard still on screen after exit:\n%s", screen)
	}
	if err := tm.TerminalRestored(); err != nil {
		t.Error(err)
	}
	ts.waitLog(t, "ssh session end", "user=operator", "reason=quit")
}

// TestOpenSSHClientUnknownKey: a key that is not in authorized_keys gets
// "Permission denied (publickey)" and a non-zero exit.
func TestOpenSSHClientUnknownKey(t *testing.T) {
	requireSSH(t)
	ts := startServer(t, newDashboard, nil)
	stranger := newClientKey(t)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	args := sshArgs(ts.addr, stranger.writePrivate(t))
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err == nil {
		t.Fatalf("ssh with an unknown key succeeded: %s", out)
	}
	if ctx.Err() != nil {
		t.Fatalf("ssh timed out: %s", out)
	}
	if !strings.Contains(string(out), "Permission denied (publickey)") {
		t.Errorf("ssh output %q, want Permission denied (publickey)", out)
	}
	ts.waitLog(t, "ssh key refused", "user=operator", "fingerprint="+fingerprint(stranger))
}

// TestOpenSSHClientTooMany: with one session allowed, a second ssh gets the
// message and exit status 1 while the first keeps running.
func TestOpenSSHClientTooMany(t *testing.T) {
	requireSSH(t)
	e2e.RequireTmux(t)
	ts := startServer(t, newDashboard, func(c *sshserve.Config) { c.MaxSessions = 1 })
	key := ts.key.writePrivate(t)

	first := e2e.StartTmux(t, 80, 24, sshArgs(ts.addr, key)...)
	first.WaitFor("vpp-test-dashboard 80x24", 10*time.Second)

	second := e2e.StartTmux(t, 80, 24, sshArgs(ts.addr, key)...)
	second.WaitFor("vpp top: too many sessions (1), try again later", 10*time.Second)
	if code := second.Wait(10 * time.Second); code != 1 {
		t.Errorf("second ssh exit code %d, want 1", code)
	}

	first.Send("q")
	if code := first.Wait(10 * time.Second); code != 0 {
		t.Errorf("first ssh exit code %d, want 0", code)
	}
}

func fingerprint(k clientKey) string { return gossh.FingerprintSHA256(k.signer.PublicKey()) }
