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
	items   []alarmItem
	version uint64
	built   bool
	// builds counts list computations (tests check the cache).
	builds int

	selID         string
	cursor        int
	offset        int
	width, height int
}

func newAlarmsView(c *common) *alarmsView { return &alarmsView{c: c} }

// SetSize implements component.
func (a *alarmsView) SetSize(w, h int) {
	a.width, a.height = w, h
	a.scroll()
}

// refresh recomputes the list when the snapshot version changed.
func (a *alarmsView) refresh() {
	if a.built && a.version == a.c.snap.Version {
		return
	}
	a.items = collectAlarms(a.c.snap)
	a.version, a.built = a.c.snap.Version, true
	a.builds++
	// The cursor follows the selected device.
	a.cursor = max(0, min(a.cursor, len(a.items)-1))
	for i := range a.items {
		if a.items[i].deviceID == a.selID {
			a.cursor = i
			break
		}
	}
	a.sel()
	a.scroll()
}

func (a *alarmsView) sel() {
	if a.cursor < len(a.items) {
		a.selID = a.items[a.cursor].deviceID
	}
}

func (a *alarmsView) pageRows() int { return max(1, a.height-2) }

func (a *alarmsView) scroll() {
	a.offset = scrollOffset(a.cursor, a.offset, a.pageRows(), len(a.items))
}

func (a *alarmsView) moveTo(i int) {
	if len(a.items) == 0 {
		return
	}
	a.cursor = max(0, min(i, len(a.items)-1))
	a.sel()
	a.scroll()
}

// Update implements component.
func (a *alarmsView) Update(msg tea.Msg) tea.Cmd {
	kp, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	k := &a.c.keys
	switch {
	case key.Matches(kp, k.Up):
		a.moveTo(a.cursor - 1)
	case key.Matches(kp, k.Down):
		a.moveTo(a.cursor + 1)
	case key.Matches(kp, k.PageUp):
		a.moveTo(a.cursor - a.pageRows())
	case key.Matches(kp, k.PageDown):
		a.moveTo(a.cursor + a.pageRows())
	case key.Matches(kp, k.Top):
		a.moveTo(0)
	case key.Matches(kp, k.Bottom):
		a.moveTo(len(a.items) - 1)
	case key.Matches(kp, k.Enter):
		if a.cursor < len(a.items) {
			it := a.items[a.cursor]
			return func() tea.Msg { return openDeviceMsg{siteID: it.siteID, deviceID: it.deviceID} }
		}
	}
	return nil
}

// View implements component.
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
	if len(a.items) > 0 {
		right = st.Dim.Render(itoa(a.cursor+1) + "/" + itoa(len(a.items)))
	}
	b.WriteString(spread(left, right, a.width))

	const sevW, ageW = 4, 7
	devW := 16
	siteW := 12
	pathW := 18
	rest := a.width - marker - sevW - devW - siteW - pathW - ageW - 5
	if rest < 20 {
		pathW = 0
		rest = a.width - marker - sevW - devW - siteW - ageW - 4
	}
	b.WriteByte('\n')
	hdr := strings.Repeat(" ", marker) + fit("SEV", sevW, false) + " " + fit("DEVICE", devW, false) + " " + fit("SITE", siteW, false) + " "
	if pathW > 0 {
		hdr += fit("REGION/SUBST", pathW, false) + " "
	}
	hdr += fit("SEEN", ageW, true) + " " + "PROBLEM"
	b.WriteString(st.TableHeader.Render(fit(hdr, a.width, false)))
	if len(a.items) == 0 {
		b.WriteString("\n  " + st.Dim.Render("no alarms, no offline devices"))
		return b.String()
	}
	end := min(len(a.items), a.offset+a.pageRows())
	for i := a.offset; i < end; i++ {
		it := &a.items[i]
		sel := i == a.cursor
		var sevStyle *lipgloss.Style
		if !sel {
			switch it.sev {
			case sevCrit:
				sevStyle = &st.Crit
			case sevWarn:
				sevStyle = &st.Warn
			}
		}
		age := "—"
		if it.appliedMS > 0 {
			age = fmtAge(a.c.now.Sub(time.UnixMilli(it.appliedMS)))
		}
		var line strings.Builder
		if sel {
			line.WriteString("▸ ")
		} else {
			line.WriteString("  ")
		}
		line.WriteString(render(sevStyle, fit(it.sev.String(), sevW, false)))
		line.WriteString(" " + fit(it.deviceID, devW, false) + " " + fit(it.siteID, siteW, false) + " ")
		if pathW > 0 {
			line.WriteString(fit(it.path, pathW, false) + " ")
		}
		line.WriteString(fit(age, ageW, true) + " " + truncate(it.words, max(1, rest)))
		b.WriteByte('\n')
		if sel {
			b.WriteString(st.Selected.Render(fit(line.String(), a.width, false)))
		} else {
			b.WriteString(line.String())
		}
	}
	return b.String()
}
