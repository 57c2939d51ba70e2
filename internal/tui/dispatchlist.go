package tui

import (
	"errors"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// screenDispatches is the dispatch list.
const screenDispatches screenID = "dispatches"

// dispatchKeys are the keys that act on dispatches (the list's and the
// table's).
type dispatchKeys struct {
	Create, Cancel, Confirm key.Binding
}

func newDispatchKeys() dispatchKeys {
	return dispatchKeys{
		Create:  binding("d", "dispatch", "d"),
		Cancel:  binding("x", "cancel dispatch", "x"),
		Confirm: binding("y", "confirm the cancel (after x)", "y"),
	}
}

// confirmCancel is a cancel waiting for its confirmation key.
type confirmCancel struct {
	id, node string
}

// prompt is the line that asks for the confirmation.
func (p *confirmCancel) prompt() string {
	return "cancel dispatch " + p.id + " on " + p.node + "? y confirms, any other key keeps it"
}

// dispatchList lists every dispatch, newest start first: its node,
// status, target, actual and error, the devices following it and its
// window. x then y cancels the one under the cursor.
type dispatchList struct {
	c     *common
	keys  dispatchKeys
	short []key.Binding
	cur   listCursor

	pending *confirmCancel
	// note is the last result or refusal, shown under the title; bad makes
	// it an error.
	note string
	bad  bool

	width, height int
}

func newDispatchList(c *common) *dispatchList {
	l := &dispatchList{c: c, keys: newDispatchKeys(), cur: newListCursor()}
	l.short = c.hints([]key.Binding{l.keys.Cancel, c.keys.Back}, screenFleet, screenAlarms)
	return l
}

// ShortHelp implements help.KeyMap.
func (l *dispatchList) ShortHelp() []key.Binding { return l.short }

// FullHelp implements help.KeyMap.
func (l *dispatchList) FullHelp() [][]key.Binding {
	return [][]key.Binding{l.cur.keys.help(), {l.keys.Cancel, l.keys.Confirm, l.c.keys.Back}}
}

// Crumbs implements screen.
func (l *dispatchList) Crumbs() []string { return []string{fleet.FleetID, "dispatches"} }

// SetSize implements screen.
func (l *dispatchList) SetSize(w, h int) {
	l.width, l.height = w, h
	l.cur.setPage(max(1, h-3), l)
}

// rowCount and rowID implement rowList.
func (l *dispatchList) rowCount() int      { return len(l.c.disp.list) }
func (l *dispatchList) rowID(i int) string { return l.c.disp.list[i].ID() }

// refresh implements refresher: the cursor follows its dispatch.
func (l *dispatchList) refresh() { l.cur.follow(l) }

// typing implements typist: while a cancel waits for y, every key answers
// it.
func (l *dispatchList) typing() bool { return l.pending != nil }

// typingHint implements typist.
func (l *dispatchList) typingHint() string { return l.pending.prompt() }

// Update implements screen.
func (l *dispatchList) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case dispatchCancelledMsg:
		l.noteResult("cancelled "+msg.id, msg.err)
		return l, nil
	case tea.KeyPressMsg:
		if l.pending != nil {
			p := l.pending
			l.pending = nil
			if key.Matches(msg, l.keys.Confirm) {
				l.note, l.bad = "cancelling "+p.id+"…", false
				return l, l.c.cancelCmd(p.id)
			}
			l.note, l.bad = "kept "+p.id, false
			return l, nil
		}
		if l.cur.update(msg, l) {
			return l, nil
		}
		switch {
		case key.Matches(msg, l.keys.Cancel):
			l.askCancel()
		case key.Matches(msg, l.c.keys.Back):
			return nil, nil
		}
	}
	return l, nil
}

// askCancel asks to confirm the cancel of the dispatch under the cursor.
func (l *dispatchList) askCancel() {
	i, ok := l.cur.at(l)
	switch {
	case !l.c.canDispatch():
		l.note, l.bad = readOnlyText, true
	case !ok:
		l.note, l.bad = "no dispatch selected", true
	default:
		e := &l.c.disp.list[i]
		if e.Dispatch == nil || e.Ended(l.c.now) {
			l.note, l.bad = "dispatch "+e.ID()+" is "+l.stateOf(e)+", nothing to cancel", true
			return
		}
		l.pending = &confirmCancel{id: e.ID(), node: e.Dispatch.GetNode()}
		l.note = ""
	}
}

// noteResult shows the outcome of a write.
func (l *dispatchList) noteResult(ok string, err error) {
	if err != nil {
		l.note, l.bad = err.Error(), true
		return
	}
	l.note, l.bad = ok, false
}

// stateOf is the state of an entry as the list says it.
func (l *dispatchList) stateOf(e *dispatch.Entry) string {
	if e.Dispatch == nil {
		return "unknown"
	}
	return dispatch.StateName(e.State(l.c.now))
}

// dispatchCells is what a dispatch shows.
type dispatchCells struct {
	id, node, state, target, actual, err, follow, start, end cell
}

// cellsOf says a dispatch: the error is actual − target, shown for an
// active dispatch only, warn past a tenth of the target.
func (l *dispatchList) cellsOf(e *dispatch.Entry) dispatchCells {
	d := e.Dispatch
	c := dispatchCells{
		id:     cell{text: e.ID()},
		node:   cell{text: d.GetNode()},
		state:  cell{text: l.stateOf(e)},
		target: cell{text: fmtPower(d.GetTargetKw())},
		actual: cell{text: "—"},
		err:    cell{text: "—"},
		follow: cell{text: "—"},
		start:  cell{text: fmtClock(d.GetStartMs(), l.c.now.Location())},
		end:    cell{text: fmtClock(d.GetEndMs(), l.c.now.Location())},
	}
	st := e.State(l.c.now)
	switch st {
	case vppv1.DispatchState_DISPATCH_STATE_ACTIVE:
		c.state.tone = toneDischarge
	case vppv1.DispatchState_DISPATCH_STATE_FAILED:
		c.state.tone = toneCrit
	}
	if s := e.Status; s != nil {
		c.follow.text = itoa(int(s.GetFollowing())) + "/" + itoa(int(s.GetDevices()))
	}
	if st == vppv1.DispatchState_DISPATCH_STATE_ACTIVE && (e.Status != nil || len(e.Reports) > 0) {
		a, t := e.ActualKW(), targetKW(e)
		c.actual = cell{text: fmtPower(a), tone: powerTone(a)}
		c.err = cell{text: fmtPower(a - t), tone: warnIf(absf(a-t) > 0.1*absf(t))}
	}
	return c
}

func absf(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// fmtClock is a time in ms as the clock of the header shows it, in the
// header clock's zone ("—" for 0).
func fmtClock(ms int64, loc *time.Location) string {
	if ms == 0 {
		return "—"
	}
	return time.UnixMilli(ms).In(loc).Format("15:04:05")
}

// View implements screen.
func (l *dispatchList) View() string {
	st := &l.c.styles
	var b strings.Builder
	n := len(l.c.disp.list)
	active := 0
	for i := range l.c.disp.list {
		if l.c.disp.list[i].Dispatch != nil && l.c.disp.list[i].State(l.c.now) == vppv1.DispatchState_DISPATCH_STATE_ACTIVE {
			active++
		}
	}
	mode := ""
	if !l.c.canDispatch() {
		mode = " · read-only"
	}
	left := st.Section.Render("dispatches") + st.Dim.Render(" ("+itoa(n)+", "+itoa(active)+" active) · newest start first"+mode)
	right := ""
	if p := l.cur.position(l); p != "" {
		right = st.Dim.Render(p)
	}
	b.WriteString(spread(left, right, l.width))
	b.WriteByte('\n')
	switch {
	case l.pending != nil:
		b.WriteString(st.Warn.Render(truncate(l.pending.prompt(), l.width)))
	case l.note != "" && l.bad:
		b.WriteString(st.Crit.Render(truncate(l.note, l.width)))
	case l.note != "":
		b.WriteString(st.Dim.Render(truncate(l.note, l.width)))
	case l.c.disp.err != nil && errors.Is(l.c.disp.err, dispatch.ErrNotReady):
		b.WriteString(st.Dim.Render(truncate(l.c.disp.err.Error(), l.width)))
	case l.c.disp.err != nil:
		b.WriteString(st.Crit.Render(truncate(l.c.disp.err.Error(), l.width)))
	}
	w := l.widths()
	b.WriteByte('\n')
	titles := [...]string{"ID", "NODE", "STATUS", "TARGET", "ACTUAL", "ERROR", "FOLLOW", "START", "END"}
	var h strings.Builder
	h.WriteString(strings.Repeat(" ", marker))
	for i, t := range titles {
		if i > 0 {
			h.WriteByte(' ')
		}
		h.WriteString(fit(t, w[i], i >= 3 && i <= 6))
	}
	b.WriteString(st.TableHeader.Render(fit(h.String(), l.width, false)))
	if n == 0 {
		b.WriteString("\n  " + st.Dim.Render("no dispatches"))
		return b.String()
	}
	from, to := l.cur.visible(l)
	for i := from; i < to; i++ {
		b.WriteByte('\n')
		b.WriteString(l.renderRow(l.cellsOf(&l.c.disp.list[i]), w, i == l.cur.index))
	}
	return b.String()
}

// widths are the column widths at the screen's width: the node takes
// what the others leave.
func (l *dispatchList) widths() [9]int {
	w := [9]int{14, 0, 10, 10, 10, 10, 9, 8, 8}
	used := marker + len(w) - 1
	for _, v := range w {
		used += v
	}
	w[1] = max(8, l.width-used)
	return w
}

// renderRow draws one dispatch from its cells.
func (l *dispatchList) renderRow(c dispatchCells, w [9]int, selected bool) string {
	st := &l.c.styles
	cells := [...]cell{c.id, c.node, c.state, c.target, c.actual, c.err, c.follow, c.start, c.end}
	var b strings.Builder
	if selected {
		b.WriteString("▸ ")
	} else {
		b.WriteString("  ")
	}
	for i := range cells {
		if i > 0 {
			b.WriteByte(' ')
		}
		text := fit(cells[i].text, w[i], i >= 3 && i <= 6)
		if selected {
			b.WriteString(text)
		} else {
			b.WriteString(render(st.of(cells[i].tone), text))
		}
	}
	if selected {
		return st.Selected.Render(fit(b.String(), l.width, false))
	}
	return b.String()
}
