package main

import (
	"testing"
	"time"

	"github.com/vppctl/vpp/internal/aggregate"
)

// TestDemoOfflineAfter: a demo fleet whose devices report less often than
// the default offline threshold allows is not shown offline between its
// readings (a million devices at 3,000 readings/s report every 333 s).
func TestDemoOfflineAfter(t *testing.T) {
	for _, tc := range []struct {
		devices, rate float64
		want          time.Duration
	}{
		{3_000, 3_000, aggregate.DefaultOfflineAfter},       // every second
		{20_000, 2_000, aggregate.DefaultOfflineAfter},      // every 10 s: three fit in 30 s
		{100_000, 3_000, 100 * time.Second},                 // every 33.3 s
		{1_000_000, 3_000, 1000 * time.Second},              // every 333 s
		{1_000_000, 100_000, aggregate.DefaultOfflineAfter}, // every 10 s
	} {
		if got := demoOfflineAfter(tc.devices, tc.rate); got != tc.want {
			t.Errorf("%v devices at %v/s: offline after %v, want %v", tc.devices, tc.rate, got, tc.want)
		}
	}
}
