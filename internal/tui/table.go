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
// selected node's ID.
type tableView struct {
	c *common

	path []string // IDs below the fleet: region, substation, site
	rows []row    // the current level, filtered and sorted
	all  int      // rows before filtering
	// selID is the ID under the cursor: the cursor follows it across
	// refreshes, re-sorts and filters; cursor is its index in rows.
	selID  string
	cursor int
	offset int

	sortBy    sortKey
	desc      bool
	filter    string
	filtering bool

	width, height int
	parentDevs    int64      // devices under the current level (column widths)
	levelKind     fleet.Kind // kind of the node whose children are listed
	levelID       string
	version       uint64
}

func newTableView(c *common) *tableView {
	t := &tableView{c: c}
	t.rebuild()
	return t
}

// SetSize implements component.
func (t *tableView) SetSize(w, h int) {
	t.width, t.height = w, h
	t.scroll()
}

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
			t.selID = id
			return n
		}
		n = ch
	}
	return n
}

// refresh rebuilds the rows when the snapshot changed.
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
	t.follow()
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

// follow moves the cursor to the row of selID; when that row is gone it
// keeps the cursor's position (clamped) and selects what is there now.
func (t *tableView) follow() {
	if i := t.indexOf(t.selID); i >= 0 {
		t.cursor = i
	} else {
		t.cursor = max(0, min(t.cursor, len(t.rows)-1))
		if len(t.rows) > 0 && t.selID == "" {
			t.cursor = 0
		}
	}
	t.sel()
	t.scroll()
}

func (t *tableView) indexOf(id string) int {
	if id == "" {
		return -1
	}
	for i := range t.rows {
		if t.rows[i].id == id {
			return i
		}
	}
	return -1
}

// sel records the ID under the cursor.
func (t *tableView) sel() {
	if t.cursor >= 0 && t.cursor < len(t.rows) {
		t.selID = t.rows[t.cursor].id
	}
}

// scroll keeps the cursor on screen.
func (t *tableView) scroll() { t.offset = scrollOffset(t.cursor, t.offset, t.pageRows(), len(t.rows)) }

// scrollOffset is the first visible row of a list of n rows shown page rows
// at a time, moved as little as possible from offset so that cursor shows.
func scrollOffset(cursor, offset, page, n int) int {
	if cursor < offset {
		offset = cursor
	}
	if cursor >= offset+page {
		offset = cursor - page + 1
	}
	return max(0, min(offset, n-page))
}

func (t *tableView) moveTo(i int) {
	if len(t.rows) == 0 {
		return
	}
	t.cursor = max(0, min(i, len(t.rows)-1))
	t.sel()
	t.scroll()
}

// selected is the row under the cursor, or nil.
func (t *tableView) selected() *row {
	if t.cursor >= 0 && t.cursor < len(t.rows) {
		return &t.rows[t.cursor]
	}
	return nil
}

// Update implements component.
func (t *tableView) Update(msg tea.Msg) tea.Cmd {
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	if t.filtering {
		t.typeFilter(kp)
		return nil
	}
	k := &t.c.keys
	switch {
	case key.Matches(kp, k.Up):
		t.moveTo(t.cursor - 1)
	case key.Matches(kp, k.Down):
		t.moveTo(t.cursor + 1)
	case key.Matches(kp, k.PageUp):
		t.moveTo(t.cursor - t.pageRows())
	case key.Matches(kp, k.PageDown):
		t.moveTo(t.cursor + t.pageRows())
	case key.Matches(kp, k.Top):
		t.moveTo(0)
	case key.Matches(kp, k.Bottom):
		t.moveTo(len(t.rows) - 1)
	case key.Matches(kp, k.Enter):
		return t.enter()
	case key.Matches(kp, k.Back):
		if t.filter != "" && kp.String() == "esc" {
			t.setFilter("")
			return nil
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
	}
	return nil
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
	t.selID, t.cursor, t.offset, t.filter = "", 0, 0, ""
	t.rebuild()
	return nil
}

// up goes one level up with the cursor on the node we came from.
func (t *tableView) up() {
	if len(t.path) == 0 {
		return
	}
	t.selID = t.path[len(t.path)-1]
	t.path = t.path[:len(t.path)-1]
	t.filter = ""
	t.rebuild()
}

// nextAlarm moves the cursor to the next row (wrapping) with alarming or
// offline devices.
func (t *tableView) nextAlarm() {
	n := len(t.rows)
	for i := 1; i <= n; i++ {
		j := (t.cursor + i) % n
		if t.rows[j].alarming() {
			t.moveTo(j)
			return
		}
	}
}

// column is one column of the table.
type column struct {
	title string
	w     int
	right bool
	key   sortKey // -1: not sortable
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
		cols = append(cols, column{"TREND", trend, false, -1})
	}
	return cols
}

// View implements component.
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
	end := min(len(t.rows), t.offset+t.pageRows())
	for i := t.offset; i < end; i++ {
		b.WriteByte('\n')
		b.WriteString(t.renderRow(&t.rows[i], cols, i == t.cursor))
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
	right := ""
	if len(t.rows) > 0 {
		right = st.Dim.Render(itoa(t.cursor+1) + "/" + itoa(len(t.rows)))
	}
	return spread(left, right, t.width)
}

// renderRow draws one row. The cursor row is drawn plain on the selection
// background (so that it reads as one bar); other rows colour the cells
// that carry a meaning.
func (t *tableView) renderRow(r *row, cols []column, selected bool) string {
	st := &t.c.styles
	var plain *styleSet
	if !selected {
		plain = st
	}
	var b strings.Builder
	if selected {
		b.WriteString("▸ ")
	} else {
		b.WriteString("  ")
	}
	rr := &r.r
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		var text string
		var s *lipgloss.Style
		switch c.key {
		case sortName:
			text = r.id
		case sortOnline:
			if r.kind == fleet.KindDevice {
				text = "on"
				if r.dev.GetOffline() {
					text = "OFFLINE"
					s = pick(plain, func(p *styleSet) *lipgloss.Style { return &p.Warn })
				}
			} else {
				text = itoa(int(rr.Online)) + "/" + itoa(int(rr.Devices))
				if rr.Offline > 0 {
					s = pick(plain, func(p *styleSet) *lipgloss.Style { return &p.Warn })
				}
			}
		case sortPower:
			if rr.Temps == 0 && r.kind == fleet.KindDevice {
				text = "—"
			} else {
				text = fmtPower(rr.PowerKW())
				if plain != nil {
					s = plain.powerStyle(rr.PowerKW())
				}
			}
		case sortSoC:
			if rr.CapacityMicroKWh <= 0 {
				text = "—"
			} else {
				text = fmtFixed(rr.SoCPct(), 1) + "%"
				if plain != nil {
					s = plain.socStyle(rr.SoCPct())
				}
			}
		case sortEnergy:
			text = fmtEnergy(rr.EnergyKWh())
		case sortHeadroom:
			text = fmtPair(rr.HeadroomDischargeKW(), rr.HeadroomChargeKW(), "W")
		case sortAlarms:
			text = itoa(int(rr.Alarming))
			if r.kind == fleet.KindDevice {
				text = itoa(len(fleet.AlarmNames(r.dev.GetLast().GetAlarms())))
			}
			if text == "0" {
				text = "·"
			} else {
				s = pick(plain, func(p *styleSet) *lipgloss.Style { return &p.Crit })
			}
		default: // trend
			b.WriteString(t.trend(r, c.w, plain))
			continue
		}
		b.WriteString(render(s, fit(text, c.w, c.right)))
	}
	line := b.String()
	if selected {
		return st.Selected.Render(fit(line, t.width, false))
	}
	return line
}

// trend is the row's power sparkline over the last w seconds, on a
// centred baseline scaled to the node's limits.
func (t *tableView) trend(r *row, w int, plain *styleSet) string {
	vals := t.c.seriesOf(r.kind, r.id, history.PowerKW, w)
	limit := powerLimit(&r.r)
	if r.kind == fleet.KindDevice {
		l := r.dev.GetLast()
		limit = math.Max(l.GetMaxChargeKw(), l.GetMaxDischargeKw())
	}
	limit = math.Max(limit, absMax(vals))
	var pos, neg *lipgloss.Style
	if plain != nil {
		pos, neg = &plain.Discharge, &plain.Charge
	}
	return spark(vals, w, limit, true, pos, neg)
}

// pick returns f(s), or nil when s is nil (the cursor row is plain).
func pick(s *styleSet, f func(*styleSet) *lipgloss.Style) *lipgloss.Style {
	if s == nil {
		return nil
	}
	return f(s)
}
