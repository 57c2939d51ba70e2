package api

// dispatch.go serves /api/dispatches: create, list, show and cancel
// dispatches through a dispatch.Service. Writes reach it only past the
// guard's operator token.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vppctl/vpp/internal/dispatch"
	"github.com/vppctl/vpp/internal/flagval"
)

// DispatchesPath is the collection of dispatches.
const DispatchesPath = "/api/dispatches"

// maxDispatchBody bounds the body of a create.
const maxDispatchBody = 64 << 10

// DispatchJSON is the JSON form of a dispatch: the request, its audit
// fields and the coordinator's tracking figures (zero until it reports).
// Powers in kW (positive discharges), times RFC 3339 UTC ("" when unset).
// `vpp dispatch show --json` and `list --json` write the same type.
type DispatchJSON struct {
	ID     string `json:"id"`
	Node   string `json:"node"`
	Status string `json:"status"`
	// Reason says why a dispatch failed or was superseded.
	Reason         string  `json:"reason,omitempty"`
	TargetKW       float64 `json:"target_kw"`
	ActualKW       float64 `json:"actual_kw"`
	Start          string  `json:"start"`
	End            string  `json:"end"`
	RampKWPerS     float64 `json:"ramp_kw_per_s"`
	Priority       int32   `json:"priority"`
	CreatedAt      string  `json:"created_at"`
	CreatedBy      string  `json:"created_by"`
	Source         string  `json:"source"`
	IdempotencyKey string  `json:"idempotency_key,omitempty"`
	CancelledAt    string  `json:"cancelled_at,omitempty"`
	CancelledBy    string  `json:"cancelled_by,omitempty"`

	FeasibleKW    float64 `json:"feasible_kw"`
	ShortfallKW   float64 `json:"shortfall_kw"`
	Devices       uint32  `json:"devices"`
	Following     uint32  `json:"following"`
	Clamped       uint32  `json:"clamped"`
	MAEMinuteKW   float64 `json:"mae_minute_kw"`
	OvershootKW   float64 `json:"overshoot_kw"`
	ReachedAt     string  `json:"reached_at,omitempty"`
	FirstFollowAt string  `json:"first_follow_at,omitempty"`
	// Epoch is the allocation's epoch, Partitions its number of shares.
	Epoch      uint64 `json:"epoch,omitempty"`
	Partitions int    `json:"partitions"`
	UpdatedAt  string `json:"updated_at,omitempty"`
}

// NewDispatchJSON converts a dispatch entry to its JSON form; now decides
// the status of a dispatch the coordinator has not reported on.
func NewDispatchJSON(e dispatch.Entry, now time.Time) DispatchJSON {
	d, s := e.Dispatch, e.Status
	j := DispatchJSON{
		ID:             d.GetId(),
		Node:           d.GetNode(),
		Status:         dispatch.StateName(e.State(now)),
		Reason:         s.GetReason(),
		TargetKW:       finite(d.GetTargetKw()),
		ActualKW:       finite(e.ActualKW()),
		Start:          msTime(d.GetStartMs()),
		End:            msTime(d.GetEndMs()),
		RampKWPerS:     finite(d.GetRampKwPerS()),
		Priority:       d.GetPriority(),
		CreatedAt:      msTime(d.GetCreatedMs()),
		CreatedBy:      d.GetCreatedBy(),
		Source:         d.GetSource(),
		IdempotencyKey: d.GetIdempotencyKey(),
		CancelledAt:    msTime(d.GetCancelledMs()),
		CancelledBy:    d.GetCancelledBy(),
		FeasibleKW:     finite(s.GetFeasibleKw()),
		ShortfallKW:    finite(s.GetShortfallKw()),
		Devices:        s.GetDevices(),
		Following:      s.GetFollowing(),
		Clamped:        s.GetClamped(),
		MAEMinuteKW:    finite(s.GetMaeMinuteKw()),
		OvershootKW:    finite(s.GetOvershootKw()),
		ReachedAt:      msTime(s.GetReachedMs()),
		FirstFollowAt:  msTime(s.GetFirstFollowMs()),
		Epoch:          e.Allocation.GetEpoch(),
		Partitions:     len(e.Allocation.GetShares()),
		UpdatedAt:      msTime(s.GetUpdatedMs()),
	}
	if s == nil && e.Allocation != nil {
		j.FeasibleKW = finite(e.Allocation.GetFeasibleKw())
	}
	return j
}

// CreateDispatchJSON is the body of POST /api/dispatches. Power is a
// string with units ("5MW", "-250kW") or a number of kW; Duration a Go
// duration ("30m"); Start RFC 3339 (default now); Ramp like Power, per
// second ("1MW/s") or a number of kW/s.
type CreateDispatchJSON struct {
	Node     string          `json:"node"`
	Power    json.RawMessage `json:"power"`
	Duration string          `json:"duration"`
	Start    string          `json:"start,omitempty"`
	Ramp     json.RawMessage `json:"ramp,omitempty"`
	Priority int32           `json:"priority,omitempty"`
}

// Request converts the body to a dispatch request; errors wrap
// dispatch.ErrInvalid.
func (c CreateDispatchJSON) Request() (dispatch.Request, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", dispatch.ErrInvalid, fmt.Sprintf(format, a...))
	}
	r := dispatch.Request{Node: c.Node, Priority: c.Priority}
	if c.Node == "" {
		return r, bad("node is required (fleet, region/ID, substation/ID or site/ID)")
	}
	if len(c.Power) == 0 {
		return r, bad("power is required (\"5MW\", \"-250kW\" or a number of kW)")
	}
	var err error
	if r.PowerKW, err = powerValue(c.Power); err != nil {
		return r, bad("power: %v", err)
	}
	if c.Duration == "" {
		return r, bad("duration is required (\"30m\")")
	}
	if r.Duration, err = time.ParseDuration(c.Duration); err != nil {
		return r, bad("duration %q: want a duration like 30m or 1h30m", c.Duration)
	}
	if c.Start != "" {
		if r.Start, err = time.Parse(time.RFC3339, c.Start); err != nil {
			return r, bad("start %q: want RFC 3339 (2026-12-02T17:00:00Z)", c.Start)
		}
	}
	if len(c.Ramp) > 0 {
		if r.RampKWPerS, err = powerValue(c.Ramp); err != nil {
			return r, bad("ramp: %v", err)
		}
	}
	return r, nil
}

// powerValue reads a JSON number of kW or a string with units.
func powerValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return flagval.ParsePowerKW(s)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("want a string like \"5MW\" or a number of kW, got %s", raw)
	}
	return f, nil
}

// operatorKey carries the authenticated operator's name in a request's
// context (set by the guard).
type operatorKey struct{}

// DefaultOperator is the creator of dispatches made with the operator
// token: tokens carry no name.
const DefaultOperator = "operator"

func operatorFrom(ctx context.Context) string {
	if s, ok := ctx.Value(operatorKey{}).(string); ok {
		return s
	}
	return DefaultOperator
}

type dispatchAPI struct {
	svc *dispatch.Service
	now func() time.Time
}

// registerDispatch adds the routes of /api/dispatches to mux.
func registerDispatch(mux *http.ServeMux, svc *dispatch.Service, now func() time.Time) {
	a := &dispatchAPI{svc: svc, now: now}
	mux.HandleFunc("GET "+DispatchesPath, a.list)
	mux.HandleFunc("POST "+DispatchesPath, a.create)
	mux.HandleFunc("GET "+DispatchesPath+"/{id}", a.show)
	mux.HandleFunc("DELETE "+DispatchesPath+"/{id}", a.cancel)
}

// dispatchError answers err with its status code: 400 for a bad command,
// 404 unknown, 409 conflict, 503 not loaded yet, 500 else.
func dispatchError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, dispatch.ErrInvalid), errors.Is(err, dispatch.ErrUnknownNode):
		code = http.StatusBadRequest
	case errors.Is(err, dispatch.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, dispatch.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, dispatch.ErrNotReady):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "2")
	}
	writeError(w, code, err.Error())
}

func (a *dispatchAPI) list(w http.ResponseWriter, _ *http.Request) {
	entries, err := a.svc.List()
	if err != nil {
		dispatchError(w, err)
		return
	}
	now := a.now()
	out := make([]DispatchJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, NewDispatchJSON(e, now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *dispatchAPI) show(w http.ResponseWriter, r *http.Request) {
	e, err := a.svc.Get(r.PathValue("id"))
	if err != nil {
		dispatchError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewDispatchJSON(e, a.now()))
}

func (a *dispatchAPI) create(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "body must be application/json")
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxDispatchBody))
	dec.DisallowUnknownFields()
	var body CreateDispatchJSON
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid dispatch: body: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid dispatch: body: more than one JSON value")
		return
	}
	req, err := body.Request()
	if err != nil {
		dispatchError(w, err)
		return
	}
	req.CreatedBy, req.Source = operatorFrom(r.Context()), "api"
	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	e, created, _, err := a.svc.Create(r.Context(), req)
	if err != nil {
		dispatchError(w, err)
		return
	}
	w.Header().Set("Location", DispatchesPath+"/"+e.Dispatch.GetId())
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, NewDispatchJSON(e, a.now()))
}

func (a *dispatchAPI) cancel(w http.ResponseWriter, r *http.Request) {
	e, err := a.svc.Cancel(r.Context(), r.PathValue("id"), operatorFrom(r.Context()))
	if err != nil {
		dispatchError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewDispatchJSON(e, a.now()))
}

// isDispatchWrite reports whether r is a write to the dispatch API: a POST
// of the collection or a DELETE of one dispatch.
func isDispatchWrite(r *http.Request) bool {
	p := r.URL.Path
	switch r.Method {
	case http.MethodPost:
		return p == DispatchesPath
	case http.MethodDelete:
		rest, ok := strings.CutPrefix(p, DispatchesPath+"/")
		return ok && rest != "" && !strings.Contains(rest, "/")
	}
	return false
}
