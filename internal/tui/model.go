package tui

import (
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// screen is what the body of the dashboard shows.
type screen int

const (
	screenTable screen = iota
	screenDevice
	screenAlarms
	screenPipeline
	screenHelp
)

// component is one screen of the dashboard (soft-serve's pattern): it
// handles the messages meant for it, renders exactly its box and is told
// its size.
type component interface {
	Update(msg tea.Msg) tea.Cmd
	View() string
	SetSize(w, h int)
}

// tickMsg asks for a refresh.
type tickMsg time.Time

// openDeviceMsg opens the detail of a device.
type openDeviceMsg struct{ siteID, deviceID string }

// Layout: the header's text lines, the chart block's height (title line
// plus chart), and the smallest terminal that gets charts.
const (
	headerLines  = 3
	chartHeight  = 6
	chartMinW    = 90
	chartMinH    = 30
	footerLines  = 1
	minBodyLines = 3
)

// model is the root model: the header, one screen and the hint bar.
type model struct {
	c        *common
	width    int
	height   int
	screen   screen
	back     screen // where the device detail and help return to
	table    *tableView
	device   *deviceView
	alarms   *alarmsView
	pipeline *pipelineView
	helpView *helpView
	hints    help.Model
	plain    bool // Once: no charts and no hint bar

	// The header charts cost the most of a frame (ntcharts styles every
	// cell): they are drawn once per data frame and width, and reused by
	// the frames that key presses cause in between.
	chartGen   uint64
	chartWidth int
	chartText  string

	// unwatch ends the history recorder's watch of the device whose detail
	// is open; nil when none is.
	unwatch func()
}

func newModel(d Data, o Options) *model {
	c := newCommon(d, o)
	m := &model{
		c:        c,
		width:    80,
		height:   24,
		table:    newTableView(c),
		device:   newDeviceView(c),
		alarms:   newAlarmsView(c),
		pipeline: newPipelineView(c),
		helpView: newHelpView(c),
		hints:    help.New(),
	}
	m.hints.Styles = c.styles.Help
	m.layout()
	return m
}

func (m *model) tick() tea.Cmd {
	return tea.Tick(m.c.opts.Refresh, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init implements tea.Model: it starts the refresh ticks and asks for the
// terminal's background colour (light or dark styles).
func (m *model) Init() tea.Cmd {
	return tea.Batch(m.tick(), tea.RequestBackgroundColor)
}

// current is the component of the active screen.
func (m *model) current() component {
	switch m.screen {
	case screenDevice:
		return m.device
	case screenAlarms:
		return m.alarms
	case screenPipeline:
		return m.pipeline
	case screenHelp:
		return m.helpView
	}
	return m.table
}

// Update implements tea.Model.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	next, cmd := m.update(msg)
	if m.screen != screenDevice && m.unwatch != nil {
		m.unwatch()
		m.unwatch = nil
	}
	return next, cmd
}

func (m *model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
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
	case openDeviceMsg:
		m.openDevice(msg.siteID, msg.deviceID)
		return m, nil
	case tea.KeyPressMsg:
		return m, m.handleKey(msg)
	}
	return m, m.current().Update(msg)
}

// refresh adopts the latest snapshot and brings the visible screen up to
// date with it.
func (m *model) refresh() {
	m.c.refresh()
	m.table.refresh()
	if m.screen == screenAlarms {
		m.alarms.refresh()
	}
}

func (m *model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.c.keys
	// Typing a filter takes every key but Ctrl-C.
	if m.screen == screenTable && m.table.filtering {
		if msg.String() == "ctrl+c" {
			return tea.Quit
		}
		return m.table.Update(msg)
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
		if m.screen == screenHelp {
			m.screen = m.back
		} else {
			m.back, m.screen = m.screen, screenHelp
		}
		return nil
	case key.Matches(msg, k.Alarms):
		m.screen = screenAlarms
		m.alarms.refresh()
		return nil
	case key.Matches(msg, k.Pipeline):
		m.screen = screenPipeline
		return nil
	case key.Matches(msg, k.Fleet):
		m.screen = screenTable
		return nil
	}
	if key.Matches(msg, k.Back) {
		switch m.screen {
		case screenHelp:
			m.screen = m.back
			return nil
		case screenDevice:
			m.screen = m.back
			return nil
		case screenAlarms, screenPipeline:
			m.screen = screenTable
			return nil
		}
	}
	return m.current().Update(msg)
}

// openDevice shows a device's detail and tells the history recorder.
func (m *model) openDevice(siteID, deviceID string) {
	if m.screen != screenDevice {
		m.back = m.screen
	}
	m.device.open(siteID, deviceID)
	m.screen = screenDevice
	if m.unwatch != nil {
		m.unwatch()
		m.unwatch = nil
	}
	if m.c.opts.Watch != nil {
		m.unwatch = m.c.opts.Watch(siteID, deviceID)
	}
}

// showCharts reports whether the header has room for charts: they are the
// first thing dropped on small terminals.
func (m *model) showCharts() bool {
	return !m.plain && m.width >= chartMinW && m.height >= chartMinH
}

// bodyHeight is the height left for the active screen.
func (m *model) bodyHeight() int {
	h := m.height - headerLines
	if !m.plain {
		h -= footerLines
	}
	if m.showCharts() {
		h -= chartHeight + 1
	}
	return max(minBodyLines, h)
}

func (m *model) layout() {
	h := m.bodyHeight()
	for _, c := range []component{m.table, m.device, m.alarms, m.pipeline, m.helpView} {
		c.SetSize(m.width, h)
	}
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
	var b strings.Builder
	b.Grow(m.width * m.height * 2)
	b.WriteString(m.header())
	if m.showCharts() {
		b.WriteByte('\n')
		if m.chartGen != m.c.gen || m.chartWidth != m.width || m.chartText == "" {
			m.chartText, m.chartGen, m.chartWidth = m.charts(), m.c.gen, m.width
		}
		b.WriteString(m.chartText)
	}
	body := fitLines(m.current().View(), m.width, m.bodyHeight())
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

// hintBar is the one-line key hint of the active screen.
func (m *model) hintBar() string {
	s := m.screen
	if s == screenTable && m.table.filtering {
		return m.c.styles.Dim.Render(truncate("type to filter · enter keep · esc clear", m.width))
	}
	return m.hints.ShortHelpView(m.c.keys.shortHelp(s))
}
