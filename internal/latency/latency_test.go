package latency

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{0, 500 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Second, 2 * time.Minute, -time.Second} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if s.Count != 7 {
		t.Fatalf("count %d, want 7", s.Count)
	}
	for bound, want := range map[float64]uint64{0.001: 4, 0.0025: 4, 0.005: 5, 1: 5, 2.5: 6, 60: 6} {
		if got := s.Cumulative[bound]; got != want {
			t.Errorf("≤ %gs: %d, want %d", bound, got, want)
		}
	}
	wantSum := (500*time.Microsecond + time.Millisecond + 3*time.Millisecond + 2*time.Second + 2*time.Minute).Seconds()
	if s.Sum < wantSum-1e-9 || s.Sum > wantSum+1e-9 {
		t.Errorf("sum %g, want %g", s.Sum, wantSum)
	}
	var m Snapshot
	m.Merge(s)
	m.Merge(s)
	if m.Count != 14 || m.Cumulative[1] != 10 {
		t.Errorf("merge: %+v", m)
	}
}

func BenchmarkObserve(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := range b.N {
		h.Observe(time.Duration(i%1000) * time.Millisecond)
	}
}
