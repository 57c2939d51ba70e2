package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vppctl/vpp/internal/follow"
	"github.com/vppctl/vpp/internal/kafka"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Entry is everything the dispatch topic holds about one dispatch: the
// request, the latest allocation, every partition's report and the status.
// Any of them may be nil (a report or status can arrive before its
// request). The records are shared and must not be modified.
type Entry struct {
	Dispatch   *vppv1.Dispatch
	Allocation *vppv1.DispatchAllocation
	Reports    map[int32]*vppv1.DispatchReport
	Status     *vppv1.DispatchStatus
}

// ID is the dispatch ID of the entry.
func (e Entry) ID() string {
	switch {
	case e.Dispatch != nil:
		return e.Dispatch.GetId()
	case e.Status != nil:
		return e.Status.GetDispatchId()
	case e.Allocation != nil:
		return e.Allocation.GetDispatchId()
	}
	for _, r := range e.Reports {
		return r.GetDispatchId()
	}
	return ""
}

// State is the state shown to a user at now: cancelled once cancelled_ms is
// set (the operator's word, before the coordinator has seen it), else the
// coordinator's DispatchStatus state when there is one, else derived from
// time: pending before the start, active until the end, completed after.
func (e Entry) State(now time.Time) vppv1.DispatchState {
	d := e.Dispatch
	if d.GetCancelledMs() > 0 {
		return vppv1.DispatchState_DISPATCH_STATE_CANCELLED
	}
	if s := e.Status.GetState(); s != vppv1.DispatchState_DISPATCH_STATE_UNSPECIFIED {
		return s
	}
	ms := now.UnixMilli()
	switch {
	case ms < d.GetStartMs():
		return vppv1.DispatchState_DISPATCH_STATE_PENDING
	case ms < d.GetEndMs():
		return vppv1.DispatchState_DISPATCH_STATE_ACTIVE
	}
	return vppv1.DispatchState_DISPATCH_STATE_COMPLETED
}

// Ended reports whether the dispatch can no longer be cancelled at now: it
// was cancelled, its end passed, or the coordinator says it completed,
// failed or was superseded.
func (e Entry) Ended(now time.Time) bool {
	switch e.State(now) {
	case vppv1.DispatchState_DISPATCH_STATE_PENDING, vppv1.DispatchState_DISPATCH_STATE_ACTIVE:
		return now.UnixMilli() >= e.Dispatch.GetEndMs()
	}
	return true
}

// StateName is the lower-case name of a state: "pending", "active",
// "completed", "cancelled", "superseded", "failed" ("unknown" for
// anything else).
func StateName(s vppv1.DispatchState) string {
	switch s {
	case vppv1.DispatchState_DISPATCH_STATE_PENDING:
		return "pending"
	case vppv1.DispatchState_DISPATCH_STATE_ACTIVE:
		return "active"
	case vppv1.DispatchState_DISPATCH_STATE_COMPLETED:
		return "completed"
	case vppv1.DispatchState_DISPATCH_STATE_CANCELLED:
		return "cancelled"
	case vppv1.DispatchState_DISPATCH_STATE_SUPERSEDED:
		return "superseded"
	case vppv1.DispatchState_DISPATCH_STATE_FAILED:
		return "failed"
	}
	return "unknown"
}

// ActualKW is the node's power following the dispatch, kW: the status's
// figure when there is one, else the sum over the partitions' reports.
func (e Entry) ActualKW() float64 {
	if e.Status != nil {
		return e.Status.GetActualKw()
	}
	var sum float64
	for _, r := range e.Reports {
		sum += r.GetActualKw()
	}
	return sum
}

// View follows the whole dispatch topic and folds every record into an
// in-memory map of Entries by dispatch ID. One goroutine (Run) folds; any
// number of goroutines read Get and List, which return the latest folded
// records (never a record being decoded).
//
// Tombstones remove what their key names; records with a malformed key or
// value are skipped with a warning. A record's own ID fields are not
// trusted: the key names the dispatch.
type View struct {
	log      *slog.Logger
	topic    string
	follower *follow.Follower

	mu      sync.RWMutex
	entries map[string]*Entry
	changed chan struct{}
	skipped uint64
}

// NewView returns a view of the deployment's dispatch topic. It does not
// connect: Run does, and keeps reconnecting.
func NewView(opts kafka.Options, logger *slog.Logger) (*View, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("dispatch view: no kafka brokers")
	}
	if _, err := opts.SaramaConfig(); err != nil {
		return nil, fmt.Errorf("dispatch view: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	v := &View{
		log:     logger.With("component", "dispatch-view"),
		topic:   opts.Topics().Dispatch(),
		entries: make(map[string]*Entry),
		changed: make(chan struct{}),
	}
	v.follower = follow.New(follow.Config{
		Kafka:  opts,
		Topics: []string{v.topic},
		Apply:  v.apply,
		Flush:  v.flush,
		Name:   "dispatch view",
		Logger: v.log,
	})
	return v, nil
}

// Run follows the dispatch topic from its oldest offset until ctx ends,
// reconnecting after errors (internal/follow). It returns nil when ctx
// ends; it may be called once.
func (v *View) Run(ctx context.Context) error { return v.follower.Run(ctx) }

// WaitCaughtUp blocks until the view has read the topic up to the
// high-water mark it saw when it first connected, or ctx ends.
func (v *View) WaitCaughtUp(ctx context.Context) error { return v.follower.WaitCaughtUp(ctx) }

// CaughtUp reports whether the view has caught up.
func (v *View) CaughtUp() bool { return v.follower.CaughtUpNow() }

// Get returns the entry of dispatch id; ok is false when the topic holds
// no request for it.
func (v *View) Get(id string) (e Entry, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	p := v.entries[id]
	if p == nil || p.Dispatch == nil {
		return Entry{}, false
	}
	return p.clone(), true
}

// List returns every dispatch with a request record, newest start first
// (then by ID).
func (v *View) List() []Entry {
	v.mu.RLock()
	out := make([]Entry, 0, len(v.entries))
	for _, p := range v.entries {
		if p.Dispatch != nil {
			out = append(out, p.clone())
		}
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if c := cmp.Compare(b.Dispatch.GetStartMs(), a.Dispatch.GetStartMs()); c != 0 {
			return c
		}
		return strings.Compare(a.Dispatch.GetId(), b.Dispatch.GetId())
	})
	return out
}

// Changed returns a channel closed after the next batch of records is
// folded. Call it again after it fired.
func (v *View) Changed() <-chan struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.changed
}

// WaitFor blocks until the entry of id satisfies cond (cond sees ok false
// while there is no request record), or ctx ends.
func (v *View) WaitFor(ctx context.Context, id string, cond func(e Entry, ok bool) bool) error {
	for {
		ch := v.Changed()
		if e, ok := v.Get(id); cond(e, ok) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for dispatch %s in the view: %w", id, ctx.Err())
		}
	}
}

// clone copies the entry; its Reports map is never modified once folded
// (fold copies on write), so it is shared.
func (p *Entry) clone() Entry { return *p }

// apply folds one record (on the Run goroutine).
func (v *View) apply(m follow.Record) {
	if err := v.fold(m); err != nil {
		v.skipped++
		if v.skipped <= 10 || v.skipped%1000 == 0 {
			v.log.Warn("skip dispatch record", "offset", m.Offset, "skipped", v.skipped, "err", err)
		}
	}
}

func (v *View) fold(m follow.Record) error {
	kind, id, part, err := ParseKey(string(m.Key))
	if err != nil {
		return err
	}
	var rec vppv1.DispatchRecord
	if m.Value != nil {
		if err := proto.Unmarshal(m.Value, &rec); err != nil {
			return fmt.Errorf("decode dispatch record %q: %w", m.Key, err)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entries[id]
	if e == nil {
		if m.Value == nil {
			return nil
		}
		e = &Entry{}
		v.entries[id] = e
	}
	bad := func(want string) error { return fmt.Errorf("dispatch record %q: not a %s", m.Key, want) }
	switch kind {
	case KindDispatch:
		if m.Value == nil {
			e.Dispatch = nil
			break
		}
		d := rec.GetDispatch()
		if d == nil {
			return bad("dispatch")
		}
		d.Id = id
		e.Dispatch = d
	case KindAllocation:
		if m.Value == nil {
			e.Allocation = nil
			break
		}
		a := rec.GetAllocation()
		if a == nil {
			return bad("allocation")
		}
		a.DispatchId = id
		e.Allocation = a
	case KindReport:
		// Copy on write: readers hold clones of the old map.
		reports := maps.Clone(e.Reports)
		if m.Value == nil {
			delete(reports, part)
		} else {
			r := rec.GetReport()
			if r == nil {
				return bad("report")
			}
			r.DispatchId, r.Partition = id, part
			if reports == nil {
				reports = make(map[int32]*vppv1.DispatchReport)
			}
			reports[part] = r
		}
		e.Reports = reports
	case KindStatus:
		if m.Value == nil {
			e.Status = nil
			break
		}
		s := rec.GetStatus()
		if s == nil {
			return bad("status")
		}
		s.DispatchId = id
		e.Status = s
	}
	if e.Dispatch == nil && e.Allocation == nil && e.Status == nil && len(e.Reports) == 0 {
		delete(v.entries, id)
	}
	return nil
}

// flush wakes the Changed waiters after a batch.
func (v *View) flush() {
	v.mu.Lock()
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
}
