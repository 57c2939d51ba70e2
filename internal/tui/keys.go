package tui

import "charm.land/bubbles/v2/key"

// keyMap is every key of the dashboard, declared once: the hint bar and the
// help screen are generated from it.
type keyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Enter, Back                             key.Binding
	Filter, Sort, Reverse, NextAlarm        key.Binding
	Alarms, Pipeline, Fleet                 key.Binding
	Pause, Help, Quit                       key.Binding
}

// newKeyMap returns the default key bindings.
func newKeyMap() keyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return keyMap{
		Up:        b("↑/k", "up", "up", "k"),
		Down:      b("↓/j", "down", "down", "j"),
		PageUp:    b("pgup", "page up", "pgup", "ctrl+b"),
		PageDown:  b("pgdn", "page down", "pgdown", "ctrl+f"),
		Top:       b("g/home", "first row", "g", "home"),
		Bottom:    b("G/end", "last row", "G", "end"),
		Enter:     b("enter", "open", "enter"),
		Back:      b("esc/⌫", "back", "esc", "backspace"),
		Filter:    b("/", "filter", "/"),
		Sort:      b("s", "sort column", "s"),
		Reverse:   b("S", "reverse sort", "S"),
		NextAlarm: b("!", "next alarm row", "!"),
		Alarms:    b("a", "alarms", "a"),
		Pipeline:  b("p", "pipeline", "p"),
		Fleet:     b("f", "fleet table", "f"),
		Pause:     b("space", "pause", "space"),
		Help:      b("?", "help", "?"),
		Quit:      b("q", "quit", "q", "ctrl+c"),
	}
}

// shortHelp is the hint bar of a screen, most useful first (the bar drops
// items from the end when narrow).
func (k keyMap) shortHelp(s screen) []key.Binding {
	switch s {
	case screenTable:
		return []key.Binding{k.Help, k.Quit, k.Enter, k.Back, k.Filter, k.Sort, k.Reverse, k.NextAlarm, k.Alarms, k.Pipeline, k.Pause}
	case screenAlarms:
		return []key.Binding{k.Help, k.Quit, k.Enter, k.Back, k.Fleet, k.Pipeline, k.Pause}
	case screenDevice:
		return []key.Binding{k.Help, k.Quit, k.Back, k.Alarms, k.Pipeline, k.Pause}
	case screenPipeline:
		return []key.Binding{k.Help, k.Quit, k.Back, k.Alarms, k.Fleet, k.Pause}
	}
	return []key.Binding{k.Back, k.Quit}
}

// fullHelp is every key, in columns, for the help screen.
func (k keyMap) fullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Enter, k.Back, k.Filter, k.Sort, k.Reverse, k.NextAlarm},
		{k.Alarms, k.Pipeline, k.Fleet, k.Pause, k.Help, k.Quit},
	}
}
