package aggregate

import (
	"math"
	"slices"
)

// fillItem is one participant of a water-filling: a device or a partition.
type fillItem struct {
	weight float64 // >= 0: energy above the reserve (discharge) or below full (charge)
	cap    float64 // >= 0: the most it can take, kW
	out    float64 // its share, kW, set by waterFill
}

// waterFill splits total (>= 0, kW) over items in proportion to their
// weights, no item beyond its cap, the excess of the items that clip going
// to the others: every item gets min(λ·weight, cap) with λ such that the
// shares sum to min(total, Σcap). It returns that sum. Items of weight 0
// get nothing while the weighted items have room; what the weighted items
// cannot take goes to them by their caps.
// The shares sum to the returned value up to one rounding of the largest
// share (the residual goes to an item with room).
//
// This is SoC-balancing allocation (OpenEMS SolverBySocOptimization):
// called with the energy above the reserve as weight for discharge and the
// energy below full for charge, devices with more to give give more, and
// their states of charge converge.
func waterFill(items []fillItem, total float64) float64 {
	var capSum, wSum float64
	for i := range items {
		it := &items[i]
		it.out = 0
		if !(it.cap > 0) {
			it.cap = 0
		}
		if !(it.weight > 0) || it.cap == 0 {
			it.weight = 0
		}
		capSum += it.cap
		wSum += it.weight
	}
	if !(total > 0) || capSum == 0 {
		return 0
	}
	if total >= capSum {
		for i := range items {
			items[i].out = items[i].cap
		}
		return capSum
	}
	useCaps := wSum == 0
	w := func(it *fillItem) float64 {
		if useCaps {
			return it.cap
		}
		return it.weight
	}
	// Order by the λ at which each item clips (cap/weight); fill the
	// lowest first while the remaining λ reaches it.
	order := make([]int, 0, len(items))
	for i := range items {
		if w(&items[i]) > 0 {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		ra, rb := items[a].cap/w(&items[a]), items[b].cap/w(&items[b])
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return a - b
	})
	rem, remW := total, 0.0
	for _, i := range order {
		remW += w(&items[i])
	}
	k := 0
	for ; k < len(order); k++ {
		it := &items[order[k]]
		if rem/remW < it.cap/w(it) {
			break
		}
		it.out = it.cap
		rem -= it.cap
		remW -= w(it)
	}
	if k == len(order) && rem > 0 && !useCaps {
		// Every weighted item clipped: the rest goes to the items of no
		// weight, by their caps.
		var rest []fillItem
		var idx []int
		for i := range items {
			if items[i].weight == 0 && items[i].cap > 0 {
				rest = append(rest, fillItem{cap: items[i].cap})
				idx = append(idx, i)
			}
		}
		waterFill(rest, rem)
		for j, i := range idx {
			items[i].out = rest[j].out
		}
		return total
	}
	lambda := 0.0
	if remW > 0 {
		lambda = rem / remW
	}
	var sum float64
	for _, i := range order[k:] {
		it := &items[i]
		it.out = math.Min(lambda*w(it), it.cap)
	}
	for i := range items {
		sum += items[i].out
	}
	// Rounding: give the residual to the unclipped item with most room.
	if res := total - sum; res != 0 && k < len(order) {
		best := order[k]
		for _, i := range order[k:] {
			if items[i].cap-items[i].out > items[best].cap-items[best].out {
				best = i
			}
		}
		items[best].out = math.Max(0, math.Min(items[best].cap, items[best].out+res))
	}
	return total
}
