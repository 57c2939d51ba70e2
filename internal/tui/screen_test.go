package tui

import (
	"slices"
	"strings"
	"testing"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// noteScreen is a screen as a new one is written: its own key, crumbs and
// help, registered with one line.
type noteScreen struct {
	c      *common
	note   key.Binding
	notes  int
	w, h   int
	closed int
}

func (n *noteScreen) Update(msg tea.Msg) (screen, tea.Cmd) {
	if kp, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(kp, n.note):
			n.notes++
		case key.Matches(kp, n.c.keys.Back):
			return nil, nil
		}
	}
	return n, nil
}
func (n *noteScreen) View() string     { return "notes: " + itoa(n.notes) }
func (n *noteScreen) SetSize(w, h int) { n.w, n.h = w, h }
func (n *noteScreen) Crumbs() []string { return []string{"fleet", "notes"} }
func (n *noteScreen) close()           { n.closed++ }
func (n *noteScreen) ShortHelp() []key.Binding {
	return n.c.hints([]key.Binding{n.note, n.c.keys.Back}, screenFleet)
}
func (n *noteScreen) FullHelp() [][]key.Binding { return [][]key.Binding{{n.note, n.c.keys.Back}} }

func TestAddScreen(t *testing.T) {
	var ns *noteScreen
	reg := append(registry(), registration{"notes", jumpKey("n", "notes"), func(c *common) screen {
		ns = &noteScreen{c: c, note: binding("x", "add note", "x")}
		return ns
	}})
	m := newModelOf(&fakeData{snap: testSnapshot()}, Options{Now: fixedNow}, reg)
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if ns.w != 120 || ns.h != m.bodyHeight() {
		t.Fatalf("size %dx%d, want 120x%d", ns.w, ns.h, m.bodyHeight())
	}
	pressAll(m, char('n'), char('x'), char('x'))
	f := ansi.Strip(m.render())
	lines := strings.Split(f, "\n")
	for _, want := range []string{"fleet › notes", "notes: 2"} {
		if !strings.Contains(f, want) {
			t.Errorf("the new screen lacks %q:\n%s", want, f)
		}
	}
	if hint := lines[len(lines)-1]; hint != "? help • q quit • x add note • esc/⌫ back • f fleet table • space pause" {
		t.Errorf("hint bar %q", hint)
	}
	// ? explains the screen's keys and lists its jump key with the others.
	pressAll(m, char('?'))
	f = ansi.Strip(m.render())
	for _, want := range []string{"x     add note", "n     notes", "a     alarms"} {
		if !strings.Contains(f, want) {
			t.Errorf("help lacks %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "sort column") {
		t.Error("the help explains the screen it was opened from, not the table")
	}
	pressAll(m, char('?'), kEsc)
	if m.top() != m.table || ns.closed != 1 {
		t.Fatalf("esc closes the screen: top %v, closed %d", m.top().Crumbs(), ns.closed)
	}
	// The jump key shows it from any screen.
	pressAll(m, char('a'), char('n'))
	if m.top() != screen(ns) || len(m.stack) != 2 {
		t.Fatalf("n from the alarms: top %v, stack of %d", m.top().Crumbs(), len(m.stack))
	}
}

func TestHelpIsContextual(t *testing.T) {
	m, _ := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, kDown, kEnter, kEnter, kEnter, kDown, kEnter) // a device
	dv := m.registered(screenDevice)
	if m.top() != dv {
		t.Fatalf("top %v", m.top().Crumbs())
	}
	pressAll(m, char('?'))
	f := ansi.Strip(m.render())
	if !strings.Contains(f, "esc/⌫ back") || strings.Contains(f, "sort column") || strings.Contains(f, "page up") {
		t.Errorf("help over the device detail:\n%s", f)
	}
	pressAll(m, kEsc)
	if m.top() != dv {
		t.Fatalf("esc from the help returns to the device: %v", m.top().Crumbs())
	}
	pressAll(m, kEsc)
	if m.top() != m.table || !slices.Equal(m.top().Crumbs(), []string{"fleet", "south", "sub-07", "site-0042"}) {
		t.Fatalf("esc from the device returns to the site: %v", m.top().Crumbs())
	}
}

func TestHelpKeepsTheDeviceWatched(t *testing.T) {
	var watched, stopped int
	d := &fakeData{snap: testSnapshot()}
	m := newModel(d, Options{Now: fixedNow, Watch: func(site, id string) func() {
		watched++
		return func() { stopped++ }
	}})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	pressAll(m, char('a'), kEnter, char('?'))
	if watched != 1 || stopped != 0 {
		t.Fatalf("help over the detail: watched %d stopped %d", watched, stopped)
	}
	pressAll(m, kEsc, char('p'))
	if stopped != 1 {
		t.Fatalf("a jump away from the detail stops its watch: stopped %d", stopped)
	}
}

// ids is a rowList of IDs.
type ids []string

func (l ids) rowCount() int      { return len(l) }
func (l ids) rowID(i int) string { return l[i] }

func TestListCursor(t *testing.T) {
	l := ids{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	c := newListCursor()
	c.setPage(4, l)
	c.follow(l)
	if c.index != 0 || c.id != "a" {
		t.Fatalf("first follow: %d %q", c.index, c.id)
	}
	press := func(k tea.Key) {
		t.Helper()
		if !c.update(tea.KeyPressMsg(k), l) {
			t.Fatalf("%v is a cursor key", k)
		}
	}
	press(tea.Key{Code: tea.KeyPgDown})
	if c.index != 4 || c.id != "e" || c.offset != 1 {
		t.Fatalf("page down: index %d id %q offset %d", c.index, c.id, c.offset)
	}
	press(tea.Key{Code: tea.KeyEnd})
	if from, to := c.visible(l); c.id != "j" || from != 6 || to != 10 {
		t.Fatalf("end: %q, rows %d–%d", c.id, from, to)
	}
	press(tea.Key{Code: tea.KeyPgUp})
	if c.id != "f" || c.offset != 5 {
		t.Fatalf("page up: %q offset %d", c.id, c.offset)
	}
	if c.update(tea.KeyPressMsg(char('x')), l) {
		t.Fatal("x is not a cursor key")
	}
	// The list is re-sorted: the cursor follows f to its new row and
	// scrolls to it.
	l = ids{"f", "j", "i", "h", "g", "e", "d", "c", "b", "a"}
	c.follow(l)
	if c.index != 0 || c.id != "f" || c.offset != 0 {
		t.Fatalf("after re-sort: index %d id %q offset %d", c.index, c.id, c.offset)
	}
	// f is gone: the cursor keeps its row and selects what is there.
	c.moveTo(3, l)
	l = ids{"f", "j", "i", "g"}
	c.follow(l)
	if c.index != 3 || c.id != "g" {
		t.Fatalf("selected row gone: index %d id %q", c.index, c.id)
	}
	if c.position(l) != "4/4" || c.position(ids{}) != "" {
		t.Fatalf("position %q", c.position(l))
	}
}

func TestAlarmsCursorFollowsDevice(t *testing.T) {
	m, d := newTestModel(t, testSnapshot(), 120, 40)
	pressAll(m, char('a'), kDown, kDown)
	a := alarmsOf(m)
	if a.cur.id != "dev-0042-3" || a.cur.index != 2 {
		t.Fatalf("selected %q at %d", a.cur.id, a.cur.index)
	}
	// Two new critical devices sort before it: the cursor follows the
	// device, not the row.
	tr := fleet.NewTree() // one tree: every snapshot a new version
	site := func(devs ...*vppv1.DeviceState) *fleet.Snapshot {
		tr.ApplySite(&vppv1.SiteState{SiteId: "site-0042", SubstationId: "sub-07", RegionId: "south", Devices: devs})
		return tr.Snapshot()
	}
	dev := func(id string, soc, temp float64, al vppv1.Alarm, off bool) *vppv1.DeviceState {
		return &vppv1.DeviceState{Last: reading(id, "site-0042", "sub-07", "south", soc, 1, temp, al), Offline: off, AppliedMs: testNow.UnixMilli()}
	}
	hot1 := dev("d-hot1", 50, 60, vppv1.Alarm_ALARM_OVER_TEMPERATURE, false)
	hot2 := dev("d-hot2", 50, 60, vppv1.Alarm_ALARM_OVER_TEMPERATURE, false)
	off := dev("d-off", 50, 30, 0, true)
	low := dev("dev-0042-3", 6.5, 30, vppv1.Alarm_ALARM_LOW_SOC, false)
	d.snap = site(hot1, hot2, off, low)
	m.Update(tickMsg(testNow))
	if a.cur.id != "dev-0042-3" || a.cur.index != 3 {
		t.Fatalf("after refresh: %q at %d (items %d)", a.cur.id, a.cur.index, len(a.items))
	}
	// It is gone: the cursor keeps its row, clamped, and selects that.
	d.snap = site(hot1, off)
	m.Update(tickMsg(testNow))
	if a.cur.id != "d-off" || a.cur.index != 1 {
		t.Fatalf("device gone: %q at %d", a.cur.id, a.cur.index)
	}
	// Leaving and coming back keeps the selection.
	pressAll(m, char('f'), char('a'))
	if a.cur.id != "d-off" {
		t.Fatalf("the cursor stays on d-off across screens: %q", a.cur.id)
	}
}
