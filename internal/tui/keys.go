package tui

import "charm.land/bubbles/v2/key"

// keyMap is the keys every screen shares, declared once: Enter drills in
// or opens, Back goes back, and the root's own keys. A screen's own keys
// sit with the screen (tableKeys, listKeys); the keys that show a screen
// sit with its registration.
type keyMap struct {
	Enter, Back       key.Binding
	Pause, Help, Quit key.Binding
}

// binding is a key binding with its help text.
func binding(help, desc string, keys ...string) key.Binding {
	return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
}

// newKeyMap returns the default shared key bindings.
func newKeyMap() keyMap {
	return keyMap{
		Enter: binding("enter", "open", "enter"),
		Back:  binding("esc/⌫", "back", "esc", "backspace"),
		Pause: binding("space", "pause", "space"),
		Help:  binding("?", "help", "?"),
		Quit:  binding("q", "quit", "q", "ctrl+c"),
	}
}

// jump is a registered screen's jump key.
type jump struct {
	id  screenID
	key key.Binding
}

// jumpTo is the key that shows screen id; a binding without keys when it
// has none.
func (c *common) jumpTo(id screenID) key.Binding {
	for _, j := range c.jumps {
		if j.id == id {
			return j.key
		}
	}
	return key.Binding{}
}

// hints is a screen's hint bar: help and quit first, then the screen's own
// keys, the jump keys to the screens it names, and pause.
func (c *common) hints(own []key.Binding, to ...screenID) []key.Binding {
	k := &c.keys
	out := make([]key.Binding, 0, len(own)+len(to)+3)
	out = append(out, k.Help, k.Quit)
	out = append(out, own...)
	for _, id := range to {
		if b := c.jumpTo(id); hasKeys(b) {
			out = append(out, b)
		}
	}
	return append(out, k.Pause)
}

// globalHelp is the ? help's last column: the jump keys of every screen
// (registry order), pause, help and quit.
func (c *common) globalHelp() []key.Binding {
	k := &c.keys
	out := make([]key.Binding, 0, len(c.jumps)+3)
	for _, j := range c.jumps {
		out = append(out, j.key)
	}
	return append(out, k.Pause, k.Help, k.Quit)
}
