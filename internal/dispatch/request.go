package dispatch

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

// Limits of a dispatch request.
const (
	// MaxPowerKW is the largest |target| accepted: 10 GW.
	MaxPowerKW = 10e6
	// MaxDuration is the longest dispatch accepted.
	MaxDuration = 31 * 24 * time.Hour
	// MaxStartPast is how far in the past a start may lie (clock skew
	// between the operator and vpp); an older start is refused.
	MaxStartPast = 30 * time.Second
	// MaxAuditBytes bounds created_by, cancelled_by, source and the
	// idempotency key.
	MaxAuditBytes = 256
)

// Errors of the dispatch operations. Each is wrapped with the reason, and
// callers map them with errors.Is: ErrInvalid and ErrUnknownNode are bad
// commands (HTTP 400, CLI exit 2).
var (
	// ErrInvalid is returned when a request is malformed: a bad node ID,
	// power, duration, start, ramp, priority or ID.
	ErrInvalid = errors.New("invalid dispatch")
	// ErrUnknownNode is returned when the node is not in the fleet.
	ErrUnknownNode = errors.New("unknown node")
	// ErrNotFound is returned when no dispatch has the ID.
	ErrNotFound = errors.New("dispatch not found")
	// ErrConflict is returned when an idempotency key was used for a
	// different request, or a cancel comes after the dispatch ended or was
	// cancelled.
	ErrConflict = errors.New("dispatch conflict")
	// ErrNotReady is returned while the view has not caught up with the
	// dispatch topic, or the fleet is not loaded.
	ErrNotReady = errors.New("dispatches not loaded yet")
)

// Request is an operator's dispatch command before validation.
type Request struct {
	// Node is the node ID: "fleet", "region/ID", "substation/ID", "site/ID".
	Node string
	// PowerKW is the target: positive discharges, negative charges.
	PowerKW float64
	// Start is when the dispatch begins; zero means now.
	Start time.Time
	// Duration is how long it holds; must be positive.
	Duration time.Duration
	// RampKWPerS is the highest rate of change, kW/s, >= 0; 0 means at once.
	RampKWPerS float64
	// Priority: lower wins where dispatches overlap; >= 0.
	Priority int32
	// CreatedBy and Source are the audit fields ("alice", "cli").
	CreatedBy, Source string
	// IdempotencyKey, when set, derives the ID from (CreatedBy, key) so
	// that a retried request yields the same dispatch.
	IdempotencyKey string
	// ID, when set, is the dispatch ID to use (else random or derived).
	ID string
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Build validates r and returns the dispatch record it asks for, created at
// now. Every refusal wraps ErrInvalid with the reason.
func Build(r Request, now time.Time) (*vppv1.Dispatch, error) {
	node, err := ParseNode(r.Node)
	if err != nil {
		return nil, invalid("%v", err)
	}
	switch {
	case math.IsNaN(r.PowerKW) || math.IsInf(r.PowerKW, 0):
		return nil, invalid("power must be a finite number of kW")
	case math.Abs(r.PowerKW) > MaxPowerKW:
		return nil, invalid("power %g kW beyond ±10 GW", r.PowerKW)
	}
	switch {
	case r.Duration <= 0:
		return nil, invalid("duration must be positive, got %s", r.Duration)
	case r.Duration > MaxDuration:
		return nil, invalid("duration %s longer than %s", r.Duration, MaxDuration)
	}
	start := r.Start
	if start.IsZero() {
		start = now
	} else if start.Before(now.Add(-MaxStartPast)) {
		return nil, invalid("start %s is %s in the past (at most %s)", start.UTC().Format(time.RFC3339), now.Sub(start).Round(time.Second), MaxStartPast)
	}
	switch {
	case math.IsNaN(r.RampKWPerS) || math.IsInf(r.RampKWPerS, 0):
		return nil, invalid("ramp must be a finite number of kW/s")
	case r.RampKWPerS < 0:
		return nil, invalid("ramp must be >= 0 kW/s (0: at once), got %g", r.RampKWPerS)
	}
	if r.Priority < 0 {
		return nil, invalid("priority must be >= 0, got %d", r.Priority)
	}
	for name, v := range map[string]string{"creator": r.CreatedBy, "source": r.Source, "idempotency key": r.IdempotencyKey} {
		if len(v) > MaxAuditBytes {
			return nil, invalid("%s longer than %d bytes", name, MaxAuditBytes)
		}
	}
	id := r.ID
	switch {
	case id != "":
	case r.IdempotencyKey != "":
		id = IdempotentID(r.CreatedBy, r.IdempotencyKey)
	default:
		id = NewID()
	}
	if err := ValidID(id); err != nil {
		return nil, invalid("%v", err)
	}
	return &vppv1.Dispatch{
		Id:             id,
		Node:           node.String(),
		TargetKw:       r.PowerKW,
		StartMs:        start.UnixMilli(),
		EndMs:          start.Add(r.Duration).UnixMilli(),
		RampKwPerS:     r.RampKWPerS,
		Priority:       r.Priority,
		CreatedMs:      now.UnixMilli(),
		CreatedBy:      r.CreatedBy,
		Source:         r.Source,
		IdempotencyKey: r.IdempotencyKey,
	}, nil
}

// SameRequest reports whether d, an existing dispatch, is what r asks for:
// the same node, power, duration, ramp, priority and creator, and the same
// start when r gives one (a retry without a start is the same request
// whenever it comes). It decides whether a retried create with an
// idempotency key returns d or is a conflict; reason says what differs.
func SameRequest(d *vppv1.Dispatch, r Request) (same bool, reason string) {
	node, err := ParseNode(r.Node)
	switch {
	case err != nil || node.String() != d.GetNode():
		return false, fmt.Sprintf("node %s, not %s", d.GetNode(), r.Node)
	case d.GetTargetKw() != r.PowerKW:
		return false, fmt.Sprintf("power %g kW, not %g kW", d.GetTargetKw(), r.PowerKW)
	case d.GetEndMs()-d.GetStartMs() != r.Duration.Milliseconds():
		return false, fmt.Sprintf("duration %s, not %s", time.Duration(d.GetEndMs()-d.GetStartMs())*time.Millisecond, r.Duration)
	case !r.Start.IsZero() && d.GetStartMs() != r.Start.UnixMilli():
		return false, fmt.Sprintf("start %s, not %s", time.UnixMilli(d.GetStartMs()).UTC().Format(time.RFC3339), r.Start.UTC().Format(time.RFC3339))
	case d.GetRampKwPerS() != r.RampKWPerS:
		return false, fmt.Sprintf("ramp %g kW/s, not %g kW/s", d.GetRampKwPerS(), r.RampKWPerS)
	case d.GetPriority() != r.Priority:
		return false, fmt.Sprintf("priority %d, not %d", d.GetPriority(), r.Priority)
	case d.GetCreatedBy() != r.CreatedBy:
		return false, fmt.Sprintf("created by %q, not %q", d.GetCreatedBy(), r.CreatedBy)
	}
	return true, ""
}

// idEncoding writes the ID characters: base32 in lower case, without padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random dispatch ID: "d-" and 12 base32 characters (60
// bits from crypto/rand).
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "d-" + idEncoding.EncodeToString(b[:])[:12]
}

// IdempotentID is the dispatch ID derived from (creator, key): "d-" and 12
// base32 characters of their SHA-256, so that a retried request with the
// same Idempotency-Key names the same dispatch, and two creators' keys
// never collide in practice.
func IdempotentID(creator, key string) string {
	sum := sha256.Sum256([]byte(creator + "\x00" + key))
	return "d-" + idEncoding.EncodeToString(sum[:8])[:12]
}

// Headroom is what a node's online devices can still offer, kW, >= 0.
type Headroom struct {
	DischargeKW, ChargeKW float64
	// Devices and Online count the node's devices.
	Devices, Online int64
}

// CheckNode looks n up in a fleet snapshot and returns its headroom. An
// absent node is an error wrapping ErrUnknownNode; a nil or empty snapshot
// knows no node but the fleet, and no device.
func CheckNode(snap *fleet.Snapshot, n Node) (Headroom, error) {
	var fn *fleet.Node
	if snap != nil {
		switch n.Level {
		case LevelFleet:
			fn = snap.Fleet
		case LevelRegion:
			fn = snap.Region(n.ID)
		case LevelSubstation:
			fn = snap.Substation(n.ID)
		case LevelSite:
			fn = snap.Site(n.ID)
		}
	}
	if fn == nil {
		if n.Level == LevelFleet {
			return Headroom{}, nil
		}
		return Headroom{}, fmt.Errorf("%w: %s is not in the fleet", ErrUnknownNode, n)
	}
	r := &fn.Rollup
	return Headroom{
		DischargeKW: r.HeadroomDischargeKW(),
		ChargeKW:    r.HeadroomChargeKW(),
		Devices:     r.Devices,
		Online:      r.Online,
	}, nil
}
