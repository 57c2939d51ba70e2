package sshserve

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	tea "charm.land/bubbletea/v2"
)

// safeModel wraps a session's model so that a panic in its Init, Update or
// View ends that session cleanly (logged here, "internal error" and exit
// status 1 for the client) instead of Bubble Tea's default of printing the
// stack on the server's stderr and ending the session as if the user had
// quit. Panics in commands are Bubble Tea's to catch.
type safeModel struct {
	m        tea.Model
	s        *session
	log      *slog.Logger
	panicked bool
}

// Init implements tea.Model.
func (w safeModel) Init() (cmd tea.Cmd) {
	defer func() {
		if r := recover(); r != nil {
			w.caught("Init", r)
			cmd = tea.Quit
		}
	}()
	return w.m.Init()
}

// Update implements tea.Model.
func (w safeModel) Update(msg tea.Msg) (m tea.Model, cmd tea.Cmd) {
	if w.panicked {
		return w, nil
	}
	defer func() {
		if r := recover(); r != nil {
			w.caught("Update", r)
			w.panicked = true
			m, cmd = w, tea.Quit
		}
	}()
	next, cmd := w.m.Update(msg)
	w.m = next
	return w, cmd
}

// View implements tea.Model.
func (w safeModel) View() (v tea.View) {
	if w.panicked {
		return tea.NewView("")
	}
	defer func() {
		if r := recover(); r != nil {
			w.caught("View", r)
			w.s.end(reasonPanic)
			v = tea.NewView("")
		}
	}()
	return w.m.View()
}

// caught logs a recovered panic and marks the session's reason.
func (w safeModel) caught(where string, r any) {
	w.s.setReason(reasonPanic)
	w.log.Error("ssh session panic", "session", w.s.info.ID, "in", where,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}
