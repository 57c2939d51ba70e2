package tui

import (
	"math"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/NimbleMarkets/ntcharts/v2/canvas/runes"
	"github.com/NimbleMarkets/ntcharts/v2/linechart/streamlinechart"
	"github.com/NimbleMarkets/ntcharts/v2/sparkline"
)

// blocks are the eight heights of a one-line sparkline.
var blocks = [8]rune{'▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'}

// sparkLevels maps values to block heights 0..7 (-1 for a missing value).
// Unsigned: 0 → ▁, hi → █. Signed (a centred baseline for power): 0 → ▄,
// +limit → █, −limit → ▁.
func sparkLevels(vals []float64, hi float64, signed bool, out []int8) []int8 {
	out = out[:0]
	if !(hi > 0) {
		hi = 1
	}
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out = append(out, -1)
			continue
		}
		var l float64
		if signed {
			f := math.Max(-1, math.Min(1, v/hi))
			if f >= 0 {
				l = 3 + math.Round(f*4)
			} else {
				l = 3 + math.Round(f*3)
			}
		} else {
			l = math.Round(math.Max(0, math.Min(1, v/hi)) * 7)
		}
		out = append(out, int8(l))
	}
	return out
}

// spark renders vals as a one-line block sparkline of exactly w cells,
// right-aligned (the newest value at the right edge, missing values blank).
// For signed values, pos and neg colour the cells above and below the
// baseline (nil: plain); for unsigned ones pos colours every cell.
func spark(vals []float64, w int, hi float64, signed bool, pos, neg *lipgloss.Style) string {
	if w <= 0 {
		return ""
	}
	if len(vals) > w {
		vals = vals[len(vals)-w:]
	}
	var buf [256]int8
	lv := sparkLevels(vals, hi, signed, buf[:0])
	var b strings.Builder
	b.Grow(w * 3)
	b.WriteString(strings.Repeat(" ", w-len(lv)))
	// Group runs of one colour to render each run once.
	var run strings.Builder
	runStyle := (*lipgloss.Style)(nil)
	flush := func() {
		if run.Len() > 0 {
			b.WriteString(render(runStyle, run.String()))
			run.Reset()
		}
	}
	for i, l := range lv {
		st := pos
		r := ' '
		if l >= 0 {
			r = blocks[l]
			if signed && vals[i] < 0 {
				st = neg
			} else if signed && vals[i] == 0 {
				st = nil
			}
		} else {
			st = nil
		}
		if st != runStyle {
			flush()
			runStyle = st
		}
		run.WriteRune(r)
	}
	flush()
	return b.String()
}

// absMax is the largest |v| of the finite values; 0 when there is none.
func absMax(vals []float64) float64 {
	m := 0.0
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			m = math.Max(m, math.Abs(v))
		}
	}
	return m
}

// lastFinite is the newest finite value, or NaN.
func lastFinite(vals []float64) float64 {
	for i := len(vals) - 1; i >= 0; i-- {
		if v := vals[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v
		}
	}
	return math.NaN()
}

// signedChart draws a signed series (power) with ntcharts' streamline
// chart on a symmetric range ±limit, so that charging shows below the zero
// line (the ntcharts sparkline would clamp it to 0). A fresh chart is built
// per frame from the series: ntcharts models share buffers when copied and
// keep state between pushes. Leading missing seconds are left out; a gap
// inside the series holds the previous value.
func signedChart(vals []float64, w, h int, limit float64, st, axis lipgloss.Style) string {
	if w < 8 || h < 2 {
		return ""
	}
	if !(limit > 0) {
		limit = 1
	}
	// The chart maps [min, max] onto h+1 row positions of which the top
	// one is off the canvas: stretch max so that −limit, 0 and +limit fall
	// on rows 0, (h-1)/2 and h-1 (h odd keeps 0 on a row and its label).
	top := -limit + 2*limit/float64(h-1)*float64(h)
	c := streamlinechart.New(w, h,
		streamlinechart.WithYRange(-limit, top),
		streamlinechart.WithStyles(runes.ArcLineStyle, st),
		streamlinechart.WithAxesStyles(axis, axis),
	)
	c.AutoMinY, c.AutoMaxY = false, false
	c.YLabelFormatter = func(_ int, v float64) string {
		if math.Abs(v) < limit/1e3 {
			return "0"
		}
		return axisLabel(v)
	}
	c.SetYStep((h - 1) / 2)
	c.UpdateGraphSizes()
	c.SetViewYRange(-limit, top)
	started, prev := false, 0.0
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if !started {
				continue
			}
			v = prev
		}
		started, prev = true, math.Max(-limit, math.Min(limit, v))
		c.Push(prev)
	}
	c.Draw()
	return c.View()
}

// barChart draws an unsigned series (SoC, a rate) with ntcharts' sparkline
// with a fixed maximum (its auto-maximum only grows). Missing seconds are
// drawn empty.
func barChart(vals []float64, w, h int, hi float64, st lipgloss.Style) string {
	if w < 4 || h < 1 {
		return ""
	}
	if !(hi > 0) {
		hi = 1
	}
	s := sparkline.New(w, h, sparkline.WithMaxValue(hi), sparkline.WithNoAutoMaxValue(), sparkline.WithStyle(st))
	if len(vals) > w {
		vals = vals[len(vals)-w:]
	}
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		s.Push(math.Min(v, hi))
	}
	s.Draw()
	return s.View()
}

// axisLabel formats a chart's axis value compactly: 120, -48, 7.8, 0.5.
func axisLabel(v float64) string {
	if math.Abs(v) >= 9.95 {
		return fmtFixed(v, 0)
	}
	return fmtFixed(v, 1)
}
