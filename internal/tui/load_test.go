package tui

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vppctl/vpp/internal/fleet"
)

// loadingSnapshot is testSnapshot from a source that has not caught up.
func loadingSnapshot(l fleet.Load) *fleet.Snapshot {
	s := testSnapshot()
	s.Load = l
	return s
}

// TestHeaderLoading: while the fleet loads, the header says how far, not
// LIVE; a reader that cannot read shows the cause; once complete, LIVE.
func TestHeaderLoading(t *testing.T) {
	loading := fleet.Load{Loading: true, Partitions: 64, Done: 12, Records: 1000, Read: 415, Percent: 41.5}
	m, d := newTestModel(t, loadingSnapshot(loading), 120, 40)
	lines := strings.Split(ansi.Strip(m.render()), "\n")
	if !strings.Contains(lines[0], "loading 12/64 partitions (41 %)") {
		t.Errorf("header line %q: no loading progress", lines[0])
	}
	if strings.Contains(lines[0], "LIVE") {
		t.Errorf("header line %q: LIVE while loading", lines[0])
	}

	cause := "cannot reach Kafka at 127.0.0.1:39999: dial tcp 127.0.0.1:39999: connect: connection refused"
	d.snap = loadingSnapshot(fleet.Load{Loading: true, Err: cause})
	m.Update(tickMsg{})
	lines = strings.Split(ansi.Strip(m.render()), "\n")
	if !strings.Contains(lines[0], "KAFKA ERROR") || !strings.Contains(lines[1], cause) {
		t.Errorf("header %q / %q: want KAFKA ERROR and the cause", lines[0], lines[1])
	}
	full, _ := newTestModel(t, testSnapshot(), 120, 40)
	if want := strings.Count(full.render(), "\n") + 1; len(lines) != want {
		t.Errorf("%d lines, want %d as in a complete frame", len(lines), want)
	}

	d.snap = testSnapshot() // caught up: complete
	m.Update(tickMsg{})
	lines = strings.Split(ansi.Strip(m.render()), "\n")
	if strings.Contains(lines[0], "loading") || strings.Contains(lines[0], "KAFKA") || !strings.Contains(lines[1], "Net ") {
		t.Errorf("header %q / %q after catch-up", lines[0], lines[1])
	}

	m.Update(tea.WindowSizeMsg{Width: 40, Height: 20}) // narrow: the cause is cut, never wrapped
	d.snap = loadingSnapshot(fleet.Load{Loading: true, Err: cause})
	m.Update(tickMsg{})
	for i, l := range strings.Split(ansi.Strip(m.render()), "\n") {
		if w := ansi.StringWidth(l); w > 40 {
			t.Errorf("line %d is %d cells wide: %q", i, w, l)
		}
	}
}

// TestOnceRefusesPartialFleet: --once never prints the totals of a fleet
// still loading.
func TestOnceRefusesPartialFleet(t *testing.T) {
	snap := loadingSnapshot(fleet.Load{Loading: true, Partitions: 4, Done: 1, Percent: 30})
	var b bytes.Buffer
	if err := Once(&b, &fakeData{snap: snap}, Options{Now: fixedNow}, 100); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Once: %v, want ErrIncomplete", err)
	}
	if err := OnceJSON(&b, snap); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "loading 1/4 partitions (30 %)") {
		t.Errorf("OnceJSON: %v, want ErrIncomplete with the progress", err)
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q", b.String())
	}
}
