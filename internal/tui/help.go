package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"
)

// helpView is the full key help, generated from the key map, and the
// meaning of the colours and badges.
type helpView struct {
	c             *common
	width, height int
}

func newHelpView(c *common) *helpView { return &helpView{c: c} }

// SetSize implements component.
func (h *helpView) SetSize(w, hh int) { h.width, h.height = w, hh }

// Update implements component.
func (h *helpView) Update(tea.Msg) tea.Cmd { return nil }

// View implements component.
func (h *helpView) View() string {
	st := &h.c.styles
	hm := help.New()
	hm.Styles = st.Help
	hm.SetWidth(h.width)
	var b strings.Builder
	b.WriteString(st.Section.Render("keys") + "\n")
	b.WriteString(hm.FullHelpView(h.c.keys.fullHelp()))
	b.WriteString("\n\n" + st.Section.Render("reading the screen") + "\n")
	legend := []string{
		"power: " + st.Discharge.Render("+ discharging") + " (to the grid), " + st.Charge.Render("− charging") + "; trends are centred on zero",
		"SoC: " + st.Warn.Render("< 20 % warn") + ", " + st.Crit.Render("< 10 % critical") + "; temperature: " + st.Warn.Render("≥ 45 °C") + ", " + st.Crit.Render("≥ 55 °C"),
		"ONLINE is online/total devices; HDRM ↑/↓ is headroom to discharge / to absorb",
		st.Stale.Render(" STALE ") + " no new data for more than " + fmtAge(h.c.opts.StaleAfter) + ": the numbers are old, not live",
		st.Paused.Render(" PAUSED ") + " the view is frozen (space resumes)",
	}
	for _, l := range legend {
		b.WriteString("  " + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
