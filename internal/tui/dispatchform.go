package tui

import (
	"strings"
	"time"
	"unicode/utf8"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/flagval"
	"github.com/vppctl/vpp/internal/fleet"
)

// dispatchForm asks for a dispatch of one node: a power with its unit
// ("500kW", "-1MW": positive discharges) and a duration ("15m"), with the
// node's headroom as the feasible range. Enter submits through the
// Dispatcher, esc closes it; a refusal is shown under the fields.
type dispatchForm struct {
	c     *common
	kind  fleet.Kind
	id    string
	node  string // the dispatch node ID
	short []key.Binding

	fields [2]string // power, duration
	field  int
	err    string
	busy   bool

	width, height int
}

// Form fields.
const (
	fieldPower = iota
	fieldDuration
)

func newDispatchForm(c *common, kind fleet.Kind, id, node string) *dispatchForm {
	f := &dispatchForm{c: c, kind: kind, id: id, node: node, fields: [2]string{"", "15m"}}
	f.short = []key.Binding{
		binding("enter", "submit", "enter"),
		binding("tab", "next field", "tab"),
		binding("esc", "cancel", "esc"),
	}
	return f
}

// ShortHelp implements help.KeyMap.
func (f *dispatchForm) ShortHelp() []key.Binding { return f.short }

// FullHelp implements help.KeyMap.
func (f *dispatchForm) FullHelp() [][]key.Binding { return [][]key.Binding{f.short} }

// Crumbs implements screen.
func (f *dispatchForm) Crumbs() []string { return []string{fleet.FleetID, "dispatch " + f.node} }

// SetSize implements screen.
func (f *dispatchForm) SetSize(w, h int) { f.width, f.height = w, h }

// focus implements focuser: the header follows the node dispatched.
func (f *dispatchForm) focus() *fleet.Node { return f.target() }

// typing implements typist: the form takes every key.
func (f *dispatchForm) typing() bool { return true }

// typingHint implements typist.
func (f *dispatchForm) typingHint() string {
	return "power like 500kW or -1MW (+ discharges) · duration like 15m · tab next field · enter submit · esc cancel"
}

// target is the node in the latest snapshot, nil when it is gone.
func (f *dispatchForm) target() *fleet.Node {
	s := f.c.snap
	switch f.kind {
	case fleet.KindFleet:
		return s.Fleet
	case fleet.KindRegion:
		return s.Region(f.id)
	case fleet.KindSubstation:
		return s.Substation(f.id)
	}
	return s.Site(f.id)
}

// request parses the fields into the request the form submits.
func (f *dispatchForm) request() (dispatch.Request, error) {
	kw, err := flagval.ParsePowerKW(f.fields[fieldPower])
	if err != nil {
		return dispatch.Request{}, err
	}
	d, err := time.ParseDuration(strings.TrimSpace(f.fields[fieldDuration]))
	if err != nil {
		return dispatch.Request{}, err
	}
	r := dispatch.Request{
		Node: f.node, PowerKW: kw, Duration: d,
		CreatedBy: f.c.opts.Operator, Source: f.c.opts.Source,
	}
	// Build's checks first, so that a bad value is refused before the write.
	if _, err := dispatch.Build(r, f.c.now); err != nil {
		return dispatch.Request{}, err
	}
	return r, nil
}

// Update implements screen.
func (f *dispatchForm) Update(msg tea.Msg) (screen, tea.Cmd) {
	switch msg := msg.(type) {
	case dispatchCreatedMsg:
		f.busy = false
		if msg.err != nil {
			f.err = msg.err.Error()
			return f, nil
		}
		// Closed: the screen below notes the new dispatch.
		return nil, func() tea.Msg { return msg }
	case tea.KeyPressMsg:
		if f.busy {
			// The write goes on; its result is noted by the screen below.
			if msg.String() == "esc" {
				return nil, nil
			}
			return f, nil
		}
		switch msg.String() {
		case "esc":
			return nil, nil
		case "tab", "shift+tab", "down", "up":
			f.field = 1 - f.field
		case "enter":
			r, err := f.request()
			if err != nil {
				f.err = err.Error()
				return f, nil
			}
			f.err, f.busy = "", true
			return f, f.c.createCmd(r)
		case "backspace":
			if s := f.fields[f.field]; s != "" {
				_, n := utf8.DecodeLastRuneInString(s)
				f.fields[f.field] = s[:len(s)-n]
			}
		default:
			if msg.Text != "" {
				f.fields[f.field] += msg.Text
				f.err = ""
			}
		}
	}
	return f, nil
}

// View implements screen.
func (f *dispatchForm) View() string {
	st := &f.c.styles
	var b strings.Builder
	b.WriteString(st.Section.Render("dispatch "+f.node) + st.Dim.Render(" · by "+f.c.opts.Operator))
	if n := f.target(); n != nil {
		r := &n.Rollup
		b.WriteString("\n" + st.Label.Render("feasible  ") +
			st.Value.Render("discharge ↑ up to "+fmtPower(r.HeadroomDischargeKW())+" · charge ↓ down to "+fmtPower(-r.HeadroomChargeKW())) +
			st.Dim.Render(" ("+fmtCount(r.Online)+"/"+fmtCount(r.Devices)+" devices online)"))
	} else {
		b.WriteString("\n" + st.Warn.Render("the node is not in the fleet"))
	}
	labels := [2]string{"power     ", "duration  "}
	for i, l := range labels {
		b.WriteByte('\n')
		mark := "  "
		v := f.fields[i]
		if i == f.field {
			mark = "▸ "
			v += "█"
		}
		b.WriteString(mark + st.Label.Render(l) + st.Value.Render(v))
	}
	b.WriteByte('\n')
	switch {
	case f.busy:
		b.WriteString(st.Dim.Render("submitting…"))
	case f.err != "":
		b.WriteString(st.Crit.Render(truncate(f.err, f.width)))
	}
	return b.String()
}
