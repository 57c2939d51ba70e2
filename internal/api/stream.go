package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
)

// Event is the JSON data of one "state" event of the stream: the fleet
// node and the region nodes in the API's JSON form, and the data age.
type Event struct {
	// Version is the snapshot's update count (also the event ID).
	Version uint64 `json:"version"`
	// ServerTime is when the event was built, RFC 3339 UTC.
	ServerTime string `json:"server_time"`
	// UpdatedAt is the time of the newest data in the snapshot (see
	// fleet.Snapshot.UpdatedAt); empty when there is none.
	UpdatedAt string `json:"updated_at,omitempty"`
	// AgeMS is ServerTime − UpdatedAt in milliseconds; null when there is
	// no data. Clients add the time since they received the event, so
	// their clock's offset from the server's does not matter.
	AgeMS *int64 `json:"age_ms"`
	// Fleet is the fleet node, as GET /api/metrics/fleet.
	Fleet NodeJSON `json:"fleet"`
	// Regions are the region nodes, as GET /api/metrics/regions.
	Regions []NodeJSON `json:"regions"`
	// Load says whether the fleet is complete (the page shows a loading
	// banner until it is).
	Load LoadJSON `json:"load"`
}

// NewEvent builds the event of a snapshot at time now.
func NewEvent(s *fleet.Snapshot, now time.Time) Event {
	e := Event{
		Version:    s.Version,
		ServerTime: now.UTC().Format(time.RFC3339Nano),
		Fleet:      NewNodeJSON(s.Fleet),
		Regions:    make([]NodeJSON, 0, len(s.Regions())),
		Load:       NewLoadJSON(s.Load),
	}
	for _, r := range s.Regions() {
		e.Regions = append(e.Regions, NewNodeJSON(r))
	}
	if at := s.UpdatedAt(); !at.IsZero() {
		e.UpdatedAt = at.UTC().Format(time.RFC3339Nano)
		age := max(0, now.Sub(at).Milliseconds())
		e.AgeMS = &age
	}
	return e
}

// stream serves the Server-Sent Events: a "state" event with the current
// state at once, then one whenever the snapshot or its Load changed, at most every
// MinInterval, and a comment line every Heartbeat. Each event carries the
// latest state, so a slow client skips intermediate states instead of
// queueing them; a client that does not read for WriteTimeout is dropped.
func (s *server) stream(w http.ResponseWriter, r *http.Request) {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many event streams", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	log := s.log.With("remote", r.RemoteAddr)
	if err := s.run(r.Context(), w); err != nil && r.Context().Err() == nil {
		log.Debug("event stream ended", "err", err)
	}
}

// run writes the stream to w until ctx ends or a write fails.
func (s *server) run(ctx context.Context, w http.ResponseWriter) error {
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	// The reconnection delay a client's EventSource waits after a drop.
	if err := sw.send([]byte("retry: 2000\n\n")); err != nil {
		return err
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var poll <-chan time.Time
	if s.cfg.Changed == nil {
		t := time.NewTicker(s.cfg.MinInterval)
		defer t.Stop()
		poll = t.C
	}
	wait := time.NewTimer(0)
	defer wait.Stop()
	<-wait.C

	var (
		sent     uint64
		sentLoad fleet.Load
		lastSend time.Time
		first    = true
	)
	for {
		// Take the channel before the snapshot: a publish in between
		// closes it, so no change is missed.
		var changed <-chan struct{} // nil (never ready) when polling
		if s.cfg.Changed != nil {
			changed = s.cfg.Changed()
		}
		snap := s.cfg.Source.Snapshot()
		if first || snap.Version != sent || snap.Load != sentLoad {
			if d := s.cfg.MinInterval - time.Since(lastSend); !first && d > 0 {
				wait.Reset(d)
				select {
				case <-ctx.Done():
					return fmt.Errorf("event stream: %w", ctx.Err())
				case <-wait.C:
				}
				continue // send the state as it is now
			}
			if err := s.sendState(sw, snap); err != nil {
				return err
			}
			sent, sentLoad, lastSend, first = snap.Version, snap.Load, time.Now(), false
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("event stream: %w", ctx.Err())
		case <-changed:
		case <-poll:
		case <-heartbeat.C:
			if err := sw.send([]byte(": heartbeat " + s.cfg.Now().UTC().Format(time.RFC3339) + "\n\n")); err != nil {
				return err
			}
		}
	}
}

// sendState writes one "state" event with the snapshot.
func (s *server) sendState(sw *sseWriter, snap *fleet.Snapshot) error {
	b, err := json.Marshal(NewEvent(snap, s.cfg.Now()))
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	// json.Marshal never emits a newline, so the data is one "data:" line.
	msg := make([]byte, 0, len(b)+64)
	msg = append(msg, "event: state\nid: "...)
	msg = strconv.AppendUint(msg, snap.Version, 10)
	msg = append(msg, "\ndata: "...)
	msg = append(msg, b...)
	msg = append(msg, "\n\n"...)
	return sw.send(msg)
}

// sseWriter writes and flushes stream messages, each under a deadline.
type sseWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
}

func (sw *sseWriter) send(msg []byte) error {
	if err := sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("event stream: set write deadline: %w", err)
	}
	if _, err := sw.w.Write(msg); err != nil {
		return fmt.Errorf("event stream: write: %w", err)
	}
	if err := sw.rc.Flush(); err != nil {
		return fmt.Errorf("event stream: flush: %w", err)
	}
	return nil
}
