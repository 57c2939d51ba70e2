package tui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// startProgram runs the dashboard on the test fleet in a teatest program
// with a fixed clock and the Ascii colour profile.
func startProgram(t *testing.T, w, h int) *teatest.TestModel {
	t.Helper()
	d := &fakeData{snap: testSnapshot()}
	return teatest.NewTestModel(t, New(d, Options{Now: fixedNow, Refresh: 50 * time.Millisecond}),
		teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
}

func press(tm *teatest.TestModel, keys ...tea.Key) {
	for _, k := range keys {
		tm.Send(tea.KeyPressMsg(k))
	}
}

var (
	kEnter = tea.Key{Code: tea.KeyEnter}
	kDown  = tea.Key{Code: tea.KeyDown}
	kEsc   = tea.Key{Code: tea.KeyEscape}
)

func char(r rune) tea.Key { return tea.Key{Code: r, Text: string(r)} }

// waitText waits until the program's output shows s.
func waitText(t *testing.T, tm *teatest.TestModel, s string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte(s))
	}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

// finalFrame quits the program and returns its last frame without ANSI
// sequences: the golden's content.
func finalFrame(t *testing.T, tm *teatest.TestModel) string {
	t.Helper()
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	m := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
	return ansi.Strip(m.View().Content)
}

func checkFrame(t *testing.T, frame string, w, h int) {
	t.Helper()
	lines := strings.Split(frame, "\n")
	if len(lines) > h {
		t.Errorf("frame has %d lines, terminal %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, terminal %d: %q", i, n, w, l)
		}
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		w, h int
		keys []tea.Key
		wait string
	}{
		{"fleet", 120, 36, nil, "regions"},
		{"fleet_80x24", 80, 24, nil, "regions"},
		{"site", 120, 36, []tea.Key{kDown, kEnter, kEnter, kEnter}, "STATUS"},
		{"device", 120, 36, []tea.Key{kDown, kEnter, kEnter, kEnter, kDown, kEnter}, "max discharge"},
		{"alarms", 120, 36, []tea.Key{char('a')}, "then newest"},
		{"alarm_device", 100, 30, []tea.Key{char('a'), kDown, kEnter}, "max discharge"},
		{"help", 120, 36, []tea.Key{char('?')}, "reading the screen"},
		{"pipeline", 120, 36, []tea.Key{char('p')}, "balances"},
		{"filter_sorted", 100, 30, []tea.Key{char('s'), char('s'), char('S'), char('/'), char('o'), char('r'), kEnter}, "filter:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tm := startProgram(t, c.w, c.h)
			if len(c.keys) > 0 {
				waitText(t, tm, "LIVE") // the first frame is drawn
				press(tm, c.keys...)
			}
			waitText(t, tm, c.wait)
			frame := finalFrame(t, tm)
			checkFrame(t, frame, c.w, c.h)
			golden.RequireEqual(t, frame)
		})
	}
}

func goldenRequire(t *testing.T, s string) { golden.RequireEqual(t, s) }
