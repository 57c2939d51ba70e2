package tui

import (
	"image/color"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// styleSet is every style the dashboard draws with, built in one place. The
// colours are truecolor; the program downsamples them to the terminal's
// profile (256, 16 colours, or none for NO_COLOR), so text attributes and
// glyphs (▲▼, STALE, OFFLINE) carry the meaning where colour cannot.
type styleSet struct {
	// Title is the program name in the top line.
	Title lipgloss.Style
	// Crumb is the breadcrumb; CrumbSep its separators.
	Crumb, CrumbSep lipgloss.Style
	// Label is a muted label before a value; Value a plain emphasised value.
	Label, Value lipgloss.Style
	// Dim is secondary text (units, hints, empty values).
	Dim lipgloss.Style
	// Warn and Crit mark values past their thresholds.
	Warn, Crit lipgloss.Style
	// Charge and Discharge colour power by direction.
	Charge, Discharge lipgloss.Style
	// Live, Stale and Paused are the freshness badges.
	Live, Stale, Paused lipgloss.Style
	// TableHeader is the column header row; Selected the cursor row.
	TableHeader, Selected lipgloss.Style
	// Section titles a block of the detail and pipeline views.
	Section lipgloss.Style
	// Help styles the hint bar and the help screen.
	Help help.Styles
	// ChartAxis is the axis of the header charts.
	ChartAxis lipgloss.Style
	// SoCChart and RateChart are the header sparkline colours.
	SoCChart, RateChart lipgloss.Style
}

// newStyles returns the styles for a dark or light terminal background.
func newStyles(isDark bool) styleSet {
	ld := lipgloss.LightDark(isDark)
	c := func(light, dark string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(dark)) }
	var (
		muted     = c("#6c6f85", "#7f849c")
		text      = c("#4c4f69", "#cdd6f4")
		accent    = c("#1e66f5", "#89b4fa")
		warn      = c("#df8e1d", "#f9e2af")
		crit      = c("#d20f39", "#f38ba8")
		charge    = c("#04a5e5", "#89dceb")
		discharge = c("#40a02b", "#a6e3a1")
		selBg     = c("#ccd0da", "#45475a")
	)
	s := styleSet{
		Title:       lipgloss.NewStyle().Bold(true).Foreground(accent),
		Crumb:       lipgloss.NewStyle().Foreground(text).Bold(true),
		CrumbSep:    lipgloss.NewStyle().Foreground(muted),
		Label:       lipgloss.NewStyle().Foreground(muted),
		Value:       lipgloss.NewStyle().Foreground(text),
		Dim:         lipgloss.NewStyle().Foreground(muted),
		Warn:        lipgloss.NewStyle().Foreground(warn),
		Crit:        lipgloss.NewStyle().Foreground(crit).Bold(true),
		Charge:      lipgloss.NewStyle().Foreground(charge),
		Discharge:   lipgloss.NewStyle().Foreground(discharge),
		Live:        lipgloss.NewStyle().Foreground(discharge),
		Stale:       lipgloss.NewStyle().Foreground(crit).Bold(true).Reverse(true),
		Paused:      lipgloss.NewStyle().Foreground(warn).Bold(true).Reverse(true),
		TableHeader: lipgloss.NewStyle().Foreground(muted).Bold(true),
		Selected:    lipgloss.NewStyle().Background(selBg).Foreground(text).Bold(true),
		Section:     lipgloss.NewStyle().Foreground(accent).Bold(true),
		ChartAxis:   lipgloss.NewStyle().Foreground(muted),
		SoCChart:    lipgloss.NewStyle().Foreground(accent),
		RateChart:   lipgloss.NewStyle().Foreground(muted),
	}
	key := lipgloss.NewStyle().Foreground(accent)
	desc := lipgloss.NewStyle().Foreground(muted)
	s.Help = help.Styles{
		Ellipsis:       desc,
		ShortKey:       key,
		ShortDesc:      desc,
		ShortSeparator: desc,
		FullKey:        key,
		FullDesc:       desc,
		FullSeparator:  desc,
	}
	return s
}

// of is the style of a meaning; nil (plain) for toneNone. tonePower
// has two styles: see series.
func (s *styleSet) of(t tone) *lipgloss.Style {
	switch t {
	case toneWarn:
		return &s.Warn
	case toneCrit:
		return &s.Crit
	case toneCharge:
		return &s.Charge
	case toneDischarge, tonePower:
		return &s.Discharge
	}
	return nil
}

// series is the styles of a trend of tone t above and below its baseline.
func (s *styleSet) series(t tone) (pos, neg *lipgloss.Style) {
	if t == tonePower {
		return &s.Discharge, &s.Charge
	}
	return s.of(t), nil
}

// render applies st to text; a nil style leaves it plain.
func render(st *lipgloss.Style, text string) string {
	if st == nil || text == "" {
		return text
	}
	return st.Render(text)
}
