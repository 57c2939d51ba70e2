package tui

import (
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"
)

// FrameCost is the time one dashboard frame takes on the fleet screen.
type FrameCost struct {
	// Refresh is a frame after new data: the snapshot's rows, series and
	// charts are rebuilt, then the view is rendered.
	Refresh time.Duration
	// Redraw is a frame between refreshes (a key press): render only.
	Redraw time.Duration
}

// MeasureFrame renders the fleet screen of d at width × height frames
// times each way and returns the mean cost per frame.
func MeasureFrame(d Data, width, height, frames int) (FrameCost, error) {
	if frames <= 0 || width <= 0 || height <= 0 {
		return FrameCost{}, fmt.Errorf("measure frame: %d frames of %d×%d", frames, width, height)
	}
	m := newModel(d, Options{})
	m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	var c FrameCost
	start := time.Now()
	for range frames {
		m.c.snap = nil // a new version: rows rebuilt
		m.table.version = 0
		m.Update(tickMsg(time.Now()))
		_ = m.View()
	}
	c.Refresh = time.Since(start) / time.Duration(frames)
	start = time.Now()
	for range frames {
		_ = m.View()
	}
	c.Redraw = time.Since(start) / time.Duration(frames)
	return c, nil
}
