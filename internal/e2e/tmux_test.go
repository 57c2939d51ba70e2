package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTmuxRunsCommand(t *testing.T) {
	// A shell that reports its size, echoes one line and exits with the
	// number it read.
	tm := StartTmux(t, 80, 24, "sh", "-c", `printf 'size %s\n' "$(stty size)"; read -r n; echo "got $n"; exit "$n"`)
	tm.WaitFor("size 24 80", 5*time.Second)
	tm.Type("7")
	tm.Send("Enter")
	screen := tm.WaitFor("got 7", 5*time.Second)
	if code := tm.Wait(5 * time.Second); code != 7 {
		t.Fatalf("exit code = %d, want 7; screen:\n%s", code, screen)
	}
	if !strings.Contains(tm.Capture(), "got 7") {
		t.Fatalf("screen lost after exit:\n%s", tm.Capture())
	}
}

func TestTmuxTerminalRestored(t *testing.T) {
	clean := StartTmux(t, 80, 24, "sh", "-c", `printf '\033[?1049h\033[?25lfull screen'; sleep 0.1; printf '\033[?25h\033[?1049l'`)
	if code := clean.Wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if err := clean.TerminalRestored(); err != nil {
		t.Errorf("clean program: %v", err)
	}

	messy := StartTmux(t, 80, 24, "sh", "-c", `stty raw -echo; printf '\033[?1049h\033[?1000h\033[?25l'`)
	if code := messy.Wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	err := messy.TerminalRestored()
	if err == nil {
		t.Fatal("messy program: TerminalRestored = nil")
	}
	for _, want := range []string{"stty modes changed", "alternate screen on", "cursor hidden", "mouse reporting on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("TerminalRestored = %v, want it to mention %q", err, want)
		}
	}
}

func TestTmuxResize(t *testing.T) {
	// The command ends when the test creates a file (a ^C races with the
	// trap on a busy machine).
	done := filepath.Join(t.TempDir(), "done")
	tm := StartTmux(t, 100, 30, "sh", "-c", `trap 'stty size' WINCH; echo "ready $(stty size)"; while [ ! -e "$1" ]; do sleep 0.05; done; exit 7`, "sh", done)
	tm.WaitFor("ready 30 100", 5*time.Second)
	tm.Resize(60, 20)
	tm.WaitFor("20 60", 5*time.Second)
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := tm.Wait(10 * time.Second); code != 7 {
		t.Fatalf("exit code = %d, want 7", code)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		"":            "''",
		"a b":         "'a b'",
		"it's":        `'it'\''s'`,
		"--x=1":       "--x=1",
		"$HOME":       "'$HOME'",
		"127.0.0.1:9": "127.0.0.1:9",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
