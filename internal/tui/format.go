package tui

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

const ellipsis = "…"

// sig3 formats a non-negative magnitude with three significant digits:
// 1.23, 12.3, 123.
func sig3(v float64) string {
	switch {
	case v < 9.995:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 99.95:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// scale picks the unit of a quantity in kilo-units: k, M or G.
func scale(absKilo float64) (div float64, prefix string) {
	switch {
	case absKilo >= 999.5e3:
		return 1e6, "G"
	case absKilo >= 999.5:
		return 1e3, "M"
	}
	return 1, "k"
}

// fmtPower formats a signed power in kW compactly ("+1.23 MW", "-450 kW");
// > 0 is discharging. NaN is "—".
func fmtPower(kw float64) string {
	if math.IsNaN(kw) {
		return "—"
	}
	div, p := scale(math.Abs(kw))
	sign := "+"
	if kw < 0 {
		sign = "-"
	} else if kw == 0 {
		sign = " "
	}
	return sign + sig3(math.Abs(kw)/div) + " " + p + "W"
}

// fmtKW formats a power magnitude compactly ("3.20 MW").
func fmtKW(kw float64) string {
	if math.IsNaN(kw) {
		return "—"
	}
	div, p := scale(math.Abs(kw))
	return sig3(math.Abs(kw)/div) + " " + p + "W"
}

// fmtEnergy formats an energy in kWh compactly ("12.3 MWh").
func fmtEnergy(kwh float64) string {
	div, p := scale(math.Abs(kwh))
	return sig3(kwh/div) + " " + p + "Wh"
}

// fmtPair formats two magnitudes in kilo-units with one shared unit, as in
// "3.20/4.10 MW".
func fmtPair(a, b float64, unit string) string {
	div, p := scale(max(math.Abs(a), math.Abs(b)))
	return sig3(a/div) + "/" + sig3(b/div) + " " + p + unit
}

// fmtFixed formats v with d decimals.
func fmtFixed(v float64, d int) string { return strconv.FormatFloat(v, 'f', d, 64) }

// fmtScaled formats a quantity in kilo-units (kW, kWh) with two decimals
// in the unit its magnitude calls for (kW, MW, GW), with an explicit sign
// when signed: "+1.23 MW", "-3.00 kW".
func fmtScaled(kilo float64, unit string, signed bool) string {
	div, p := scale(math.Abs(kilo))
	s := strconv.FormatFloat(math.Abs(kilo)/div, 'f', 2, 64)
	switch {
	case signed && kilo < 0 && s != "0.00":
		s = "-" + s
	case signed && kilo > 0 && s != "0.00":
		s = "+" + s
	}
	return s + " " + p + unit
}

// fmtScaledPair formats two magnitudes in kilo-units in one shared unit
// with two decimals: "0.15/0.24 MWh".
func fmtScaledPair(a, b float64, unit string) string {
	div, p := scale(max(math.Abs(a), math.Abs(b)))
	return strconv.FormatFloat(a/div, 'f', 2, 64) + "/" + strconv.FormatFloat(b/div, 'f', 2, 64) + " " + p + unit
}

// fmtCount formats an integer with thousands separators: 1,234,567.
func fmtCount[T ~int64 | ~uint64 | ~int](n T) string {
	neg := n < 0
	var u uint64
	if neg {
		u = uint64(-int64(n))
	} else {
		u = uint64(n)
	}
	s := strconv.FormatUint(u, 10)
	if len(s) > 3 {
		var b strings.Builder
		pre := len(s) % 3
		if pre > 0 {
			b.WriteString(s[:pre])
		}
		for i := pre; i < len(s); i += 3 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s[i : i+3])
		}
		s = b.String()
	}
	if neg {
		return "-" + s
	}
	return s
}

// fmtRate formats a per-second rate ("3,012/s", "1.2M/s"); NaN is "—".
func fmtRate(r float64) string {
	if math.IsNaN(r) {
		return "—"
	}
	switch {
	case r >= 1e6:
		return sig3(r/1e6) + "M/s"
	case r >= 1e5:
		return sig3(r/1e3) + "k/s"
	}
	return fmtCount(int64(math.Round(r))) + "/s"
}

// fmtAge formats a duration for humans: 0.4s, 12s, 3m05s, 2h03m, 3d04h.
func fmtAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m" + pad2(int(d%time.Minute/time.Second)) + "s"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h" + pad2(int(d%time.Hour/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d" + pad2(int(d%(24*time.Hour)/time.Hour)) + "h"
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// width is the display width of s (ANSI sequences excluded).
func width(s string) int { return ansi.StringWidth(s) }

// truncate cuts s (which may hold ANSI sequences) to at most w cells,
// ending in … when cut.
func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, ellipsis)
}

// fit truncates s to w cells and pads it with spaces to exactly w cells,
// left-aligned, or right-aligned when right is set.
func fit(s string, w int, right bool) string {
	if w <= 0 {
		return ""
	}
	s = truncate(s, w)
	n := w - width(s)
	if n <= 0 {
		return s
	}
	if right {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

// fitLines truncates every line of s to w cells and keeps at most h lines,
// so that a view never wraps or overflows its box.
func fitLines(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if h >= 0 && len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		lines[i] = truncate(l, w)
	}
	return strings.Join(lines, "\n")
}

// joinFit joins whole segments with sep while they fit in w cells; the
// rest are left out (a segment is never cut in half unless it is the
// first).
func joinFit(w int, sep string, segs ...string) string {
	var b strings.Builder
	used := 0
	sw := width(sep)
	for _, s := range segs {
		if s == "" {
			continue
		}
		sw2 := width(s)
		if used == 0 {
			b.WriteString(truncate(s, w))
			used = min(sw2, w)
			continue
		}
		if used+sw+sw2 > w {
			break
		}
		b.WriteString(sep)
		b.WriteString(s)
		used += sw + sw2
	}
	return b.String()
}

// spread puts left and right on one line of w cells, right-aligned right;
// left is truncated when both do not fit.
func spread(left, right string, w int) string {
	rw := width(right)
	if rw >= w {
		return truncate(right, w)
	}
	left = truncate(left, w-rw-1)
	return left + strings.Repeat(" ", w-width(left)-rw) + right
}

func itoa(n int) string { return strconv.Itoa(n) }
