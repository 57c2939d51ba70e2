package tui

// What a screen shows is said in two steps, as k9s separates its renderers
// from its views: the render side of a screen turns a node, a device or an
// alarm into cells (the formatted value with its unit, and what the value
// means: in range, past a warn or critical threshold, charging or
// discharging); the view side lays the cells out and styles them from that
// meaning alone (styleSet.of). So thresholds live here, colours in
// styles.go, and no screen picks a colour for a number.

// Thresholds at which a value turns warn or critical. Colour carries
// meaning only: a value in range is drawn in the default colour.
const (
	socWarnPct  = 20.0 // SoC below this is warn
	socCritPct  = 10.0 // SoC below this is critical
	tempWarnC   = 45.0 // temperature above this is warn
	tempCritC   = 55.0 // temperature above this is critical
	lagWarnRecs = 10_000
)

// tone is what a value means for the eye.
type tone uint8

const (
	// toneNone is a value in range: the default colour.
	toneNone tone = iota
	// toneWarn is a value past its warn threshold (low SoC, warm, offline
	// devices, lag).
	toneWarn
	// toneCrit is a value past its critical threshold, or an alarm.
	toneCrit
	// toneCharge is power into the batteries.
	toneCharge
	// toneDischarge is power out of the batteries, to the grid.
	toneDischarge
	// tonePower is a signed power series: discharge above the baseline,
	// charge below it.
	tonePower
)

// cell is one value of a row as its screen's render side says it: text is
// the formatted value with its unit ("+1.23 MW", "61.5%", "—" when
// unknown) and tone its meaning. A trend cell has no text but the newest
// values of a series (series) on a scale of ±hi.
type cell struct {
	text   string
	tone   tone
	series []float64
	hi     float64
}

// warnIf is toneWarn when bad holds.
func warnIf(bad bool) tone {
	if bad {
		return toneWarn
	}
	return toneNone
}

// critIf is toneCrit when bad holds.
func critIf(bad bool) tone {
	if bad {
		return toneCrit
	}
	return toneNone
}

// socTone is the meaning of a state of charge.
func socTone(pct float64) tone {
	switch {
	case pct < socCritPct:
		return toneCrit
	case pct < socWarnPct:
		return toneWarn
	}
	return toneNone
}

// tempTone is the meaning of a temperature.
func tempTone(c float64) tone {
	switch {
	case c >= tempCritC:
		return toneCrit
	case c >= tempWarnC:
		return toneWarn
	}
	return toneNone
}

// powerTone is the direction of a signed power (> 0 discharging).
func powerTone(kw float64) tone {
	switch {
	case kw > 0:
		return toneDischarge
	case kw < 0:
		return toneCharge
	}
	return toneNone
}
