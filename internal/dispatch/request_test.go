package dispatch

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/proto/vppv1"
)

var testNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func goodRequest() Request {
	return Request{Node: "region/north", PowerKW: 5000, Duration: 30 * time.Minute, CreatedBy: "alice", Source: "cli"}
}

func TestBuildRefusesBadRequests(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Request)
		reason string
	}{
		{"node format", func(r *Request) { r.Node = "north" }, `node "north": want fleet`},
		{"node kind", func(r *Request) { r.Node = "feeder/7" }, `node "feeder/7"`},
		{"node empty ID", func(r *Request) { r.Node = "site/" }, "ID must be 1..64 bytes"},
		{"zero duration", func(r *Request) { r.Duration = 0 }, "duration must be positive"},
		{"negative duration", func(r *Request) { r.Duration = -time.Minute }, "duration must be positive"},
		{"too long", func(r *Request) { r.Duration = 40 * 24 * time.Hour }, "longer than"},
		{"start in the past", func(r *Request) { r.Start = testNow.Add(-31 * time.Second) }, "in the past (at most 30s)"},
		{"NaN power", func(r *Request) { r.PowerKW = math.NaN() }, "power must be a finite number"},
		{"Inf power", func(r *Request) { r.PowerKW = math.Inf(-1) }, "power must be a finite number"},
		{"absurd power", func(r *Request) { r.PowerKW = 1e7 + 1 }, "beyond ±10 GW"},
		{"absurd charge", func(r *Request) { r.PowerKW = -2e7 }, "beyond ±10 GW"},
		{"negative ramp", func(r *Request) { r.RampKWPerS = -1 }, "ramp must be >= 0"},
		{"NaN ramp", func(r *Request) { r.RampKWPerS = math.NaN() }, "ramp must be a finite"},
		{"negative priority", func(r *Request) { r.Priority = -1 }, "priority must be >= 0"},
		{"malformed ID", func(r *Request) { r.ID = "d/1" }, `character '/' not allowed`},
		{"long ID", func(r *Request) { r.ID = strings.Repeat("x", 65) }, "1..64 characters"},
		{"long creator", func(r *Request) { r.CreatedBy = strings.Repeat("x", 300) }, "creator longer than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := goodRequest()
			c.change(&r)
			d, err := Build(r, testNow)
			if err == nil {
				t.Fatalf("Build accepted %+v: %v", r, d)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("error %q does not say %q", err, c.reason)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	r := goodRequest()
	r.RampKWPerS, r.Priority, r.Start = 1000, 2, testNow.Add(-10*time.Second)
	d, err := Build(r, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if d.GetNode() != "region/north" || d.GetTargetKw() != 5000 || d.GetRampKwPerS() != 1000 || d.GetPriority() != 2 ||
		d.GetStartMs() != r.Start.UnixMilli() || d.GetEndMs() != r.Start.Add(30*time.Minute).UnixMilli() ||
		d.GetCreatedMs() != testNow.UnixMilli() || d.GetCreatedBy() != "alice" || d.GetSource() != "cli" {
		t.Errorf("Build = %v", d)
	}
	if err := ValidID(d.GetId()); err != nil || !strings.HasPrefix(d.GetId(), "d-") || len(d.GetId()) != 14 {
		t.Errorf("ID %q: %v", d.GetId(), err)
	}
	// No start: now.
	r.Start = time.Time{}
	d, _ = Build(r, testNow)
	if d.GetStartMs() != testNow.UnixMilli() {
		t.Errorf("start %d, want now", d.GetStartMs())
	}
	// Charge is allowed, and the fleet.
	r.PowerKW, r.Node = -250, "fleet"
	if _, err := Build(r, testNow); err != nil {
		t.Error(err)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if seen[id] || ValidID(id) != nil {
			t.Fatalf("NewID %q repeated or invalid", id)
		}
		seen[id] = true
	}
	a, b := IdempotentID("alice", "k1"), IdempotentID("alice", "k1")
	if a != b || ValidID(a) != nil {
		t.Errorf("IdempotentID not stable: %q %q", a, b)
	}
	if IdempotentID("bob", "k1") == a || IdempotentID("alice", "k2") == a {
		t.Error("IdempotentID ignores creator or key")
	}
	r := goodRequest()
	r.IdempotencyKey = "k1"
	d1, _ := Build(r, testNow)
	d2, _ := Build(r, testNow.Add(time.Minute))
	if d1.GetId() != a || d2.GetId() != a || d1.GetIdempotencyKey() != "k1" {
		t.Errorf("IDs with a key: %q %q, want %q", d1.GetId(), d2.GetId(), a)
	}
}

func TestSameRequest(t *testing.T) {
	r := goodRequest()
	d, _ := Build(r, testNow)
	if same, why := SameRequest(d, r); !same {
		t.Fatalf("same request differs: %s", why)
	}
	for name, change := range map[string]func(*Request){
		"node":     func(r *Request) { r.Node = "region/south" },
		"power":    func(r *Request) { r.PowerKW = 1 },
		"duration": func(r *Request) { r.Duration = time.Hour },
		"start":    func(r *Request) { r.Start = testNow.Add(time.Hour) },
		"ramp":     func(r *Request) { r.RampKWPerS = 5 },
		"priority": func(r *Request) { r.Priority = 3 },
		"creator":  func(r *Request) { r.CreatedBy = "bob" },
	} {
		r2 := r
		change(&r2)
		if same, why := SameRequest(d, r2); same || why == "" {
			t.Errorf("%s: same %v, reason %q", name, same, why)
		}
	}
}

func TestCheckNode(t *testing.T) {
	tree := fleet.NewTree()
	tree.ApplySite(&vppv1.SiteState{SiteId: "s1", RegionId: "north", SubstationId: "sub1", Devices: []*vppv1.DeviceState{
		{Last: &vppv1.Reading{DeviceId: "d1", MaxDischargeKw: 5, MaxChargeKw: 5, CapacityKwh: 10, SocPct: 50}, HeadroomDischargeKw: 4, HeadroomChargeKw: 3},
	}})
	snap := tree.Snapshot()
	for _, s := range []string{"fleet", "region/north", "substation/sub1", "site/s1"} {
		n, _ := ParseNode(s)
		h, err := CheckNode(snap, n)
		if err != nil || h.DischargeKW != 4 || h.ChargeKW != 3 || h.Devices != 1 {
			t.Errorf("CheckNode(%s) = %+v, %v", s, h, err)
		}
	}
	for _, s := range []string{"region/south", "substation/north", "site/sub1"} {
		n, _ := ParseNode(s)
		if _, err := CheckNode(snap, n); !errors.Is(err, ErrUnknownNode) || !strings.Contains(err.Error(), s+" is not in the fleet") {
			t.Errorf("CheckNode(%s): %v", s, err)
		}
	}
	if _, err := CheckNode(nil, Node{Level: LevelFleet}); err != nil {
		t.Errorf("fleet of an empty snapshot: %v", err)
	}
}

func TestEntryState(t *testing.T) {
	d, _ := Build(Request{Node: "fleet", PowerKW: 1, Start: testNow.Add(time.Minute), Duration: time.Minute}, testNow)
	e := Entry{Dispatch: d}
	for _, c := range []struct {
		at   time.Time
		want string
		end  bool
	}{
		{testNow, "pending", false},
		{testNow.Add(90 * time.Second), "active", false},
		{testNow.Add(2 * time.Minute), "completed", true},
	} {
		if got := StateName(e.State(c.at)); got != c.want || e.Ended(c.at) != c.end {
			t.Errorf("at %s: %s ended %v, want %s %v", c.at, got, e.Ended(c.at), c.want, c.end)
		}
	}
	e.Status = &vppv1.DispatchStatus{State: vppv1.DispatchState_DISPATCH_STATE_SUPERSEDED}
	if got := StateName(e.State(testNow)); got != "superseded" || !e.Ended(testNow) {
		t.Errorf("with a status: %s", got)
	}
	d.CancelledMs = testNow.UnixMilli()
	if got := StateName(e.State(testNow)); got != "cancelled" || !e.Ended(testNow) {
		t.Errorf("cancelled: %s", got)
	}
}
