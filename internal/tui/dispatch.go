package tui

import (
	"context"
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Dispatcher is the dashboard's side of dispatch (a *dispatch.Service):
// the list it shows, read once per refresh, and the creates and cancels
// of an operator, which run outside the frame (they wait until the
// dispatch topic shows the write).
type Dispatcher interface {
	// List returns every dispatch; an error wrapping dispatch.ErrNotReady
	// while the dispatch topic is being read.
	List() ([]dispatch.Entry, error)
	// Create validates and writes a dispatch request.
	Create(ctx context.Context, r dispatch.Request) (e dispatch.Entry, created bool, h dispatch.Headroom, err error)
	// Cancel cancels dispatch id on behalf of by.
	Cancel(ctx context.Context, id, by string) (dispatch.Entry, error)
}

// readOnlyText is what the dispatch keys say to a session that may not
// dispatch.
const readOnlyText = "read-only: your key is not an operator key"

// nodeKey names a node of the hierarchy without allocating.
type nodeKey struct {
	kind fleet.Kind
	id   string
}

// dispatchState is the dispatches as of the frame's refresh: the list,
// newest start first, and the active one of each node.
type dispatchState struct {
	list   []dispatch.Entry
	err    error
	active map[nodeKey]int // index into list
}

// canDispatch reports whether the session may create and cancel.
func (c *common) canDispatch() bool { return c.opts.Dispatch != nil && c.opts.Operator != "" }

// refreshDispatches reads the dispatch list (at every refresh, never per
// frame) and indexes the active dispatch of each node.
func (c *common) refreshDispatches() {
	d := &c.disp
	if c.opts.Dispatch == nil {
		return
	}
	d.list, d.err = c.opts.Dispatch.List()
	slices.SortStableFunc(d.list, func(a, b dispatch.Entry) int {
		return int(b.Dispatch.GetStartMs() - a.Dispatch.GetStartMs())
	})
	clear(d.active)
	if d.active == nil {
		d.active = make(map[nodeKey]int)
	}
	for i := range d.list {
		e := &d.list[i]
		if e.Dispatch == nil || e.State(c.now) != vppv1.DispatchState_DISPATCH_STATE_ACTIVE {
			continue
		}
		k, ok := keyOfNode(e.Dispatch.GetNode())
		if !ok {
			continue
		}
		// The newest active dispatch of a node is the one shown.
		if _, seen := d.active[k]; !seen {
			d.active[k] = i
		}
	}
}

// activeOn is the active dispatch on a node, nil when none.
func (c *common) activeOn(kind fleet.Kind, id string) *dispatch.Entry {
	if i, ok := c.disp.active[nodeKey{kind, id}]; ok {
		return &c.disp.list[i]
	}
	return nil
}

// keyOfNode turns a dispatch node ID ("site/s-1") into a hierarchy key.
func keyOfNode(s string) (nodeKey, bool) {
	n, err := dispatch.ParseNode(s)
	if err != nil {
		return nodeKey{}, false
	}
	switch n.Level {
	case dispatch.LevelFleet:
		return nodeKey{fleet.KindFleet, fleet.FleetID}, true
	case dispatch.LevelRegion:
		return nodeKey{fleet.KindRegion, n.ID}, true
	case dispatch.LevelSubstation:
		return nodeKey{fleet.KindSubstation, n.ID}, true
	}
	return nodeKey{fleet.KindSite, n.ID}, true
}

// dispatchNode is the dispatch node ID of a hierarchy node; ok is false
// for a device, which cannot be dispatched alone.
func dispatchNode(kind fleet.Kind, id string) (string, bool) {
	var n dispatch.Node
	switch kind {
	case fleet.KindFleet:
		n = dispatch.Node{Level: dispatch.LevelFleet}
	case fleet.KindRegion:
		n = dispatch.Node{Level: dispatch.LevelRegion, ID: id}
	case fleet.KindSubstation:
		n = dispatch.Node{Level: dispatch.LevelSubstation, ID: id}
	case fleet.KindSite:
		n = dispatch.Node{Level: dispatch.LevelSite, ID: id}
	default:
		return "", false
	}
	return n.String(), true
}

// targetKW is what the dispatch asks of its node now: the status's
// (ramped) target when the engine reported one, else the request's.
func targetKW(e *dispatch.Entry) float64 {
	if e.Status != nil {
		return e.Status.GetTargetKw()
	}
	return e.Dispatch.GetTargetKw()
}

// The results of the writes, sent to the screen that asked.

// dispatchCreatedMsg is the result of a create.
type dispatchCreatedMsg struct {
	entry dispatch.Entry
	err   error
}

// dispatchCancelledMsg is the result of a cancel.
type dispatchCancelledMsg struct {
	id  string
	err error
}

// dispatchWriteTimeout bounds a create or cancel from the dashboard.
const dispatchWriteTimeout = 15 * time.Second

// createCmd writes r in the background.
func (c *common) createCmd(r dispatch.Request) tea.Cmd {
	d := c.opts.Dispatch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), dispatchWriteTimeout)
		defer cancel()
		e, _, _, err := d.Create(ctx, r)
		return dispatchCreatedMsg{entry: e, err: err}
	}
}

// cancelCmd cancels dispatch id in the background, on behalf of the
// session's operator.
func (c *common) cancelCmd(id string) tea.Cmd {
	d, by := c.opts.Dispatch, c.opts.Operator
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), dispatchWriteTimeout)
		defer cancel()
		_, err := d.Cancel(ctx, id, by)
		return dispatchCancelledMsg{id: id, err: err}
	}
}
