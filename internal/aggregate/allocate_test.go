package aggregate

import (
	"math"
	"math/rand/v2"
	"testing"
)

func sumOut(items []fillItem) float64 {
	s := 0.0
	for _, it := range items {
		s += it.out
	}
	return s
}

func TestWaterFillProportionalAndClipped(t *testing.T) {
	// Weights 1:2:3, caps leave the third short: it clips at 2 and the
	// others share the rest 1:2.
	items := []fillItem{{weight: 1, cap: 10}, {weight: 2, cap: 10}, {weight: 3, cap: 2}}
	got := waterFill(items, 8)
	if got != 8 || math.Abs(sumOut(items)-8) > 1e-9 {
		t.Fatalf("waterFill = %v, shares sum %v, want 8", got, sumOut(items))
	}
	want := []float64{2, 4, 2}
	for i, w := range want {
		if math.Abs(items[i].out-w) > 1e-9 {
			t.Errorf("item %d = %v, want %v (%+v)", i, items[i].out, w, items)
		}
	}
}

func TestWaterFillInfeasibleAndEdges(t *testing.T) {
	items := []fillItem{{weight: 1, cap: 3}, {weight: 1, cap: 4}}
	if got := waterFill(items, 100); got != 7 || items[0].out != 3 || items[1].out != 4 {
		t.Fatalf("beyond the caps: got %v, %+v; want every item at its cap", got, items)
	}
	if got := waterFill(items, 0); got != 0 || sumOut(items) != 0 {
		t.Fatalf("zero total: %v %+v", got, items)
	}
	if got := waterFill(items, math.NaN()); got != 0 {
		t.Fatalf("NaN total: %v", got)
	}
	// No energy above the reserve anywhere but caps: the caps weigh.
	items = []fillItem{{weight: 0, cap: 1}, {weight: 0, cap: 3}}
	if got := waterFill(items, 2); got != 2 || math.Abs(items[1].out-1.5) > 1e-9 {
		t.Fatalf("zero weights: %v %+v", got, items)
	}
	// A weighted item with no cap gets nothing; a capped item of no weight
	// gets nothing while others have weight.
	items = []fillItem{{weight: 5, cap: 0}, {weight: 0, cap: 5}, {weight: 1, cap: 5}}
	waterFill(items, 2)
	if items[0].out != 0 || items[1].out != 0 || items[2].out != 2 {
		t.Fatalf("%+v", items)
	}
}

// TestWaterFillSumsExactly checks over random fleets that the shares sum to
// the feasible total within a microwatt and never exceed a cap.
func TestWaterFillSumsExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 2000 {
		items := make([]fillItem, 1+rng.IntN(300))
		capSum := 0.0
		for i := range items {
			items[i] = fillItem{weight: rng.Float64() * 13.5, cap: rng.Float64() * 5}
			if rng.IntN(10) == 0 {
				items[i].weight = 0
			}
			capSum += items[i].cap
		}
		total := rng.Float64() * capSum * 1.2
		got := waterFill(items, total)
		want := math.Min(total, capSum)
		if math.Abs(got-want) > 1e-9 || math.Abs(sumOut(items)-want) > 1e-9 {
			t.Fatalf("case %d: waterFill = %v, Σ = %v, want %v", n, got, sumOut(items), want)
		}
		for i, it := range items {
			if it.out < 0 || it.out > it.cap+1e-12 {
				t.Fatalf("case %d item %d: share %v outside [0, %v]", n, i, it.out, it.cap)
			}
		}
	}
}
