package tui

import (
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/fleet"
)

// tickMsg asks for a refresh.
type tickMsg time.Time

// Layout: the header's text lines, the chart block's height (title line
// plus chart), and the smallest terminal that gets charts.
const (
	headerLines = 3
	chartHeight = 6
	// chartMaxHeight is how tall the charts grow into the space a short
	// screen (a site's few devices) leaves below it.
	chartMaxHeight = 24
	chartMinW      = 90
	chartMinH      = 30
	footerLines    = 1
	minBodyLines   = 3
)

// model is the root model: the header, the screen on top of the stack and
// the hint bar. It knows no screen but the home (the fleet table, which
// Once prints) and the ? help it opens over the others.
type model struct {
	c      *common
	width  int
	height int
	// screens are the registered screens (registry order), ids their names.
	screens []screen
	ids     []screenID
	// stack is what is open, the home screen at the bottom and the active
	// screen on top.
	stack    []screen
	table    *tableView
	helpView *helpView
	hints    help.Model
	plain    bool // Once: no charts and no hint bar

	// The header charts cost the most of a frame (ntcharts styles every
	// cell): they are drawn once per data frame and width, and reused by
	// the frames that key presses cause in between.
	chartGen   uint64
	chartWidth int
	// chartKind and chartID are the node the cached charts show.
	chartKind fleet.Kind
	chartID   string
	chartH    int
	// laidOut is the body height the screens were last sized to.
	laidOut   int
	chartText string
}

func newModel(d Data, o Options) *model { return newModelOf(d, o, registry()) }

// newModelOf is a root model showing the screens of reg, which holds the
// home screen.
func newModelOf(d Data, o Options, reg []registration) *model {
	c := newCommon(d, o)
	for _, r := range reg {
		if hasKeys(r.jump) {
			c.jumps = append(c.jumps, jump{r.id, r.jump})
		}
	}
	m := &model{
		c:        c,
		width:    80,
		height:   24,
		helpView: newHelpView(c),
		hints:    help.New(),
	}
	for _, r := range reg {
		m.screens = append(m.screens, r.make(c))
		m.ids = append(m.ids, r.id)
	}
	m.table = m.registered(homeScreen).(*tableView)
	m.stack = []screen{m.table}
	m.hints.Styles = c.styles.Help
	m.layout()
	return m
}

// registered is the registered screen id.
func (m *model) registered(id screenID) screen {
	for i, s := range m.ids {
		if s == id {
			return m.screens[i]
		}
	}
	panic("tui: no screen " + string(id))
}

// top is the active screen.
func (m *model) top() screen { return m.stack[len(m.stack)-1] }

func (m *model) tick() tea.Cmd {
	return tea.Tick(m.c.opts.Refresh, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init implements tea.Model: it starts the refresh ticks and asks for the
// terminal's background colour (light or dark styles).
func (m *model) Init() tea.Cmd {
	return tea.Batch(m.tick(), tea.RequestBackgroundColor)
}

// Update implements tea.Model.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tea.BackgroundColorMsg:
		m.c.styles = newStyles(msg.IsDark())
		m.c.gen++
		m.hints.Styles = m.c.styles.Help
		return m, nil
	case tickMsg:
		if !m.c.paused {
			m.refresh()
		}
		return m, m.tick()
	case opener:
		s := m.registered(msg.opens())
		_, cmd := s.Update(msg)
		m.open(s)
		return m, cmd
	case tea.KeyPressMsg:
		return m, m.handleKey(msg)
	}
	return m, m.send(msg)
}

// send gives msg to the active screen and follows where it leads.
func (m *model) send(msg tea.Msg) tea.Cmd {
	cur := m.top()
	next, cmd := cur.Update(msg)
	switch {
	case next == nil:
		m.back()
	case next != cur:
		next.SetSize(m.width, m.bodyHeight())
		m.open(next)
	}
	return cmd
}

// refresh adopts the latest snapshot and brings the active screen up to
// date with it.
func (m *model) refresh() {
	m.c.refresh()
	if r, ok := m.top().(refresher); ok {
		r.refresh()
	}
}

func (m *model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.c.keys
	// Typing takes every key but ctrl+c.
	if t, ok := m.top().(typist); ok && t.typing() {
		if msg.String() == "ctrl+c" {
			return tea.Quit
		}
		return m.send(msg)
	}
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Pause):
		m.c.paused = !m.c.paused
		if !m.c.paused {
			m.refresh()
		}
		return nil
	case key.Matches(msg, k.Help):
		if m.top() == m.helpView {
			m.back()
		} else {
			m.helpView.explain(m.top())
			m.open(m.helpView)
		}
		return nil
	}
	for _, j := range m.c.jumps {
		if key.Matches(msg, j.key) {
			m.jump(j.id)
			return nil
		}
	}
	return m.send(msg)
}

// open shows s on top of the active screen; a screen already open is
// brought back with what was open below it.
func (m *model) open(s screen) {
	next := make([]screen, 0, len(m.stack)+1)
	for _, o := range m.stack {
		if o == s {
			break
		}
		next = append(next, o)
	}
	m.setStack(append(next, s))
}

// back closes the active screen; the home screen stays.
func (m *model) back() {
	if len(m.stack) > 1 {
		m.setStack(m.stack[: len(m.stack)-1 : len(m.stack)-1])
	}
}

// jump shows a registered screen over the home screen, closing the rest.
func (m *model) jump(id screenID) {
	s := m.registered(id)
	if s == m.table {
		m.setStack([]screen{m.table})
		return
	}
	m.setStack([]screen{m.table, s})
}

// setStack makes next the open screens: those that left are closed and the
// one on top is refreshed.
func (m *model) setStack(next []screen) {
	for _, o := range m.stack {
		if c, ok := o.(closer); ok && !slices.Contains(next, o) {
			c.close()
		}
	}
	m.stack = next
	if r, ok := m.top().(refresher); ok {
		r.refresh()
	}
}

// showCharts reports whether the header has room for charts: they are the
// first thing dropped on small terminals.
func (m *model) showCharts() bool {
	return !m.plain && m.width >= chartMinW && m.height >= chartMinH
}

// chartLines is the height of the chart block (titles included): the
// standard height, grown into the lines a short screen leaves unused up to
// chartMaxHeight; 0 without charts.
func (m *model) chartLines() int {
	if !m.showCharts() {
		return 0
	}
	h := chartHeight
	if s, ok := m.top().(sizer); ok {
		room := m.height - headerLines - footerLines - (chartHeight + 1)
		if spare := room - s.lines(); spare > 0 {
			h = min(chartMaxHeight, chartHeight+spare)
		}
	}
	return h
}

// bodyHeight is the height left for the active screen.
func (m *model) bodyHeight() int {
	h := m.height - headerLines
	if !m.plain {
		h -= footerLines
	}
	if c := m.chartLines(); c > 0 {
		h -= c + 1
	}
	return max(minBodyLines, h)
}

func (m *model) layout() {
	h := m.bodyHeight()
	m.laidOut = h
	for _, s := range m.screens {
		s.SetSize(m.width, h)
	}
	m.helpView.SetSize(m.width, h)
	m.hints.SetWidth(m.width)
}

// View implements tea.Model. The frame is exactly the terminal's size (or
// less): every line is cut to the width, never wrapped.
func (m *model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "vpp top"
	return v
}

// render draws the frame as a string.
func (m *model) render() string {
	if m.laidOut != m.bodyHeight() {
		m.layout() // the charts grew or shrank with the screen's rows
	}
	var b strings.Builder
	b.Grow(m.width * m.height * 2)
	b.WriteString(m.header())
	if m.showCharts() {
		b.WriteByte('\n')
		f := m.focus()
		ch := m.chartLines()
		if m.chartGen != m.c.gen || m.chartWidth != m.width || m.chartText == "" || m.chartKind != f.Kind || m.chartID != f.ID || m.chartH != ch {
			m.chartText, m.chartGen, m.chartWidth = m.charts(ch), m.c.gen, m.width
			m.chartKind, m.chartID, m.chartH = f.Kind, f.ID, ch
		}
		b.WriteString(m.chartText)
	}
	body := fitLines(m.top().View(), m.width, m.bodyHeight())
	b.WriteByte('\n')
	b.WriteString(body)
	if !m.plain {
		// Pad the body so the hint bar sits on the last line.
		for n := strings.Count(body, "\n") + 1; n < m.bodyHeight(); n++ {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
		b.WriteString(m.hintBar())
	}
	return fitLines(b.String(), m.width, max(m.height, 1))
}

// hintBar is the one-line key hint of the active screen, from its key
// table.
func (m *model) hintBar() string {
	if t, ok := m.top().(typist); ok && t.typing() {
		return m.c.styles.Dim.Render(truncate(t.typingHint(), m.width))
	}
	return m.hints.ShortHelpView(m.top().ShortHelp())
}
