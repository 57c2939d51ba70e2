package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// listKeys move the cursor of a list: every list screen handles them and
// shows them as the first column of its ? help.
type listKeys struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
}

func newListKeys() listKeys {
	return listKeys{
		Up:       binding("↑/k", "up", "up", "k"),
		Down:     binding("↓/j", "down", "down", "j"),
		PageUp:   binding("pgup", "page up", "pgup", "ctrl+b"),
		PageDown: binding("pgdn", "page down", "pgdown", "ctrl+f"),
		Top:      binding("g/home", "first row", "g", "home"),
		Bottom:   binding("G/end", "last row", "G", "end"),
	}
}

// help is the keys in the order of the help column.
func (k *listKeys) help() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
}

// rowList is a list as its cursor sees it: rows known by ID, in the order
// on screen.
type rowList interface {
	rowCount() int
	rowID(i int) string
}

// listCursor is the cursor of a list screen (the hierarchy table, the
// alarms). The row under it is known by its ID, so it follows the same
// node across refreshes, re-sorts and filters, never the row index; it
// scrolls the list as little as possible to stay on screen and moves by
// row, by page and to either end.
type listCursor struct {
	keys listKeys
	// id is the ID under the cursor, "" before a row was selected; index
	// is its row and offset the first row on screen.
	id     string
	index  int
	offset int
	page   int
}

func newListCursor() listCursor { return listCursor{keys: newListKeys(), page: 1} }

// setPage is the number of rows on screen.
func (c *listCursor) setPage(rows int, l rowList) {
	c.page = max(1, rows)
	c.scroll(l)
}

// reset forgets the selection: the next follow selects the first row.
func (c *listCursor) reset() { c.id, c.index, c.offset = "", 0, 0 }

// selectID makes id the selection that the next follow looks for.
func (c *listCursor) selectID(id string) { c.id = id }

// follow puts the cursor back on its ID after the list changed; when that
// row is gone it keeps its position (clamped) and selects what is there
// now.
func (c *listCursor) follow(l rowList) {
	n := l.rowCount()
	if i := indexOf(l, c.id); i >= 0 {
		c.index = i
	} else if c.id == "" {
		c.index = 0
	} else {
		c.index = max(0, min(c.index, n-1))
	}
	c.sel(l)
	c.scroll(l)
}

func indexOf(l rowList, id string) int {
	if id == "" {
		return -1
	}
	for i := range l.rowCount() {
		if l.rowID(i) == id {
			return i
		}
	}
	return -1
}

// sel records the ID under the cursor.
func (c *listCursor) sel(l rowList) {
	if c.index >= 0 && c.index < l.rowCount() {
		c.id = l.rowID(c.index)
	}
}

// scroll keeps the cursor on screen.
func (c *listCursor) scroll(l rowList) {
	c.offset = scrollOffset(c.index, c.offset, c.page, l.rowCount())
}

// moveTo puts the cursor on row i, clamped to the list.
func (c *listCursor) moveTo(i int, l rowList) {
	n := l.rowCount()
	if n == 0 {
		return
	}
	c.index = max(0, min(i, n-1))
	c.sel(l)
	c.scroll(l)
}

// update moves the cursor by one of its keys; it reports whether kp was
// one.
func (c *listCursor) update(kp tea.KeyPressMsg, l rowList) bool {
	k := &c.keys
	switch {
	case key.Matches(kp, k.Up):
		c.moveTo(c.index-1, l)
	case key.Matches(kp, k.Down):
		c.moveTo(c.index+1, l)
	case key.Matches(kp, k.PageUp):
		c.moveTo(c.index-c.page, l)
	case key.Matches(kp, k.PageDown):
		c.moveTo(c.index+c.page, l)
	case key.Matches(kp, k.Top):
		c.moveTo(0, l)
	case key.Matches(kp, k.Bottom):
		c.moveTo(l.rowCount()-1, l)
	default:
		return false
	}
	return true
}

// visible is the range of rows on screen, [from, to).
func (c *listCursor) visible(l rowList) (from, to int) {
	return c.offset, min(l.rowCount(), c.offset+c.page)
}

// at reports whether the cursor is on a row of the list, and which.
func (c *listCursor) at(l rowList) (int, bool) {
	return c.index, c.index >= 0 && c.index < l.rowCount()
}

// position is "3/10": the cursor's row of the list, "" when empty.
func (c *listCursor) position(l rowList) string {
	n := l.rowCount()
	if n == 0 {
		return ""
	}
	return itoa(c.index+1) + "/" + itoa(n)
}

// scrollOffset is the first visible row of a list of n rows shown page rows
// at a time, moved as little as possible from offset so that cursor shows.
func scrollOffset(cursor, offset, page, n int) int {
	if cursor < offset {
		offset = cursor
	}
	if cursor >= offset+page {
		offset = cursor - page + 1
	}
	return max(0, min(offset, n-page))
}
