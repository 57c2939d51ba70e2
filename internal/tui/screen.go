package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/fleet"
)

// screen is one screen of the dashboard, the body between the header and
// the hint bar (soft-serve's component). The root model owns no
// screen-specific code: it shows the screen on top of its stack, sends it
// the messages and keys the root does not handle itself (quit, pause, help
// and the registered jump keys), writes its Crumbs in the header and
// generates the hint bar and the ? help from its key table.
//
// A screen may also implement refresher (it reads the snapshot when
// shown and on every refresh while on top), closer (it is told when it
// leaves the stack), typist (it takes text, as the table's filter does),
// and its message may implement opener (a message that opens it).
type screen interface {
	// Update handles a message meant for the screen and returns the screen
	// to show next: the receiver to stay, nil to close it and go back to
	// the screen it was opened from, another screen to open that one on
	// top of it.
	Update(msg tea.Msg) (screen, tea.Cmd)
	// View renders the screen in exactly its box (see SetSize).
	View() string
	// SetSize is the box of the screen: the terminal's width and the
	// height left by the header and the hint bar.
	SetSize(width, height int)
	// Crumbs is where the screen is, for the header's breadcrumb:
	// "fleet › north › sub-7".
	Crumbs() []string
	// ShortHelp (the hint bar, most useful first: a narrow bar drops items
	// from the end) and FullHelp (the screen's columns of the ? help, to
	// which the root adds the global keys) are the screen's key table.
	// Both list the bindings the screen handles, declared once with their
	// help text.
	help.KeyMap
}

// refresher is a screen that reads the snapshot: refresh is called when the
// screen comes on top and after every refresh of the data while it is
// there (never while paused).
type refresher interface {
	refresh()
}

// focuser is a screen that is on one node of the hierarchy (the table on
// the node whose children it lists): the header's figures and the charts
// follow it. Screens that are not focusers show the fleet.
type focuser interface {
	focus() *fleet.Node
}

// sizer is a screen that knows how many lines it needs: the charts grow
// into what it leaves unused.
type sizer interface {
	lines() int
}

// closer is a screen that holds something while it is open (the device
// detail's history watch): close is called when it leaves the stack.
type closer interface {
	close()
}

// typist is a screen that takes text: while typing it gets every key but
// ctrl+c, and typingHint replaces its hint bar.
type typist interface {
	typing() bool
	typingHint() string
}

// opener is a message that opens a registered screen (openDeviceMsg): the
// root gives the message to that screen's Update (whose next screen it
// ignores), then shows it on top of the active one.
type opener interface {
	opens() screenID
}

// screenID names a registered screen.
type screenID string

// registration is one screen of the dashboard: its name, the key that
// shows it from any screen (none for a screen only opened from another,
// like the device detail) and its constructor.
type registration struct {
	id   screenID
	jump key.Binding
	make func(c *common) screen
}

// homeScreen is the bottom of every stack: the fleet table, which a jump
// key returns to and Once prints.
const homeScreen = screenFleet

// registry is every screen the dashboard shows, in the order of their jump
// keys in the ? help. Adding a screen is a file with its type and one line
// here.
func registry() []registration {
	return []registration{
		{screenAlarms, jumpKey("a", "alarms"), func(c *common) screen { return newAlarmsView(c) }},
		{screenPipeline, jumpKey("p", "pipeline"), func(c *common) screen { return newPipelineScreen(c) }},
		{screenFleet, jumpKey("f", "fleet table"), func(c *common) screen { return newTableView(c) }},
		{screenDispatches, jumpKey("D", "dispatches"), func(c *common) screen { return newDispatchList(c) }},
		{screenDevice, key.Binding{}, func(c *common) screen { return newDeviceView(c) }},
	}
}

// jumpKey is a key that shows a screen from any screen.
func jumpKey(k, desc string) key.Binding {
	return key.NewBinding(key.WithKeys(k), key.WithHelp(k, desc))
}

// hasKeys reports whether b is a binding with keys (a registration's jump
// key may be none).
func hasKeys(b key.Binding) bool { return len(b.Keys()) > 0 }
