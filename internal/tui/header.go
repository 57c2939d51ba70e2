package tui

import (
	"math"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
)

// badge is the freshness badge: PAUSED, KAFKA ERROR or the loading
// progress while the fleet is incomplete, NO DATA, STALE with the age, or
// LIVE.
func (m *model) badge() string {
	st := &m.c.styles
	age, ok := m.c.age()
	load := &m.c.snap.Load
	switch {
	case m.c.paused:
		if ok {
			return st.Paused.Render(" PAUSED ") + st.Dim.Render(" data "+fmtAge(age)+" old")
		}
		return st.Paused.Render(" PAUSED ")
	case load.Loading && load.Err != "":
		return st.Stale.Render(" KAFKA ERROR ")
	case load.Loading:
		return st.Paused.Render(" " + load.Text() + " ")
	case !ok:
		return st.Stale.Render(" NO DATA ")
	case age > m.c.opts.StaleAfter:
		return st.Stale.Render(" STALE " + fmtAge(age) + " ")
	}
	return st.Live.Render("● LIVE") + st.Dim.Render(" "+fmtAge(age))
}

// focus is the node the header and the charts show: the one the active
// screen is on, else the fleet.
func (m *model) focus() *fleet.Node {
	if f, ok := m.top().(focuser); ok {
		if n := f.focus(); n != nil {
			return n
		}
	}
	return m.c.snap.Fleet
}

// header is the three text lines at the top: where we are, how fresh the
// data is and the clock; the focused node's power, energy and SoC; its
// devices and headroom, and the pipeline's ingest rate and lag.
func (m *model) header() string {
	st := &m.c.styles
	w := m.width
	c := m.c
	r := &m.focus().Rollup

	// Line 1: title, breadcrumb, badge and clock.
	cr := m.top().Crumbs()
	var crumb strings.Builder
	for i, s := range cr {
		if i > 0 {
			crumb.WriteString(st.CrumbSep.Render(" › "))
		}
		crumb.WriteString(st.Crumb.Render(s))
	}
	right := m.badge() + "  " + st.Dim.Render(c.now.Format("15:04:05"))
	l1 := spread(st.Title.Render("vpp top")+"  "+crumb.String(), right, w)

	// Stale numbers are drawn dim and without colour: never as live.
	stale := c.stale()
	val := func(t tone, text string) string {
		if stale {
			return st.Dim.Render(text)
		}
		if s := st.of(t); s != nil {
			return s.Render(text)
		}
		return st.Value.Render(text)
	}
	lbl := func(s string) string { return st.Label.Render(s) }
	sep := "  "

	kw := r.PowerKW()
	if load := &c.snap.Load; load.Loading && load.Err != "" {
		// The cause replaces the totals it leaves at zero or out of date.
		l2 := st.Crit.Render(truncate(load.Err+" · retrying", w))
		return l1 + "\n" + l2 + "\n" + m.headerLine3(val, lbl, sep)
	}
	l2 := joinFit(w, sep,
		lbl("Net ")+val(powerTone(kw), fmtScaled(kw, "W", true))+
			lbl(" (chg ")+val(toneCharge, fmtScaled(r.ChargeKW(), "W", false))+
			lbl(" dis ")+val(toneDischarge, fmtScaled(r.DischargeKW(), "W", false))+lbl(")"),
		// An active dispatch matters more than the energy and SoC, which a
		// narrow header drops first.
		m.dispatchSegment(val, lbl),
		lbl("Stored ")+val(toneNone, fmtScaledPair(r.EnergyKWh(), r.CapacityKWh(), "Wh")),
		lbl("SoC ")+val(socTone(r.SoCPct()), fmtFixed(r.SoCPct(), 1)+"%"),
	)

	return l1 + "\n" + l2 + "\n" + m.headerLine3(val, lbl, sep)
}

// dispatchSegment is the active dispatch of the focused node: its target,
// actual and error (actual − target); "" when none.
func (m *model) dispatchSegment(val func(tone, string) string, lbl func(string) string) string {
	f := m.focus()
	e := m.c.activeOn(f.Kind, f.ID)
	if e == nil {
		return ""
	}
	t, a := targetKW(e), e.ActualKW()
	return val(toneDischarge, "◆") + lbl(" tgt ") + val(powerTone(t), fmtPower(t)) +
		lbl(" act ") + val(powerTone(a), fmtPower(a)) +
		lbl(" err ") + val(warnIf(absf(a-t) > 0.1*absf(t)), fmtPower(a-t))
}

// headerLine3 is the header's devices, headroom, ingest and lag line.
func (m *model) headerLine3(val func(tone, string) string, lbl func(string) string, sep string) string {
	w := m.width
	c := m.c
	r := &m.focus().Rollup
	hd, hp := scale(max(r.HeadroomDischargeKW(), r.HeadroomChargeKW()))
	return joinFit(w, sep,
		lbl("Devices ")+val(toneNone, fmtCount(r.Online)+" on")+lbl(" · ")+val(warnIf(r.Offline > 0), fmtCount(r.Offline)+" off")+lbl(" · ")+val(critIf(r.Alarming > 0), fmtCount(r.Alarming)+" alarm"),
		lbl("Headroom ")+val(toneNone, "↑"+sig3(r.HeadroomDischargeKW()/hd)+" ↓"+sig3(r.HeadroomChargeKW()/hd)+" "+hp+"W"),
		lbl("Ingest ")+val(toneNone, fmtRate(c.ingestRate())),
		lbl("Lag ")+val(warnIf(c.snap.Pipeline.Lag > lagWarnRecs), fmtCount(c.snap.Pipeline.Lag)),
	)
}

// charts is the header's chart block: the focused node's power (signed,
// ntcharts streamline chart on ±limit) and SoC, and the fleet's ingest
// rate (ntcharts sparklines with fixed maxima), one title line each over
// the chart.
func (m *model) charts(height int) string {
	st := &m.c.styles
	c := m.c
	const gap = 2
	cw := (m.width - 2*gap) / 3
	node := m.focus()
	r := &node.Rollup
	n := cw

	pw := c.seriesOf(node.Kind, node.ID, history.PowerKW, n)
	limit := math.Max(powerLimit(r), absMax(pw))
	div, prefix := scale(limit)
	scaled := make([]float64, len(pw))
	for i, v := range pw {
		scaled[i] = v / div
	}
	powerC := signedChart(scaled, cw, height-1, limit/div, st.Discharge, st.ChartAxis)

	soc := c.seriesOf(node.Kind, node.ID, history.SoCPct, n)
	socC := barChart(soc, cw, height-1, 100, st.SoCChart)

	rate := c.seriesOf(fleet.KindFleet, fleet.FleetID, history.ReceivedPerSec, n)
	rateC := barChart(rate, cw, height-1, math.Max(1, absMax(rate)*1.1), st.RateChart)

	titles := []string{
		st.Label.Render("Power "+prefix+"W ") + st.Dim.Render("+dis/−chg, "+itoa(n)+"s"),
		st.Label.Render("SoC % ") + st.Dim.Render("0–100, "+itoa(n)+"s"),
		st.Label.Render("Ingest/s ") + st.Dim.Render("max "+fmtRate(absMax(rate))),
	}
	cols := []string{powerC, socC, rateC}
	for i := range cols {
		cols[i] = lipgloss.NewStyle().Width(cw).MaxWidth(cw).Render(fit(titles[i], cw, false) + "\n" + fitLines(cols[i], cw, height-1))
	}
	sp := strings.Repeat(" ", gap)
	return lipgloss.JoinHorizontal(lipgloss.Top, cols[0], sp, cols[1], sp, cols[2])
}

// powerLimit is a symmetric scale for a node's power: the most it delivers
// or absorbs now plus its headroom (ratings are not in the rollup).
func powerLimit(r *fleet.Rollup) float64 {
	return math.Max(r.DischargeKW()+r.HeadroomDischargeKW(), r.ChargeKW()+r.HeadroomChargeKW())
}
