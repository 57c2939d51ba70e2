package tui

import (
	"math"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/proto/vppv1"
)

// deviceView is the detail of one device: every field of its last
// reading with units, its twin bookkeeping and its history sparklines. It
// looks the device up in each frame's snapshot (one binary search). While
// it is open, the history recorder keeps the device's series
// (Options.Watch).
type deviceView struct {
	c                *common
	short            []key.Binding
	siteID, deviceID string
	width, height    int
	// unwatch ends the history recorder's watch of the device; nil when
	// none is.
	unwatch func()
}

// screenDevice is the detail of one device, opened by openDeviceMsg.
const screenDevice screenID = "device"

// openDeviceMsg opens the detail of a device.
type openDeviceMsg struct{ siteID, deviceID string }

// opens implements opener.
func (openDeviceMsg) opens() screenID { return screenDevice }

func newDeviceView(c *common) *deviceView {
	return &deviceView{c: c, short: c.hints([]key.Binding{c.keys.Back}, screenAlarms, screenPipeline)}
}

// open shows a device and tells the history recorder.
func (d *deviceView) open(siteID, deviceID string) {
	d.close()
	d.siteID, d.deviceID = siteID, deviceID
	if d.c.opts.Watch != nil {
		d.unwatch = d.c.opts.Watch(siteID, deviceID)
	}
}

// close implements closer: the recorder stops watching the device.
func (d *deviceView) close() {
	if d.unwatch != nil {
		d.unwatch()
		d.unwatch = nil
	}
}

// ShortHelp implements help.KeyMap: the detail's hint bar.
func (d *deviceView) ShortHelp() []key.Binding { return d.short }

// FullHelp implements help.KeyMap.
func (d *deviceView) FullHelp() [][]key.Binding { return [][]key.Binding{{d.c.keys.Back}} }

// Crumbs implements screen: the device under its region, substation and
// site.
func (d *deviceView) Crumbs() []string {
	out := []string{fleet.FleetID}
	if n := d.c.snap.Site(d.siteID); n != nil {
		out = append(out, n.RegionID, n.SubstationID)
	}
	return append(out, d.siteID, d.deviceID)
}

// SetSize implements screen.
func (d *deviceView) SetSize(w, h int) { d.width, d.height = w, h }

// Update implements screen.
func (d *deviceView) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case openDeviceMsg:
		d.open(msg.siteID, msg.deviceID)
	case tea.KeyPressMsg:
		if key.Matches(msg, d.c.keys.Back) {
			return nil, nil
		}
	}
	return d, nil
}

// field is one labelled value of the detail.
type field struct {
	label string
	cell
}

// View implements screen.
func (d *deviceView) View() string {
	st := &d.c.styles
	site := d.c.snap.Site(d.siteID)
	var dev *vppv1.DeviceState
	if site != nil {
		dev = site.Device(d.deviceID)
	}
	if dev == nil {
		return st.Section.Render("device "+d.deviceID) + "\n" + st.Dim.Render("  not in the current snapshot (removed or moved)")
	}
	l := dev.GetLast()
	var b strings.Builder

	status := st.Live.Render("ONLINE")
	if dev.GetOffline() {
		status = st.Crit.Render("OFFLINE")
	}
	b.WriteString(spread(st.Section.Render("device "+d.deviceID)+"  "+status+st.Label.Render("  mode ")+st.Value.Render(fleet.ModeName(l.GetMode())),
		st.Dim.Render(d.siteID+" · "+site.SubstationID+" · "+site.RegionID), d.width))

	fields := d.fields(dev)
	b.WriteByte('\n')
	b.WriteString(grid(st, fields, d.width))

	// History sparklines, one line each, as many seconds as fit.
	rows := d.height - 1 - (len(fields)+gridCols(d.width)-1)/gridCols(d.width)
	if rows >= 2 {
		b.WriteString("\n" + st.Section.Render("history") + st.Dim.Render(" (per second, newest right)"))
		sw := max(0, d.width-14-12)
		limit := math.Max(l.GetMaxChargeKw(), l.GetMaxDischargeKw())
		hist := []struct {
			label  string
			m      history.Metric
			hi     float64
			signed bool
			unit   string
			pos    *lipgloss.Style
			neg    *lipgloss.Style
		}{
			{"power kW", history.PowerKW, limit, true, "kW", &st.Discharge, &st.Charge},
			{"SoC %", history.SoCPct, 100, false, "%", &st.SoCChart, nil},
			{"temp °C", history.TemperatureC, tempCritC + 10, false, "°C", &st.RateChart, nil},
		}
		for i, h := range hist {
			if i+2 > rows {
				break
			}
			vals := d.c.seriesOf(fleet.KindDevice, d.deviceID, h.m, sw)
			hi := math.Max(h.hi, absMax(vals))
			cur := lastFinite(vals)
			curText := "—"
			if !math.IsNaN(cur) {
				curText = fmtFixed(cur, 1) + " " + h.unit
			}
			b.WriteString("\n" + fit(st.Label.Render("  "+h.label), 14, false) + spark(vals, sw, hi, h.signed, h.pos, h.neg) + " " + st.Value.Render(curText))
		}
	}
	return b.String()
}

// fields is what the detail says about dev: every value with its unit
// and meaning (render side; grid styles them).
func (d *deviceView) fields(dev *vppv1.DeviceState) []field {
	l := dev.GetLast()
	now := d.c.now
	ago := func(ms int64) string {
		if ms <= 0 {
			return "—"
		}
		t := time.UnixMilli(ms).In(now.Location())
		return fmtAge(now.Sub(t)) + " ago (" + t.Format("15:04:05") + ")"
	}
	pw := l.GetPowerKw()
	dir := "idle"
	if pw > 0 {
		dir = "discharging"
	} else if pw < 0 {
		dir = "charging"
	}
	alarms := cell{text: "none"}
	if names := fleet.AlarmNames(l.GetAlarms()); len(names) > 0 {
		words := make([]string, len(names))
		for i, n := range names {
			words[i] = alarmWords(n)
		}
		alarms = cell{text: strings.Join(words, ", "), tone: toneCrit}
	}
	val := func(text string) cell { return cell{text: text} }
	fields := []field{
		{"last seen", cell{text: ago(dev.GetAppliedMs()), tone: critIf(dev.GetOffline())}},
		{"reading at", val(ago(l.GetTsMs()))},
		{"seq", val(fmtCount(l.GetSeq()))},
		{"power", cell{text: fmtFixed(pw, 2) + " kW " + dir, tone: powerTone(pw)}},
		{"SoC", cell{text: fmtFixed(l.GetSocPct(), 1) + " %", tone: socTone(l.GetSocPct())}},
		{"SoH", val(fmtFixed(l.GetSohPct(), 1) + " %")},
		{"energy", val(fmtFixed(l.GetSocPct()/100*l.GetCapacityKwh(), 2) + " / " + fmtFixed(l.GetCapacityKwh(), 2) + " kWh")},
		{"voltage", val(fmtFixed(l.GetVoltageV(), 1) + " V")},
		{"current", val(fmtFixed(l.GetCurrentA(), 1) + " A")},
		{"temperature", cell{text: fmtFixed(l.GetTemperatureC(), 1) + " °C", tone: tempTone(l.GetTemperatureC())}},
		{"max charge", val(fmtFixed(l.GetMaxChargeKw(), 2) + " kW")},
		{"max discharge", val(fmtFixed(l.GetMaxDischargeKw(), 2) + " kW")},
		{"headroom ↑", val(fmtFixed(dev.GetHeadroomDischargeKw(), 2) + " kW")},
		{"headroom ↓", val(fmtFixed(dev.GetHeadroomChargeKw(), 2) + " kW")},
		{"applied", val(fmtCount(dev.GetApplied()))},
		{"duplicates", val(fmtCount(dev.GetDuplicates()))},
		{"gaps", cell{text: fmtCount(dev.GetGaps()), tone: warnIf(dev.GetGaps() > 0)}},
		{"alarms", alarms},
	}
	return fields
}

// fieldW is the width of one label/value cell of the detail grid.
const fieldW = 40

func gridCols(w int) int { return max(1, w/fieldW) }

// grid lays fields out in as many columns as fit, row by row.
func grid(st *styleSet, fields []field, w int) string {
	n := gridCols(w)
	cw := w / n
	var b strings.Builder
	for i, f := range fields {
		if i > 0 && i%n == 0 {
			b.WriteByte('\n')
		}
		c := st.Label.Render(fit("  "+f.label, 16, false)) + render(st.of(f.tone), f.text)
		b.WriteString(fit(c, cw, false))
	}
	return b.String()
}

// alarmWords turns an alarm's short name into words: "low_soc" is
// "low SoC".
func alarmWords(name string) string {
	switch name {
	case "low_soc":
		return "low SoC"
	case "bms_fault":
		return "BMS fault"
	case "over_temperature":
		return "over-temperature"
	}
	return strings.ReplaceAll(name, "_", " ")
}
