package tui

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// severity orders alarms: critical first.
type severity int

const (
	sevCrit severity = iota // faults, over-temperature
	sevWarn                 // offline
	sevInfo                 // low SoC, cell imbalance, other bits
)

func (s severity) String() string {
	switch s {
	case sevCrit:
		return "CRIT"
	case sevWarn:
		return "WARN"
	}
	return "INFO"
}

// alarmItem is one device with alarms or offline.
type alarmItem struct {
	sev       severity
	deviceID  string
	siteID    string
	path      string // region/substation
	offline   bool
	appliedMS int64 // last seen; ages are computed per frame
	words     string
}

// severityOf ranks a device: faults and over-temperature are critical,
// offline is a warning, the rest (low SoC, imbalance) informational.
func severityOf(d *vppv1.DeviceState) severity {
	a := d.GetLast().GetAlarms()
	crit := uint32(vppv1.Alarm_ALARM_OVER_TEMPERATURE | vppv1.Alarm_ALARM_BMS_FAULT | vppv1.Alarm_ALARM_INVERTER_FAULT)
	switch {
	case a&crit != 0:
		return sevCrit
	case d.GetOffline():
		return sevWarn
	}
	return sevInfo
}

// collectAlarms lists the devices with alarms or offline, by severity then
// newest first. It visits only the subtrees whose rollups count alarming
// or offline devices, so a healthy fleet costs its regions, not its
// devices.
func collectAlarms(s *fleet.Snapshot) []alarmItem {
	var out []alarmItem
	hot := func(n *fleet.Node) bool { return n.Rollup.Alarming > 0 || n.Rollup.Offline > 0 }
	for _, reg := range s.Regions() {
		if !hot(reg) {
			continue
		}
		for _, sub := range reg.Children {
			if !hot(sub) {
				continue
			}
			for _, site := range sub.Children {
				if !hot(site) {
					continue
				}
				for _, d := range site.Devices() {
					l := d.GetLast()
					if l.GetAlarms() == 0 && !d.GetOffline() {
						continue
					}
					var words []string
					if d.GetOffline() {
						words = append(words, "offline")
					}
					for _, n := range fleet.AlarmNames(l.GetAlarms()) {
						words = append(words, alarmWords(n))
					}
					out = append(out, alarmItem{
						sev:       severityOf(d),
						deviceID:  l.GetDeviceId(),
						siteID:    site.ID,
						path:      reg.ID + "/" + sub.ID,
						offline:   d.GetOffline(),
						appliedMS: d.GetAppliedMs(),
						words:     strings.Join(words, ", "),
					})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b alarmItem) int {
		return cmp.Or(cmp.Compare(a.sev, b.sev), cmp.Compare(b.appliedMS, a.appliedMS), strings.Compare(a.deviceID, b.deviceID))
	})
	return out
}

// alarmsView lists alarming and offline devices. The list is computed at
// most once per snapshot version, and only while the view is shown.
type alarmsView struct {
	c       *common
	short   []key.Binding
	items   []alarmItem
	version uint64
	built   bool
	// builds counts list computations (tests check the cache).
	builds int

	cur           listCursor
	width, height int
}

// screenAlarms is the alarms list.
const screenAlarms screenID = "alarms"

func newAlarmsView(c *common) *alarmsView {
	return &alarmsView{c: c, cur: newListCursor(), short: c.hints([]key.Binding{c.keys.Enter, c.keys.Back}, screenFleet, screenPipeline)}
}

// ShortHelp implements help.KeyMap: the alarms' hint bar.
func (a *alarmsView) ShortHelp() []key.Binding { return a.short }

// FullHelp implements help.KeyMap: the cursor's keys, open and back.
func (a *alarmsView) FullHelp() [][]key.Binding {
	return [][]key.Binding{a.cur.keys.help(), {a.c.keys.Enter, a.c.keys.Back}}
}

// Crumbs implements screen.
func (a *alarmsView) Crumbs() []string { return []string{fleet.FleetID, "alarms"} }

// SetSize implements screen.
func (a *alarmsView) SetSize(w, h int) {
	a.width, a.height = w, h
	a.cur.setPage(max(1, a.height-2), a)
}

// rowCount and rowID implement rowList.
func (a *alarmsView) rowCount() int      { return len(a.items) }
func (a *alarmsView) rowID(i int) string { return a.items[i].deviceID }

// refresh implements refresher: it recomputes the list when the snapshot
// version changed; the cursor follows the selected device.
func (a *alarmsView) refresh() {
	if a.built && a.version == a.c.snap.Version {
		return
	}
	a.items = collectAlarms(a.c.snap)
	a.version, a.built = a.c.snap.Version, true
	a.builds++
	a.cur.follow(a)
}

// Update implements screen.
func (a *alarmsView) Update(msg tea.Msg) (screen, tea.Cmd) {
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok || a.cur.update(kp, a) {
		return a, nil
	}
	switch {
	case key.Matches(kp, a.c.keys.Enter):
		if i, ok := a.cur.at(a); ok {
			it := a.items[i]
			return a, func() tea.Msg { return openDeviceMsg{siteID: it.siteID, deviceID: it.deviceID} }
		}
	case key.Matches(kp, a.c.keys.Back):
		return nil, nil
	}
	return a, nil
}

// alarmColumns are the widths of the alarm list's columns at a width; path
// is 0 when the region/substation column is left out.
type alarmColumns struct {
	sev, dev, site, path, age, problem int
}

func alarmLayout(w int) alarmColumns {
	c := alarmColumns{sev: 4, dev: 16, site: 12, path: 18, age: 7}
	c.problem = w - marker - c.sev - c.dev - c.site - c.path - c.age - 5
	if c.problem < 20 {
		c.path = 0
		c.problem = w - marker - c.sev - c.dev - c.site - c.age - 4
	}
	c.problem = max(1, c.problem)
	return c
}

// What an alarm says: its cells.

// alarmCells is what an alarm shows: severity (with its meaning), device,
// site, region/substation, how long ago it was seen, and its problems.
type alarmCells struct {
	sev, dev, site, path, age, problem cell
}

func (a *alarmsView) cellsOf(it *alarmItem) alarmCells {
	age := "—"
	if it.appliedMS > 0 {
		age = fmtAge(a.c.now.Sub(time.UnixMilli(it.appliedMS)))
	}
	return alarmCells{
		sev:     cell{text: it.sev.String(), tone: it.sev.tone()},
		dev:     cell{text: it.deviceID},
		site:    cell{text: it.siteID},
		path:    cell{text: it.path},
		age:     cell{text: age},
		problem: cell{text: it.words},
	}
}

// tone is the meaning of a severity.
func (s severity) tone() tone {
	switch s {
	case sevCrit:
		return toneCrit
	case sevWarn:
		return toneWarn
	}
	return toneNone
}

// How it looks.

// View implements screen.
func (a *alarmsView) View() string {
	st := &a.c.styles
	var b strings.Builder
	var crit, warn int
	for i := range a.items {
		switch a.items[i].sev {
		case sevCrit:
			crit++
		case sevWarn:
			warn++
		}
	}
	left := st.Section.Render("alarms") + st.Dim.Render(" ("+itoa(len(a.items))+" devices: "+itoa(crit)+" critical, "+itoa(warn)+" offline) · severity, then newest")
	right := ""
	if p := a.cur.position(a); p != "" {
		right = st.Dim.Render(p)
	}
	b.WriteString(spread(left, right, a.width))

	lay := alarmLayout(a.width)
	b.WriteByte('\n')
	hdr := strings.Repeat(" ", marker) + fit("SEV", lay.sev, false) + " " + fit("DEVICE", lay.dev, false) + " " + fit("SITE", lay.site, false) + " "
	if lay.path > 0 {
		hdr += fit("REGION/SUBST", lay.path, false) + " "
	}
	hdr += fit("SEEN", lay.age, true) + " " + "PROBLEM"
	b.WriteString(st.TableHeader.Render(fit(hdr, a.width, false)))
	if len(a.items) == 0 {
		b.WriteString("\n  " + st.Dim.Render("no alarms, no offline devices"))
		return b.String()
	}
	from, to := a.cur.visible(a)
	for i := from; i < to; i++ {
		b.WriteByte('\n')
		b.WriteString(a.renderRow(a.cellsOf(&a.items[i]), lay, i == a.cur.index))
	}
	return b.String()
}

// renderRow draws one alarm from its cells; the cursor row is plain on the
// selection background.
func (a *alarmsView) renderRow(c alarmCells, lay alarmColumns, selected bool) string {
	st := &a.c.styles
	var line strings.Builder
	var sevStyle *lipgloss.Style
	if selected {
		line.WriteString("▸ ")
	} else {
		line.WriteString("  ")
		sevStyle = st.of(c.sev.tone)
	}
	line.WriteString(render(sevStyle, fit(c.sev.text, lay.sev, false)))
	line.WriteString(" " + fit(c.dev.text, lay.dev, false) + " " + fit(c.site.text, lay.site, false) + " ")
	if lay.path > 0 {
		line.WriteString(fit(c.path.text, lay.path, false) + " ")
	}
	line.WriteString(fit(c.age.text, lay.age, true) + " " + truncate(c.problem.text, lay.problem))
	if selected {
		return st.Selected.Render(fit(line.String(), a.width, false))
	}
	return line.String()
}
