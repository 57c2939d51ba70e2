package tui

import (
	"slices"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// helpView is the ? help: the key table of the screen it was opened
// from, with the global keys, and the meaning of the colours and badges.
// The root opens it over the active screen (explain) and closes it on ?
// or Back.
type helpView struct {
	c             *common
	short         []key.Binding
	keys          [][]key.Binding // the columns explained
	width, height int
}

func newHelpView(c *common) *helpView {
	return &helpView{c: c, short: []key.Binding{c.keys.Back, c.keys.Quit}}
}

// explain sets the screen whose keys the help shows.
func (h *helpView) explain(s screen) {
	h.keys = append(slices.Clip(s.FullHelp()), h.c.globalHelp())
}

// ShortHelp implements help.KeyMap: back and quit.
func (h *helpView) ShortHelp() []key.Binding { return h.short }

// FullHelp implements help.KeyMap.
func (h *helpView) FullHelp() [][]key.Binding { return [][]key.Binding{h.short} }

// Crumbs implements screen.
func (h *helpView) Crumbs() []string { return []string{"help"} }

// SetSize implements screen.
func (h *helpView) SetSize(w, hh int) { h.width, h.height = w, hh }

// Update implements screen.
func (h *helpView) Update(msg tea.Msg) (screen, tea.Cmd) {
	if kp, ok := msg.(tea.KeyPressMsg); ok && key.Matches(kp, h.c.keys.Back) {
		return nil, nil
	}
	return h, nil
}

// View implements screen.
func (h *helpView) View() string {
	st := &h.c.styles
	hm := help.New()
	hm.Styles = st.Help
	hm.SetWidth(h.width)
	var b strings.Builder
	b.WriteString(st.Section.Render("keys") + "\n")
	b.WriteString(hm.FullHelpView(h.keys))
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
