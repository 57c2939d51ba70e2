// Package tui is `vpp top`: the live fleet dashboard, a Bubble Tea program
// that reads immutable fleet snapshots and per-second series, and a plain
// text and JSON one-shot form of it.
//
// The program never receives telemetry as messages: it ticks every
// Options.Refresh, takes the latest snapshot (cheap and immutable) and
// renders the current level of the hierarchy from the nodes' rollups, so a
// frame costs the rows on screen, never the devices of the fleet.
//
// The root model (model.go) holds a stack of screens (screen.go): it draws
// the header, the screen on top and the hint bar, and handles only quit,
// pause, the ? help and the jump keys. Each screen owns its keys (with
// their help text, from which the hint bar and the ? help are generated),
// its breadcrumb and its messages; a new screen is a file with its type
// and one line in registry. List screens share one cursor (listCursor)
// that follows the selected ID. What a row says (cells: text with its
// unit and its meaning, cells.go) is computed apart from how it looks (the
// view styles cells by meaning, styleSet.of).
//
// Dispatches (Options.Dispatch) are read once per refresh like the
// snapshot; their creates and cancels run as commands outside the frame
// and come back as messages to the screen that asked. A session without
// Options.Operator shows them read-only.
package tui

import (
	"math"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
)

// Data is what the dashboard reads: the latest fleet snapshot and series.
type Data interface {
	// Snapshot returns the latest snapshot; never nil.
	Snapshot() *fleet.Snapshot
	history.Source
}

// Defaults of Options.
const (
	// DefaultRefresh is how often the dashboard reads a new snapshot.
	DefaultRefresh = 500 * time.Millisecond
	// DefaultStaleAfter is the data age beyond which the dashboard shows
	// STALE instead of presenting old numbers as live.
	DefaultStaleAfter = 5 * time.Second
)

// Options configure a dashboard. The zero value is usable.
type Options struct {
	// Refresh is how often a new snapshot is read; default DefaultRefresh.
	Refresh time.Duration
	// Now is the clock (injectable for golden tests); default time.Now.
	Now func() time.Time
	// StaleAfter is the data age beyond which the data is shown as STALE;
	// default DefaultStaleAfter.
	StaleAfter time.Duration
	// Watch, when set, is called when a device's detail view opens, so the
	// history recorder keeps that device's series; the function it returns
	// is called when the view closes.
	Watch func(siteID, deviceID string) (stop func())
	// WatchSubstation, when set, is called when the table comes to the
	// sites of a substation (or to the devices of one of them), so the
	// history recorder keeps those sites' series (their TREND cells and
	// the site's charts; sites are recorded only while watched, their
	// series filling from then on); the function it returns is called
	// when the table leaves that substation.
	WatchSubstation func(substationID string) (stop func())
	// Dispatch, when set, is where the dashboard reads the dispatches (the
	// dispatch list, the active dispatch in the header and the table) and,
	// for an operator, creates and cancels them.
	Dispatch Dispatcher
	// Operator is who creates and cancels dispatches from this session
	// (the OS user locally, "ssh:" and the key's fingerprint over SSH);
	// empty makes the dashboard read-only.
	Operator string
	// Source is the dispatches' source field: "tui" by default.
	Source string
}

func (o Options) withDefaults() Options {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Source == "" {
		o.Source = "tui"
	}
	return o
}

// New returns a fresh root model of the dashboard reading d. Every program
// (every SSH session) needs its own: models hold per-session state.
func New(d Data, o Options) tea.Model {
	return newModel(d, o)
}

// seriesKey names one memoised series.
type seriesKey struct {
	kind fleet.Kind
	id   string
	m    history.Metric
	n    int
}

// common is the state every screen shares: the data, the frame's snapshot
// and clock, styles and keys.
type common struct {
	data   Data
	opts   Options
	styles styleSet
	keys   keyMap // shared keys; screens own theirs
	// jumps are the registered screens' jump keys, registry order.
	jumps []jump

	snap   *fleet.Snapshot
	now    time.Time
	paused bool
	// gen counts frames of data (refreshes and style changes): renders
	// cached per frame, like the header charts, are keyed by it.
	gen uint64

	// series memoises Series calls for the current frame; it is cleared at
	// every refresh (never while paused, so a paused view stays frozen).
	series map[seriesKey][]float64

	// Ingest rate from the pipeline counters, for when the history source
	// has no ReceivedPerSec series.
	rateAt   time.Time
	rateRecv uint64
	rate     float64

	// disp is the dispatches as of the last refresh.
	disp dispatchState
}

func newCommon(d Data, o Options) *common {
	o = o.withDefaults()
	c := &common{
		data:   d,
		opts:   o,
		styles: newStyles(true),
		keys:   newKeyMap(),
		series: make(map[seriesKey][]float64),
		rate:   math.NaN(),
	}
	c.refresh()
	return c
}

// refresh takes the latest snapshot and the time, and forgets the frame's
// series.
func (c *common) refresh() {
	c.now = c.opts.Now()
	s := c.data.Snapshot()
	if s == nil {
		s = fleet.EmptySnapshot()
	}
	c.snap = s
	c.gen++
	clear(c.series)
	c.updateRate()
	c.refreshDispatches()
}

// updateRate derives the ingest rate from the received counter between two
// pipeline updates (their own timestamps, not the refresh ticks, so the
// rate does not jitter with the stats interval).
func (c *common) updateRate() {
	p := &c.snap.Pipeline
	if p.UpdatedAt.IsZero() {
		return
	}
	if !c.rateAt.IsZero() && p.UpdatedAt.After(c.rateAt) && p.Received >= c.rateRecv {
		c.rate = float64(p.Received-c.rateRecv) / p.UpdatedAt.Sub(c.rateAt).Seconds()
	}
	if c.rateAt.IsZero() || p.UpdatedAt.After(c.rateAt) {
		c.rateAt, c.rateRecv = p.UpdatedAt, p.Received
	}
}

// seriesOf returns the last n seconds of metric m of a node, memoised for
// the frame.
func (c *common) seriesOf(kind fleet.Kind, id string, m history.Metric, n int) []float64 {
	if n <= 0 || c.data == nil {
		return nil
	}
	k := seriesKey{kind, id, m, n}
	if s, ok := c.series[k]; ok {
		return s
	}
	s := c.data.Series(kind, id, m, n)
	c.series[k] = s
	return s
}

// ingestRate is the readings received per second: the newest value of the
// ReceivedPerSec series, else the counters' delta; NaN when unknown.
func (c *common) ingestRate() float64 {
	if v := lastFinite(c.seriesOf(fleet.KindFleet, fleet.FleetID, history.ReceivedPerSec, 5)); !math.IsNaN(v) {
		return v
	}
	return c.rate
}

// age is how old the freshest data is; ok is false when there is no data.
func (c *common) age() (time.Duration, bool) {
	at := c.snap.UpdatedAt()
	if at.IsZero() {
		return 0, false
	}
	return max(0, c.now.Sub(at)), true
}

// stale reports whether the data is older than StaleAfter (or absent),
// or the fleet is still loading: partial totals are drawn like stale ones,
// never as live.
func (c *common) stale() bool {
	if c.snap.Load.Loading {
		return true
	}
	a, ok := c.age()
	return !ok || a > c.opts.StaleAfter
}
