package tui

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/proto/vppv1"
)

// sortKey is a sortable column of the hierarchy table.
type sortKey int

const (
	sortName sortKey = iota
	sortOnline
	sortPower
	sortSoC
	sortEnergy
	sortHeadroom
	sortAlarms
	numSortKeys
)

// row is one line of the hierarchy table: a child node of the current
// level, or a device of the current site.
type row struct {
	id   string
	kind fleet.Kind
	node *fleet.Node        // nil for a device
	dev  *vppv1.DeviceState // devices only
	r    fleet.Rollup       // the node's rollup, or the device's contribution
}

// alarming reports whether the row has alarming or offline devices.
func (r *row) alarming() bool { return r.r.Alarming > 0 || r.r.Offline > 0 }

// tableView is the hierarchy table: regions → substations → sites →
// devices, with drill-down, sort, filter and a cursor that follows the
// selected node's ID. It is the home screen.
type tableView struct {
	c    *common
	keys tableKeys
	// short is the hint bar.
	short []key.Binding

	path []string // IDs below the fleet: region, substation, site
	rows []row    // the current level, filtered and sorted
	all  int      // rows before filtering
	cur  listCursor

	sortBy    sortKey
	desc      bool
	filter    string
	filtering bool

	width, height int
	parentDevs    int64      // devices under the current level (column widths)
	levelKind     fleet.Kind // kind of the node whose children are listed
	levelID       string
	version       uint64

	// cells is the render buffer of one row.
	cells []cell

	// watchedSub is the substation the table watches (Options.
	// WatchSubstation): the one on its path, while it lists its sites or
	// their devices; unwatchSub ends that watch (nil when none).
	watchedSub string
	unwatchSub func()

	dkeys   dispatchKeys
	pending *confirmCancel // a cancel waiting for y
	note    string         // the last dispatch refusal or result
	bad     bool
}

// screenFleet is the hierarchy table.
const screenFleet screenID = "fleet"

// tableKeys are the table's own keys.
type tableKeys struct {
	Filter, Sort, Reverse, NextAlarm key.Binding
}

func newTableView(c *common) *tableView {
	t := &tableView{c: c, cur: newListCursor(), keys: tableKeys{
		Filter:    binding("/", "filter", "/"),
		Sort:      binding("s", "sort column", "s"),
		Reverse:   binding("S", "reverse sort", "S"),
		NextAlarm: binding("!", "next alarm row", "!"),
	}}
	k := &t.keys
	t.dkeys = newDispatchKeys()
	t.short = c.hints([]key.Binding{c.keys.Enter, c.keys.Back, k.Filter, k.Sort, k.Reverse, k.NextAlarm}, screenAlarms, screenPipeline)
	if c.opts.Dispatch != nil {
		t.short = c.hints([]key.Binding{c.keys.Enter, c.keys.Back, k.Filter, k.Sort, t.dkeys.Create, t.dkeys.Cancel}, screenAlarms, screenDispatches)
	}
	t.rebuild()
	return t
}

// ShortHelp implements help.KeyMap: the table's hint bar.
func (t *tableView) ShortHelp() []key.Binding { return t.short }

// FullHelp implements help.KeyMap: the cursor's keys and the table's.
func (t *tableView) FullHelp() [][]key.Binding {
	k := &t.keys
	out := [][]key.Binding{t.cur.keys.help(), {t.c.keys.Enter, t.c.keys.Back, k.Filter, k.Sort, k.Reverse, k.NextAlarm}}
	if t.c.opts.Dispatch != nil {
		out = append(out, []key.Binding{t.dkeys.Create, t.dkeys.Cancel, t.dkeys.Confirm})
	}
	return out
}

// Crumbs implements screen: the fleet and the path drilled into.
func (t *tableView) Crumbs() []string { return append([]string{fleet.FleetID}, t.path...) }

// typing implements typist: a filter is being typed, or a cancel waits
// for its confirmation.
func (t *tableView) typing() bool { return t.filtering || t.pending != nil }

// typingHint implements typist.
func (t *tableView) typingHint() string {
	if t.pending != nil {
		return t.pending.prompt()
	}
	return "type to filter · enter keep · esc clear"
}

// SetSize implements screen.
func (t *tableView) SetSize(w, h int) {
	t.width, t.height = w, h
	t.cur.setPage(t.pageRows(), t)
}

// rowCount and rowID implement rowList.
func (t *tableView) rowCount() int      { return len(t.rows) }
func (t *tableView) rowID(i int) string { return t.rows[i].id }

// pageRows is the number of rows on screen (title and column header take
// two lines).
func (t *tableView) pageRows() int { return max(1, t.height-2) }

// level returns the node whose children are listed, fixing the path when
// a node on it disappeared (the view goes up to what still exists).
func (t *tableView) level() *fleet.Node {
	n := t.c.snap.Fleet
	for i, id := range t.path {
		ch := n.Child(id)
		if ch == nil {
			t.path = t.path[:i]
			t.cur.selectID(id)
			return n
		}
		n = ch
	}
	return n
}

// lines implements sizer: the title, the column header and the rows (or
// the line that says there are none).
func (t *tableView) lines() int { return 2 + max(1, len(t.rows)) }

// focus implements focuser: the node whose children are listed.
func (t *tableView) focus() *fleet.Node { return t.level() }

// refresh implements refresher: it rebuilds the rows when the snapshot
// changed.
func (t *tableView) refresh() {
	if t.c.snap.Version != t.version {
		t.rebuild()
	}
}

// rebuild lists, filters and sorts the current level and puts the cursor
// back on the selected ID. It costs the children of one node (or the
// devices of one site), never the fleet.
func (t *tableView) rebuild() {
	t.version = t.c.snap.Version
	n := t.level()
	t.parentDevs = n.Rollup.Devices
	t.levelKind, t.levelID = n.Kind, n.ID
	t.rows = t.rows[:0]
	f := strings.ToLower(t.filter)
	match := func(id string) bool { return f == "" || strings.Contains(strings.ToLower(id), f) }
	if n.Kind == fleet.KindSite {
		devs := n.Devices()
		t.all = len(devs)
		for _, d := range devs {
			id := d.GetLast().GetDeviceId()
			if match(id) {
				t.rows = append(t.rows, row{id: id, kind: fleet.KindDevice, dev: d, r: fleet.DeviceContribution(d)})
			}
		}
	} else {
		t.all = len(n.Children)
		for _, ch := range n.Children {
			if match(ch.ID) {
				t.rows = append(t.rows, row{id: ch.ID, kind: ch.Kind, node: ch, r: ch.Rollup})
			}
		}
	}
	t.sort()
	t.cur.follow(t)
	t.watch()
}

// watch keeps the history recorder on the substation of the path (whose
// sites, or one of whose sites' devices, are listed) and off any other:
// the recorder records the sites of watched substations only.
func (t *tableView) watch() {
	want := ""
	if len(t.path) >= 2 {
		want = t.path[1]
	}
	if want == t.watchedSub {
		return
	}
	t.close()
	t.watchedSub = want
	if want != "" && t.c.opts.WatchSubstation != nil {
		t.unwatchSub = t.c.opts.WatchSubstation(want)
	}
}

// close implements closer: the recorder stops watching the substation.
func (t *tableView) close() {
	if t.unwatchSub != nil {
		t.unwatchSub()
		t.unwatchSub = nil
	}
	t.watchedSub = ""
}

// sort orders the rows by the sort column (ties by ID, always ascending).
func (t *tableView) sort() {
	by, desc := t.sortBy, t.desc
	slices.SortStableFunc(t.rows, func(a, b row) int {
		c := compareRows(&a, &b, by)
		if desc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(a.id, b.id)
		}
		return c
	})
}

func compareRows(a, b *row, by sortKey) int {
	switch by {
	case sortOnline:
		return cmp.Or(cmp.Compare(a.r.Online, b.r.Online), cmp.Compare(a.r.Devices, b.r.Devices))
	case sortPower:
		return cmp.Compare(a.r.NetMicroKW, b.r.NetMicroKW)
	case sortSoC:
		return cmp.Compare(a.r.SoCPct(), b.r.SoCPct())
	case sortEnergy:
		return cmp.Compare(a.r.EnergyMicroKWh, b.r.EnergyMicroKWh)
	case sortHeadroom:
		return cmp.Compare(a.r.HeadroomDischargeMicroKW, b.r.HeadroomDischargeMicroKW)
	case sortAlarms:
		return cmp.Or(cmp.Compare(a.r.Alarming, b.r.Alarming), cmp.Compare(a.r.Offline, b.r.Offline))
	}
	return strings.Compare(a.id, b.id)
}

// selected is the row under the cursor, or nil.
func (t *tableView) selected() *row {
	if i, ok := t.cur.at(t); ok {
		return &t.rows[i]
	}
	return nil
}

// Update implements screen.
func (t *tableView) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case dispatchCancelledMsg:
		t.noteResult("cancelled "+msg.id, msg.err)
		return t, nil
	case dispatchCreatedMsg:
		// The form closed before its write returned.
		t.noteResult("created "+msg.entry.ID(), msg.err)
		return t, nil
	}
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return t, nil
	}
	if t.pending != nil {
		p := t.pending
		t.pending = nil
		if key.Matches(kp, t.dkeys.Confirm) {
			t.note, t.bad = "cancelling "+p.id+"…", false
			return t, t.c.cancelCmd(p.id)
		}
		t.note, t.bad = "kept "+p.id, false
		return t, nil
	}
	if t.filtering {
		t.typeFilter(kp)
		return t, nil
	}
	if t.cur.update(kp, t) {
		return t, nil
	}
	k := &t.keys
	switch {
	case key.Matches(kp, t.c.keys.Enter):
		return t, t.enter()
	case key.Matches(kp, t.c.keys.Back):
		if t.filter != "" && kp.String() == "esc" {
			t.setFilter("")
			return t, nil
		}
		t.up()
	case key.Matches(kp, k.Filter):
		t.filtering = true
	case key.Matches(kp, k.Sort):
		t.sortBy = (t.sortBy + 1) % numSortKeys
		t.rebuild()
	case key.Matches(kp, k.Reverse):
		t.desc = !t.desc
		t.rebuild()
	case key.Matches(kp, k.NextAlarm):
		t.nextAlarm()
	case t.c.opts.Dispatch != nil && key.Matches(kp, t.dkeys.Create):
		return t.dispatchForm(), nil
	case t.c.opts.Dispatch != nil && key.Matches(kp, t.dkeys.Cancel):
		t.askCancel()
	}
	return t, nil
}

// dispatchTarget is the node d dispatches: the selected row's node, or
// the node whose devices are listed when the row is a device.
func (t *tableView) dispatchTarget() (kind fleet.Kind, id string) {
	if r := t.selected(); r != nil && r.kind != fleet.KindDevice {
		return r.kind, r.id
	}
	return t.levelKind, t.levelID
}

// dispatchForm opens the dispatch form on the target node (the receiver
// stays when the session may not dispatch).
func (t *tableView) dispatchForm() screen {
	if !t.c.canDispatch() {
		t.note, t.bad = readOnlyText, true
		return t
	}
	kind, id := t.dispatchTarget()
	node, _ := dispatchNode(kind, id)
	t.note = ""
	return newDispatchForm(t.c, kind, id, node)
}

// askCancel asks to confirm the cancel of the active dispatch on the
// selected row's node, else on the node whose children are listed.
func (t *tableView) askCancel() {
	if !t.c.canDispatch() {
		t.note, t.bad = readOnlyText, true
		return
	}
	kind, id := t.dispatchTarget()
	e := t.c.activeOn(kind, id)
	if e == nil {
		e = t.c.activeOn(t.levelKind, t.levelID)
	}
	if e == nil {
		t.note, t.bad = "no active dispatch on "+id+" or "+t.levelID, true
		return
	}
	t.pending = &confirmCancel{id: e.ID(), node: e.Dispatch.GetNode()}
	t.note = ""
}

// noteResult shows the outcome of a dispatch write in the title line.
func (t *tableView) noteResult(ok string, err error) {
	if err != nil {
		t.note, t.bad = err.Error(), true
		return
	}
	t.note, t.bad = ok, false
}

// typeFilter edits the filter while typing: enter keeps it, esc clears it.
func (t *tableView) typeFilter(kp tea.KeyPressMsg) {
	switch kp.String() {
	case "enter":
		t.filtering = false
	case "esc":
		t.filtering = false
		t.setFilter("")
	case "backspace":
		if t.filter != "" {
			_, n := utf8.DecodeLastRuneInString(t.filter)
			t.setFilter(t.filter[:len(t.filter)-n])
		}
	default:
		if kp.Text != "" {
			t.setFilter(t.filter + kp.Text)
		}
	}
}

func (t *tableView) setFilter(f string) {
	t.filter = f
	t.rebuild()
}

// enter drills into the selected node, or opens the selected device.
func (t *tableView) enter() tea.Cmd {
	r := t.selected()
	if r == nil {
		return nil
	}
	if r.kind == fleet.KindDevice {
		site := t.path[len(t.path)-1]
		id := r.id
		return func() tea.Msg { return openDeviceMsg{siteID: site, deviceID: id} }
	}
	t.path = append(t.path, r.id)
	t.cur.reset()
	t.filter = ""
	t.rebuild()
	return nil
}

// up goes one level up with the cursor on the node we came from.
func (t *tableView) up() {
	if len(t.path) == 0 {
		return
	}
	t.cur.selectID(t.path[len(t.path)-1])
	t.path = t.path[:len(t.path)-1]
	t.filter = ""
	t.rebuild()
}

// nextAlarm moves the cursor to the next row (wrapping) with alarming or
// offline devices.
func (t *tableView) nextAlarm() {
	n := len(t.rows)
	for i := 1; i <= n; i++ {
		j := (t.cur.index + i) % n
		if t.rows[j].alarming() {
			t.cur.moveTo(j, t)
			return
		}
	}
}

// column is one column of the table.
type column struct {
	title string
	w     int
	right bool
	key   sortKey // colTrend: not sortable
}

// Fixed column widths; the name and trend columns share the rest.
const (
	colPower    = 9
	colSoC      = 6
	colEnergy   = 9
	colHeadroom = 12
	colAlarms   = 6
	nameMin     = 12
	nameMax     = 24
	trendMin    = 6
	trendMax    = 40
	marker      = 2 // "▸ " in front of the cursor row
)

// columns lays the columns out in w cells: name and trend take what the
// fixed columns leave; the trend is dropped first when narrow.
func (t *tableView) columns(w int) []column {
	d := len(itoa(int(t.parentDevs)))
	online := max(7, 2*d+1)
	onlineTitle := "ONLINE"
	if t.levelKind == fleet.KindSite {
		onlineTitle = "STATUS"
	}
	cols := []column{
		{"NAME", 0, false, sortName},
		{onlineTitle, online, true, sortOnline},
		{"POWER", colPower, true, sortPower},
		{"SOC", colSoC, true, sortSoC},
		{"ENERGY", colEnergy, true, sortEnergy},
		{"HDRM ↑/↓", colHeadroom, true, sortHeadroom},
		{"ALARM", colAlarms, true, sortAlarms},
	}
	fixed := marker
	for _, c := range cols[1:] {
		fixed += c.w + 1
	}
	rest := w - fixed
	name := min(nameMax, max(nameMin, rest-trendMin-1))
	trend := rest - name - 1
	if trend < trendMin {
		name = max(4, rest)
		trend = 0
	} else if trend > trendMax {
		name = min(nameMax+trend-trendMax, rest-trendMax-1)
		trend = rest - name - 1
	}
	cols[0].w = name
	if trend > 0 {
		cols = append(cols, column{"TREND", trend, false, colTrend})
	}
	return cols
}

// colTrend is the key of the trend column: not sortable.
const colTrend sortKey = -1

// What a row says: its cells, computed from the row alone.

// rowCells is what row r shows in each of cols, values with their units
// and meanings, no styles; out is reused.
func (t *tableView) rowCells(r *row, cols []column, out []cell) []cell {
	out = out[:0]
	for _, c := range cols {
		out = append(out, t.cellOf(r, c))
	}
	return out
}

// cellOf is what row r shows in column c.
func (t *tableView) cellOf(r *row, c column) cell {
	rr := &r.r
	switch c.key {
	case sortName:
		return cell{text: r.id}
	case sortOnline:
		if r.kind == fleet.KindDevice {
			if r.dev.GetOffline() {
				return cell{text: "OFFLINE", tone: toneWarn}
			}
			return cell{text: "on"}
		}
		return cell{text: itoa(int(rr.Online)) + "/" + itoa(int(rr.Devices)), tone: warnIf(rr.Offline > 0)}
	case sortPower:
		if rr.Temps == 0 && r.kind == fleet.KindDevice {
			return cell{text: "—"}
		}
		return cell{text: fmtPower(rr.PowerKW()), tone: powerTone(rr.PowerKW())}
	case sortSoC:
		if rr.CapacityMicroKWh <= 0 {
			return cell{text: "—"}
		}
		return cell{text: fmtFixed(rr.SoCPct(), 1) + "%", tone: socTone(rr.SoCPct())}
	case sortEnergy:
		return cell{text: fmtEnergy(rr.EnergyKWh())}
	case sortHeadroom:
		return cell{text: fmtPair(rr.HeadroomDischargeKW(), rr.HeadroomChargeKW(), "W")}
	case sortAlarms:
		n := int(rr.Alarming)
		if r.kind == fleet.KindDevice {
			n = len(fleet.AlarmNames(r.dev.GetLast().GetAlarms()))
		}
		if n == 0 {
			return cell{text: "·"}
		}
		return cell{text: itoa(n), tone: toneCrit}
	}
	return t.trendOf(r, c.w)
}

// trendOf is the row's power over the last w seconds, on a centred
// baseline scaled to the node's limits.
func (t *tableView) trendOf(r *row, w int) cell {
	vals := t.c.seriesOf(r.kind, r.id, history.PowerKW, w)
	limit := powerLimit(&r.r)
	if r.kind == fleet.KindDevice {
		l := r.dev.GetLast()
		limit = math.Max(l.GetMaxChargeKw(), l.GetMaxDischargeKw())
	}
	return cell{tone: tonePower, series: vals, hi: math.Max(limit, absMax(vals))}
}

// How it looks: the view lays the cells out and styles them by meaning.

// View implements screen.
func (t *tableView) View() string {
	st := &t.c.styles
	var b strings.Builder
	b.Grow(t.width * (t.height + 1) * 2)
	b.WriteString(t.title())
	cols := t.columns(t.width)

	// Column header, with ▲/▼ on the sort column.
	b.WriteByte('\n')
	var h strings.Builder
	h.WriteString(strings.Repeat(" ", marker))
	for i, c := range cols {
		if i > 0 {
			h.WriteByte(' ')
		}
		title := c.title
		if c.key == t.sortBy {
			if t.desc {
				title += "▼"
			} else {
				title += "▲"
			}
		}
		h.WriteString(fit(title, c.w, c.right))
	}
	b.WriteString(st.TableHeader.Render(fit(h.String(), t.width, false)))

	if len(t.rows) == 0 {
		b.WriteString("\n  ")
		if t.filter != "" {
			b.WriteString(st.Dim.Render("no match for “" + t.filter + "”"))
		} else {
			b.WriteString(st.Dim.Render("no data yet"))
		}
		return b.String()
	}
	from, to := t.cur.visible(t)
	for i := from; i < to; i++ {
		b.WriteByte('\n')
		r := &t.rows[i]
		t.cells = t.rowCells(r, cols, t.cells)
		b.WriteString(t.renderRow(t.cells, cols, i == t.cur.index, r.kind != fleet.KindDevice && t.c.activeOn(r.kind, r.id) != nil))
	}
	return b.String()
}

// title is the line above the column header: what is listed, the sort,
// the filter and the position.
func (t *tableView) title() string {
	st := &t.c.styles
	what := "regions"
	switch t.levelKind {
	case fleet.KindRegion:
		what = "substations of " + t.levelID
	case fleet.KindSubstation:
		what = "sites of " + t.levelID
	case fleet.KindSite:
		what = "devices of " + t.levelID
	}
	count := itoa(len(t.rows))
	if len(t.rows) != t.all {
		count += "/" + itoa(t.all)
	}
	left := st.Section.Render(what) + st.Dim.Render(" ("+count+")")
	switch {
	case t.filtering:
		left += st.Label.Render("  filter: ") + st.Value.Render(t.filter+"█")
	case t.filter != "":
		left += st.Label.Render("  filter: ") + st.Value.Render(t.filter) + st.Dim.Render(" (esc clears)")
	}
	switch {
	case t.pending != nil:
		left += "  " + st.Warn.Render(t.pending.prompt())
	case t.note != "" && t.bad:
		left += "  " + st.Crit.Render(t.note)
	case t.note != "":
		left += "  " + st.Dim.Render(t.note)
	}
	right := ""
	if p := t.cur.position(t); p != "" {
		right = st.Dim.Render(p)
	}
	return spread(left, right, t.width)
}

// renderRow draws one row from its cells. The cursor row is drawn plain on
// the selection background (so that it reads as one bar); other rows
// style the cells that carry a meaning.
func (t *tableView) renderRow(cells []cell, cols []column, selected, dispatched bool) string {
	st := &t.c.styles
	var b strings.Builder
	switch {
	case selected && dispatched:
		b.WriteString("▸◆")
	case selected:
		b.WriteString("▸ ")
	case dispatched:
		b.WriteString(st.Discharge.Render("◆") + " ")
	default:
		b.WriteString("  ")
	}
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		cl := &cells[i]
		if c.key == colTrend {
			var pos, neg *lipgloss.Style
			if !selected {
				pos, neg = st.series(cl.tone)
			}
			b.WriteString(spark(cl.series, c.w, cl.hi, true, pos, neg))
			continue
		}
		var s *lipgloss.Style
		if !selected {
			s = st.of(cl.tone)
		}
		b.WriteString(render(s, fit(cl.text, c.w, c.right)))
	}
	line := b.String()
	if selected {
		return st.Selected.Render(fit(line, t.width, false))
	}
	return line
}
