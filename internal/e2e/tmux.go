// Package e2e holds helpers for end-to-end tests that drive real terminals:
// a command runs in a detached tmux session of a given size, the test types
// keys into it, reads the screen as tmux renders it and collects the exit
// code.
//
// The tmux binary is required; StartTmux skips the test when it is missing,
// or fails it under CI=true (CI installs the tmux package).
package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/testutil"
)

// cmdTimeout bounds every tmux invocation.
const cmdTimeout = 5 * time.Second

// pollInterval is how often WaitFor and Wait look again.
const pollInterval = 50 * time.Millisecond

// Tmux is a command running in a private tmux server (its own -L socket),
// in a single window of a fixed size. The server is killed when the test
// ends.
type Tmux struct {
	t        testing.TB
	socket   string
	target   string
	exitFile string
	sttyFile string
}

// RequireTmux skips the test when the tmux binary is not installed, or
// fails it under CI=true.
func RequireTmux(t testing.TB) {
	t.Helper()
	testutil.RequireTool(t, "tmux", "apt-get install tmux")
}

// StartTmux runs cmd (the program and its arguments, quoted for the shell
// here) in a new detached tmux session width columns by height rows, and
// returns once tmux has started it. The pane stays on screen after the
// command exits, so Capture still shows its last screen; the tmux server
// is killed when the test ends. The command
// inherits the test's environment with TERM=tmux-256color; prefix it with
// "env", "K=V" to add variables.
func StartTmux(t testing.TB, width, height int, cmd ...string) *Tmux {
	t.Helper()
	RequireTmux(t)
	if len(cmd) == 0 {
		t.Fatal("e2e: StartTmux needs a command")
	}
	dir := t.TempDir()
	tm := &Tmux{
		t:        t,
		socket:   "vpp-e2e-" + strconv.Itoa(os.Getpid()) + "-" + rand.Text()[:10],
		target:   "e2e",
		exitFile: filepath.Join(dir, "exit"),
		sttyFile: filepath.Join(dir, "stty"),
	}
	conf := filepath.Join(dir, "tmux.conf")
	err := os.WriteFile(conf, []byte(strings.Join([]string{
		"set -g default-shell /bin/sh",
		"set -g default-terminal tmux-256color",
		"set -g remain-on-exit on",
		"set -g status off",
		"set -g escape-time 0",
		"set -g history-limit 2000",
		"",
	}, "\n")), 0o600)
	if err != nil {
		t.Fatalf("e2e: write tmux config: %v", err)
	}
	// The shell records the terminal modes around the command (for
	// TerminalRestored) and outlives it: tmux loses the last output of a
	// pane whose process exits right after writing it, and the pause
	// before the exit code is written lets tmux draw that output before
	// Wait returns.
	script := fmt.Sprintf(`b=$(stty -g); %s; st=$?; a=$(stty -g); sleep 0.2; `+
		`if [ "$a" = "$b" ]; then echo same; else echo "before $b after $a"; fi > %s; `+
		`echo "exit=$st" > %s; exec sleep 86400`,
		shellJoin(cmd), shellQuote(tm.sttyFile), shellQuote(tm.exitFile))
	t.Cleanup(func() {
		// The server may already be gone; nothing to report then.
		_, _ = tm.run("kill-server")
	})
	_, err = tm.run("-f", conf, "new-session", "-d", "-s", tm.target,
		"-x", strconv.Itoa(width), "-y", strconv.Itoa(height), script)
	if err != nil {
		t.Fatalf("e2e: start tmux: %v", err)
	}
	return tm
}

// run runs one tmux command against the private server, bounded by
// cmdTimeout, and returns its standard output.
func (tm *Tmux) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, "tmux", append([]string{"-L", tm.socket}, args...)...)
	c.Env = withoutEnv(os.Environ(), "TMUX", "TMUX_PANE")
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Send types keys into the pane. Each argument is a tmux key name or a
// string of characters: "q", "Enter", "Escape", "Up", "C-c", "/".
func (tm *Tmux) Send(keys ...string) {
	tm.t.Helper()
	if _, err := tm.run(append([]string{"send-keys", "-t", tm.target, "--"}, keys...)...); err != nil {
		tm.t.Fatalf("e2e: send %q: %v", keys, err)
	}
}

// Type types text literally into the pane, with no key-name lookup.
func (tm *Tmux) Type(text string) {
	tm.t.Helper()
	if _, err := tm.run("send-keys", "-t", tm.target, "-l", "--", text); err != nil {
		tm.t.Fatalf("e2e: type %q: %v", text, err)
	}
}

// Resize changes the window to width columns by height rows; the program
// gets SIGWINCH as with a real terminal.
func (tm *Tmux) Resize(width, height int) {
	tm.t.Helper()
	if _, err := tm.run("resize-window", "-t", tm.target, "-x", strconv.Itoa(width), "-y", strconv.Itoa(height)); err != nil {
		tm.t.Fatalf("e2e: resize to %dx%d: %v", width, height, err)
	}
}

// Capture returns the pane's visible screen as text, one line per row,
// trailing blanks trimmed.
func (tm *Tmux) Capture() string {
	tm.t.Helper()
	out, err := tm.run("capture-pane", "-p", "-t", tm.target)
	if err != nil {
		tm.t.Fatalf("e2e: capture: %v", err)
	}
	return out
}

// WaitFor waits until the screen contains substr and returns that screen;
// after timeout the test fails, showing the last screen.
func (tm *Tmux) WaitFor(substr string, timeout time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		screen := tm.Capture()
		if strings.Contains(screen, substr) {
			return screen
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("e2e: %q not on screen after %s; screen:\n%s", substr, timeout, screen)
		}
		time.Sleep(pollInterval)
	}
}

// Exited reports the command's exit code if it has exited. A command
// killed by a signal (with the shell around it, e.g. by ^C) reports
// 128+signal, as a shell would.
func (tm *Tmux) Exited() (code int, ok bool) {
	tm.t.Helper()
	data, err := os.ReadFile(tm.exitFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tm.t.Fatalf("e2e: read exit code: %v", err)
	}
	if s := strings.TrimSpace(string(data)); strings.HasPrefix(s, "exit=") {
		if code, err := strconv.Atoi(strings.TrimPrefix(s, "exit=")); err == nil {
			return code, true
		}
	}
	// No exit file: the wrapping shell may itself have been killed.
	out, err := tm.run("display-message", "-p", "-t", tm.target, "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}")
	if err != nil {
		tm.t.Fatalf("e2e: pane state: %v", err)
	}
	f := strings.Split(strings.TrimSpace(out), ":")
	if len(f) != 3 || f[0] != "1" {
		return 0, false
	}
	if _, err := os.Stat(tm.exitFile); err == nil {
		// The shell exited normally; its exit file is complete now.
		return tm.Exited()
	}
	if sig, err := strconv.Atoi(f[2]); err == nil && sig > 0 {
		return 128 + sig, true
	}
	if st, err := strconv.Atoi(f[1]); err == nil {
		return st, true
	}
	return 0, false
}

// Wait waits for the command to exit and returns its exit code; after
// timeout the test fails, showing the last screen.
func (tm *Tmux) Wait(timeout time.Duration) int {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if code, ok := tm.Exited(); ok {
			return code
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("e2e: command still running after %s; screen:\n%s", timeout, tm.Capture())
		}
		time.Sleep(pollInterval)
	}
}

// TerminalRestored reports, after Wait, whether the command left the
// terminal as it found it: the same stty modes (raw mode undone), the main
// screen rather than the alternate one, a visible cursor, and mouse
// reporting and application cursor and keypad modes off. It returns
// an error naming what was left behind.
func (tm *Tmux) TerminalRestored() error {
	tm.t.Helper()
	var problems []string
	data, err := os.ReadFile(tm.sttyFile)
	switch {
	case err != nil:
		return fmt.Errorf("terminal modes not recorded (did the command exit?): %w", err)
	case strings.TrimSpace(string(data)) != "same":
		problems = append(problems, "stty modes changed: "+strings.TrimSpace(string(data)))
	}
	out, err := tm.run("display-message", "-p", "-t", tm.target,
		"#{alternate_on}:#{cursor_flag}:#{mouse_any_flag}:#{keypad_cursor_flag}:#{keypad_flag}")
	if err != nil {
		return fmt.Errorf("terminal state: %w", err)
	}
	f := strings.Split(strings.TrimSpace(out), ":")
	names := []string{"alternate screen on", "cursor hidden", "mouse reporting on",
		"application cursor keys on", "application keypad on"}
	want := []string{"0", "1", "0", "0", "0"}
	if len(f) != len(want) {
		return fmt.Errorf("terminal state: unexpected tmux answer %q", out)
	}
	for i := range want {
		if f[i] != want[i] {
			problems = append(problems, names[i])
		}
	}
	if len(problems) > 0 {
		return errors.New("terminal not restored: " + strings.Join(problems, "; "))
	}
	return nil
}

// shellJoin quotes args for /bin/sh and joins them with spaces.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for /bin/sh unless it needs no quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// withoutEnv returns env without the named variables.
func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}
