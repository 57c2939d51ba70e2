// Package latency is a lock-free latency histogram with fixed buckets, cheap
// enough for per-reading hot paths. Exporters (Prometheus) read snapshots.
package latency

import (
	"sync/atomic"
	"time"
)

// Bounds are the upper bounds of the buckets, in seconds: 1 ms to 60 s.
var bounds = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Bounds returns the buckets' upper bounds in seconds (a copy).
func Bounds() []float64 { b := bounds; return b[:] }

// Histogram counts durations into fixed buckets. The zero value is ready to
// use and safe for concurrent use.
type Histogram struct {
	counts [len(bounds) + 1]atomic.Uint64 // last: above every bound
	sum    atomic.Int64                   // nanoseconds
}

// Observe adds one duration; negative durations count as 0.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	s := d.Seconds()
	i := 0
	for i < len(bounds) && s > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot is a histogram's state at one moment.
type Snapshot struct {
	// Cumulative maps each upper bound (seconds) to the number of
	// observations at or below it.
	Cumulative map[float64]uint64
	// Count and Sum (seconds) cover every observation.
	Count uint64
	Sum   float64
}

// Snapshot returns the current counts.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Cumulative: make(map[float64]uint64, len(bounds))}
	var acc uint64
	for i, b := range bounds {
		acc += h.counts[i].Load()
		s.Cumulative[b] = acc
	}
	s.Count = acc + h.counts[len(bounds)].Load()
	s.Sum = time.Duration(h.sum.Load()).Seconds()
	return s
}

// Merge adds o's counts to s (for summing instances).
func (s *Snapshot) Merge(o Snapshot) {
	if s.Cumulative == nil {
		s.Cumulative = make(map[float64]uint64, len(o.Cumulative))
	}
	for b, n := range o.Cumulative {
		s.Cumulative[b] += n
	}
	s.Count += o.Count
	s.Sum += o.Sum
}
