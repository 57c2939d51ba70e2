package reader

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
	"github.com/vppctl/vpp/internal/kafka"
)

// Dashboard is what every dashboard of a process reads (tui.Data): the
// fleet reader's snapshots, and series from the history topic (fleet,
// regions, substations, backfilled) and from the recorder (the sites of
// watched substations and watched devices, from when their watch began).
type Dashboard struct {
	*Reader
	store *history.Store
	rec   *history.Recorder
}

// Series implements history.Source.
func (d *Dashboard) Series(kind fleet.Kind, id string, m history.Metric, n int) []float64 {
	return d.store.Series(kind, id, m, n)
}

// Watch keeps a device's series while its detail view is open; the
// returned function stops watching.
func (d *Dashboard) Watch(siteID, deviceID string) func() { return d.rec.Watch(siteID, deviceID) }

// WatchSubstation keeps the series of a substation's sites while a table
// lists them (or one of their sites' devices); the returned function stops
// watching. Sites of unwatched substations have no series.
func (d *Dashboard) WatchSubstation(id string) func() { return d.rec.WatchSubstation(id) }

// StartDashboard starts the history reader (client ID vpp-history) and the
// recorder (one observation of r's snapshot per second) beside the fleet
// reader r, which the caller runs. The returned wait function waits for
// both to stop after ctx ends.
func StartDashboard(ctx context.Context, r *Reader, opts kafka.Options, logger *slog.Logger) (*Dashboard, func()) {
	if logger == nil {
		logger = slog.Default()
	}
	opts.ClientID = "vpp-history"
	hr := history.NewReader(opts, history.DefaultWindow, logger)
	rec := history.NewRecorder(history.DefaultPoints)
	d := &Dashboard{Reader: r, store: history.NewStore(hr, rec), rec: rec}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := hr.Run(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("history reader stopped", "err", err)
		}
	})
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				rec.Observe(r.Snapshot(), now)
			}
		}
	})
	return d, wg.Wait
}

// Session returns the watches of one dashboard session: Watch and
// WatchSubstation like the Dashboard's, all stopped when ctx ends. An SSH
// client that disconnects with a substation or a device open never closes
// its screens; without this its watches would be recorded for the life of
// the process.
func (d *Dashboard) Session(ctx context.Context) *Watches {
	w := &Watches{d: d, stops: make(map[uint64]func())}
	context.AfterFunc(ctx, w.end)
	return w
}

// Watches are one session's watches (Dashboard.Session). Safe for
// concurrent use.
type Watches struct {
	d     *Dashboard
	mu    sync.Mutex
	next  uint64
	stops map[uint64]func() // nil once the session ended
}

// Watch is Dashboard.Watch, stopped at the latest when the session ends.
func (w *Watches) Watch(siteID, deviceID string) func() {
	return w.hold(w.d.Watch(siteID, deviceID))
}

// WatchSubstation is Dashboard.WatchSubstation, stopped at the latest when
// the session ends.
func (w *Watches) WatchSubstation(id string) func() {
	return w.hold(w.d.WatchSubstation(id))
}

// hold keeps stop until the returned function or the session's end calls
// it, once.
func (w *Watches) hold(stop func()) func() {
	w.mu.Lock()
	if w.stops == nil {
		w.mu.Unlock()
		stop() // the session already ended
		return func() {}
	}
	id := w.next
	w.next++
	w.stops[id] = stop
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		s, ok := w.stops[id]
		delete(w.stops, id)
		w.mu.Unlock()
		if ok {
			s()
		}
	}
}

// end stops every watch of the session.
func (w *Watches) end() {
	w.mu.Lock()
	stops := w.stops
	w.stops = nil
	w.mu.Unlock()
	for _, s := range stops {
		s()
	}
}
