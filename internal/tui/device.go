package tui

import (
	"math"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/proto/vppv1"
)

// deviceView is the detail of one device: every field of its last
// reading with units, its twin bookkeeping and its history sparklines. It
// looks the device up in each frame's snapshot (one binary search).
type deviceView struct {
	c                *common
	siteID, deviceID string
	width, height    int
}

func newDeviceView(c *common) *deviceView { return &deviceView{c: c} }

func (d *deviceView) open(siteID, deviceID string) { d.siteID, d.deviceID = siteID, deviceID }

// SetSize implements component.
func (d *deviceView) SetSize(w, h int) { d.width, d.height = w, h }

// Update implements component.
func (d *deviceView) Update(tea.Msg) tea.Cmd { return nil }

// field is one labelled value of the detail.
type field struct {
	label string
	value string
	style *lipgloss.Style
}

// View implements component.
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
	now := d.c.now
	var b strings.Builder

	status := st.Live.Render("ONLINE")
	if dev.GetOffline() {
		status = st.Crit.Render("OFFLINE")
	}
	b.WriteString(spread(st.Section.Render("device "+d.deviceID)+"  "+status+st.Label.Render("  mode ")+st.Value.Render(fleet.ModeName(l.GetMode())),
		st.Dim.Render(d.siteID+" · "+site.SubstationID+" · "+site.RegionID), d.width))

	ago := func(ms int64) string {
		if ms <= 0 {
			return "—"
		}
		t := time.UnixMilli(ms).In(now.Location())
		return fmtAge(now.Sub(t)) + " ago (" + t.Format("15:04:05") + ")"
	}
	var seenStyle *lipgloss.Style
	if dev.GetOffline() {
		seenStyle = &st.Crit
	}
	pw := l.GetPowerKw()
	dir := "idle"
	if pw > 0 {
		dir = "discharging"
	} else if pw < 0 {
		dir = "charging"
	}
	alarms := "none"
	var alarmStyle *lipgloss.Style
	if names := fleet.AlarmNames(l.GetAlarms()); len(names) > 0 {
		words := make([]string, len(names))
		for i, n := range names {
			words[i] = alarmWords(n)
		}
		alarms = strings.Join(words, ", ")
		alarmStyle = &st.Crit
	}
	fields := []field{
		{"last seen", ago(dev.GetAppliedMs()), seenStyle},
		{"reading at", ago(l.GetTsMs()), nil},
		{"seq", fmtCount(l.GetSeq()), nil},
		{"power", fmtFixed(pw, 2) + " kW " + dir, st.powerStyle(pw)},
		{"SoC", fmtFixed(l.GetSocPct(), 1) + " %", st.socStyle(l.GetSocPct())},
		{"SoH", fmtFixed(l.GetSohPct(), 1) + " %", nil},
		{"energy", fmtFixed(l.GetSocPct()/100*l.GetCapacityKwh(), 2) + " / " + fmtFixed(l.GetCapacityKwh(), 2) + " kWh", nil},
		{"voltage", fmtFixed(l.GetVoltageV(), 1) + " V", nil},
		{"current", fmtFixed(l.GetCurrentA(), 1) + " A", nil},
		{"temperature", fmtFixed(l.GetTemperatureC(), 1) + " °C", st.tempStyle(l.GetTemperatureC())},
		{"max charge", fmtFixed(l.GetMaxChargeKw(), 2) + " kW", nil},
		{"max discharge", fmtFixed(l.GetMaxDischargeKw(), 2) + " kW", nil},
		{"headroom ↑", fmtFixed(dev.GetHeadroomDischargeKw(), 2) + " kW", nil},
		{"headroom ↓", fmtFixed(dev.GetHeadroomChargeKw(), 2) + " kW", nil},
		{"applied", fmtCount(dev.GetApplied()), nil},
		{"duplicates", fmtCount(dev.GetDuplicates()), nil},
		{"gaps", fmtCount(dev.GetGaps()), gapStyle(st, dev.GetGaps())},
		{"alarms", alarms, alarmStyle},
	}
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

func gapStyle(st *styleSet, gaps uint64) *lipgloss.Style {
	if gaps > 0 {
		return &st.Warn
	}
	return nil
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
		cell := st.Label.Render(fit("  "+f.label, 16, false)) + render(f.style, f.value)
		b.WriteString(fit(cell, cw, false))
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
